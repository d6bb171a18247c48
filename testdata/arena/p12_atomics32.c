#include "arena.h"
/* 32-bit atomics on arena memory, including cmpxchg32 (kernel inserts a zext). */
SEC("syscall") int atomics32(struct args *ctx)
{
	u32 __arena *p = alloc_pages(1);
	u32 old;

	if (!p)
		return 1;
	__sync_fetch_and_add(p, (u32)ctx->a);
	old = __sync_val_compare_and_swap(p, (u32)ctx->a, 77);
	ctx->ret[0] = old;
	ctx->ret[1] = __sync_lock_test_and_set(p + 1, 3);
	ctx->ret[2] = __sync_fetch_and_add(p + 2, 1);
	ctx->ret[3] = p[0];
	return 0;
}
