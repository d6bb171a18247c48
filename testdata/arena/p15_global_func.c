#include "arena.h"
/* A global function with an arg:arena argument. */
__noinline int sum_arr(u64 *arr __arg_arena, int n)
{
	u64 __arena *a = (u64 __arena *)arr;
	u64 s = 0;
	int i;

	if (!a)
		return 0;
	for (i = 0; i < 8 && i < n; i++)
		s += a[i];
	return s;
}

SEC("syscall") int global_func(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	int i;

	if (!p)
		return 1;
	for (i = 0; i < 8; i++)
		p[i] = ctx->a + i;
	ctx->ret[0] = sum_arr((u64 *)p, 8);
	return 0;
}
