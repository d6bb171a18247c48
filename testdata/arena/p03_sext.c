#include "arena.h"
/* Sign-extending loads from the arena (PROBE_MEM32SX). */
SEC("syscall") int sext(struct args *ctx)
{
	u8 __arena *p = alloc_pages(1);
	if (!p)
		return 1;
	*(u64 __arena *)p = ctx->a;
	*(u64 __arena *)(p + 8) = ctx->b;
	ctx->ret[0] = *(s8 __arena *)(p + 0);
	ctx->ret[1] = *(s16 __arena *)(p + 8);
	ctx->ret[2] = *(s32 __arena *)(p + 12);
	return 0;
}
