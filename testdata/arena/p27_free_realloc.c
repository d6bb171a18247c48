#include "arena.h"
/* Free pages and allocate again at a fixed address. */
SEC("syscall") int free_realloc(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	u64 __arena *q;

	if (!p)
		return 1;
	p[3] = ctx->a;
	bpf_arena_free_pages(&arena, p, 1);
	q = bpf_arena_alloc_pages(&arena, p, 1, NUMA_NO_NODE, 0);
	if (!q)
		return 2;
	ctx->ret[0] = q[3];
	ctx->ret[1] = q == p;
	q[3] = 7;
	ctx->ret[2] = q[3];
	return 0;
}
