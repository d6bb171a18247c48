#include "arena.h"
/* Arena pointers kept in a volatile stack array (spill/fill) and live across calls. */
SEC("syscall") int stack_spill(struct args *ctx)
{
	u64 __arena *volatile ptrs[4];
	u64 __arena *base = alloc_pages(1);
	u64 __arena *a, *b, *c, *d, *e, *f, *g;
	u64 sum = 0;

	if (!base)
		return 1;
	ptrs[0] = base;
	ptrs[1] = base + 8;
	ptrs[2] = base + 16;
	ptrs[3] = base + 24;
	*ptrs[ctx->a & 1] = 42;
	*ptrs[2] = 7;
	sum = *ptrs[0] + *ptrs[1] + *ptrs[2] + *ptrs[3];
	a = base + 1; b = base + 2; c = base + 3; d = base + 4; e = base + 5; f = base + 6;
	g = alloc_pages(1); /* a..f stay live across the call: some are spilled */
	*a = 1; *b = 2; *c = 3; *d = 4; *e = 5; *f = 6;
	if (g)
		*g = sum;
	ctx->ret[0] = sum + *a + *b + *c + *d + *e + *f;
	return 0;
}
