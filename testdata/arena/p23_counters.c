#include "arena.h"
/* Histogram of values with atomic increments. */
SEC("syscall") int counters(struct args *ctx)
{
	u64 __arena *hist = alloc_pages(1);
	u64 v = ctx->a;
	int i;

	if (!hist)
		return 1;
	for (i = 0; i < 20; i++) {
		__sync_fetch_and_add(&hist[v & 7], 1);
		v = v * 6364136223846793005ull + 1442695040888963407ull;
	}
	ctx->ret[0] = hist[0] + hist[1] + hist[2] + hist[3];
	ctx->ret[1] = hist[4] + hist[5] + hist[6] + hist[7];
	return 0;
}
