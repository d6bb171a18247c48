#include "arena.h"
/* Byte-wise copy and compare (u8 loads/stores in loops). */
SEC("syscall") int byte_copy(struct args *ctx)
{
	u8 __arena *a = alloc_pages(1);
	u8 __arena *b;
	u32 diff = 0;
	int i;

	if (!a)
		return 1;
	b = a + 2048;
	for (i = 0; i < 24; i++)
		a[i] = (u8)(ctx->a >> (i % 8));
	for (i = 0; i < 24; i++)
		b[i] = a[i];
	for (i = 0; i < 24; i++)
		diff += a[i] != b[i];
	ctx->ret[0] = diff;
	return 0;
}
