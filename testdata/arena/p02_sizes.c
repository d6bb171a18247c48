#include "arena.h"
/* Stores and zero-extending loads of every size. */
SEC("syscall") int sizes(struct args *ctx)
{
	u8 __arena *p = alloc_pages(1);
	if (!p)
		return 1;
	*(u8 __arena *)(p + 0) = ctx->a;
	*(u16 __arena *)(p + 2) = ctx->a;
	*(u32 __arena *)(p + 4) = ctx->a;
	*(u64 __arena *)(p + 8) = ctx->a;
	ctx->ret[0] = *(u8 __arena *)(p + 0);
	ctx->ret[1] = *(u16 __arena *)(p + 2);
	ctx->ret[2] = *(u32 __arena *)(p + 4);
	ctx->ret[3] = *(u64 __arena *)(p + 8);
	return 0;
}
