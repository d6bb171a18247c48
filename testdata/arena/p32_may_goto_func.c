#include "arena.h"
/* may_goto inside a static subprogram and a global one (each gets its own
 * loop counter slots). */
static __noinline u64 count(u32 __arena *p, u32 n)
{
	u64 s = 0;
	u32 i;

	for (i = 0; i < n && can_loop; i++)
		s += p[i];
	return s;
}

__noinline u64 fill(u32 *p __arg_arena, u32 n)
{
	u32 __arena *q = (u32 __arena *)p;
	volatile u64 total = 0;
	u32 i;

	for (i = 0; i < n && can_loop; i++) {
		q[i] = i * 3;
		total += i;
	}
	return total;
}

SEC("syscall") int may_goto_func(struct args *ctx)
{
	u32 __arena *p = alloc_pages(1);

	if (!p)
		return 1;
	ctx->ret[1] = fill((u32 *)p, ctx->a & 1023);
	ctx->ret[0] = count(p, ctx->a & 1023);
	return 0;
}
