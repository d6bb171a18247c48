#include "arena.h"
/* A u64 stored into a fresh arena page and read back. */
SEC("syscall") int store_load(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	if (!p)
		return 1;
	p[0] = ctx->a;
	p[1] = ctx->b + 1;
	ctx->ret[0] = p[0] + p[1];
	return 0;
}
