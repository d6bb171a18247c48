#include "arena.h"
/* memset-style fill with 32-bit stores and a checksum with 16-bit loads. */
SEC("syscall") int fill(struct args *ctx)
{
	u32 __arena *p = alloc_pages(1);
	u16 __arena *h;
	u32 sum = 0;
	int i;

	if (!p)
		return 1;
	for (i = 0; i < 32; i++)
		p[i] = (u32)ctx->a;
	h = (u16 __arena *)p;
	for (i = 0; i < 64; i++)
		sum += h[i];
	ctx->ret[0] = sum;
	return 0;
}
