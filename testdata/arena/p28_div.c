#include "arena.h"
/* Division and modulo of arena values (the verifier adds div-by-zero guards). */
SEC("syscall") int divmod(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	s64 x, y;

	if (!p)
		return 1;
	p[0] = ctx->a;
	p[1] = ctx->b;
	ctx->ret[0] = p[0] / p[1];
	ctx->ret[1] = p[0] % p[1];
	x = p[0];
	y = p[1];
	ctx->ret[2] = x / y;
	ctx->ret[3] = (u32)p[0] / (u32)p[1];
	return 0;
}
