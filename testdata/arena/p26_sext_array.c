#include "arena.h"
/* Signed byte and halfword arrays summed with sign extension. */
SEC("syscall") int sext_array(struct args *ctx)
{
	s8 __arena *b = alloc_pages(1);
	s16 __arena *h;
	s64 s = 0;
	int i;

	if (!b)
		return 1;
	h = (s16 __arena *)(b + 256);
	for (i = 0; i < 16; i++) {
		b[i] = (s8)(ctx->a - i * 17);
		h[i] = (s16)(ctx->b - i * 4099);
	}
	for (i = 0; i < 16; i++)
		s += b[i] + h[i];
	ctx->ret[0] = s;
	return 0;
}
