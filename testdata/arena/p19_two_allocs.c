#include "arena.h"
/* Two allocations, pointer comparisons and a free. */
SEC("syscall") int two_allocs(struct args *ctx)
{
	u64 __arena *a = alloc_pages(1);
	u64 __arena *b = alloc_pages(2);

	if (!a || !b)
		return 1;
	a[0] = 1;
	b[0] = 2;
	b[511] = ctx->a;
	ctx->ret[0] = (u64)b - (u64)a;
	ctx->ret[1] = a[0] + b[0] + b[511];
	bpf_arena_free_pages(&arena, b, 2);
	return 0;
}
