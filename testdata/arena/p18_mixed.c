#include "arena.h"
/* Arena and stack memory in the same function. */
SEC("syscall") int mixed(struct args *ctx)
{
	u64 buf[8];
	u64 __arena *p = alloc_pages(1);
	int i;

	if (!p)
		return 1;
	for (i = 0; i < 8; i++)
		buf[i] = ctx->a * i;
	for (i = 0; i < 8; i++)
		p[i] = buf[7 - i];
	ctx->ret[0] = p[0] ^ buf[0];
	ctx->ret[1] = p[3];
	return 0;
}
