#include "arena.h"
/* A global function whose arg:arena argument gets pointer arithmetic before
 * the cast. The verifier starts such an argument as an unknown scalar
 * ("caller can pass either PTR_TO_ARENA or SCALAR"), so the addition stays
 * 64-bit; only the cast makes an arena pointer. (Dereferencing the argument
 * without a cast is rejected: it is a scalar.) */
__noinline u64 sum_off(u64 *arr __arg_arena, u32 n)
{
	u64 *q = arr + 2;
	u64 __arena *a = (u64 __arena *)q;
	u64 s = 0;
	u32 i;

	for (i = 0; i < 6 && i < n; i++)
		s += a[i];
	a[6] = s;
	return s;
}

SEC("syscall") int arg_arena_off(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	int i;

	if (!p)
		return 1;
	for (i = 0; i < 8; i++)
		p[i] = ctx->a * i;
	ctx->ret[0] = sum_off((u64 *)p, 6);
	ctx->ret[1] = p[8];
	return 0;
}
