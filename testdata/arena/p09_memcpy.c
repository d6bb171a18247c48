#include "arena.h"
/* Bulk copy between two arena buffers, 8 bytes at a time. */
SEC("syscall") int bulk_copy(struct args *ctx)
{
	u64 __arena *src = alloc_pages(2);
	u64 __arena *dst;
	u64 sum = 0;
	int i;

	if (!src)
		return 1;
	dst = src + 512;
	for (i = 0; i < 32; i++)
		src[i] = ctx->a + i;
	for (i = 0; i < 32; i++)
		dst[i] = src[i];
	for (i = 0; i < 32; i++)
		sum += dst[i];
	ctx->ret[0] = sum;
	return 0;
}
