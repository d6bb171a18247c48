#include "arena.h"
/* Immediate stores (ST) of every size. */
SEC("syscall") int imm_store(struct args *ctx)
{
	u8 __arena *p = alloc_pages(1);
	if (!p)
		return 1;
	*(u8 __arena *)(p + 1) = 0x7f;
	*(u16 __arena *)(p + 2) = 0x1234;
	*(u32 __arena *)(p + 4) = 0xdeadbeef;
	*(u64 __arena *)(p + 8) = -5;
	ctx->ret[0] = *(u64 __arena *)(p + 0);
	ctx->ret[1] = *(u64 __arena *)(p + 8);
	return 0;
}
