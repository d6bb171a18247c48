#include "arena.h"
/* Atomic add / fetch-add / xchg / cmpxchg on arena memory (PROBE_ATOMIC). */
SEC("syscall") int atomics(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	u64 old;

	if (!p)
		return 1;
	__sync_fetch_and_add(p, ctx->a);
	old = __sync_fetch_and_add(p, 5);
	ctx->ret[0] = old;
	ctx->ret[1] = __sync_lock_test_and_set(p + 1, 9);
	ctx->ret[2] = __sync_val_compare_and_swap(p + 1, 9, 11);
	ctx->ret[3] = p[0] + p[1];
	return 0;
}
