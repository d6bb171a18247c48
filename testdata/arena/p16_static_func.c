#include "arena.h"
/* A static (non-global) subprogram that takes an arena pointer. */
static __noinline u64 fill(u32 __arena *p, u32 n, u32 v)
{
	u32 i;

	for (i = 0; i < n && i < 16; i++)
		p[i] = v + i;
	return p[n > 0 ? n - 1 : 0];
}

SEC("syscall") int static_func(struct args *ctx)
{
	u32 __arena *p = alloc_pages(1);

	if (!p)
		return 1;
	ctx->ret[0] = fill(p, 10, ctx->a);
	ctx->ret[1] = fill(p + 100, 3, 7);
	return 0;
}
