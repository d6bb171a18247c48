#include "arena.h"
/* Variable indexing into an arena array (pointer arithmetic on arena pointers). */
SEC("syscall") int array_index(struct args *ctx)
{
	u32 __arena *arr = alloc_pages(1);
	u32 i, idx;

	if (!arr)
		return 1;
	for (i = 0; i < 64; i++)
		arr[i] = i * i;
	idx = ctx->a & 1023;
	arr[idx] += 5;
	ctx->ret[0] = arr[idx];
	ctx->ret[1] = arr[(ctx->b & 63)];
	return 0;
}
