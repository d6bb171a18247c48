#include "arena.h"
/* String length and compare over NUL-terminated arena strings. */
SEC("syscall") int strings(struct args *ctx)
{
	char __arena *s = alloc_pages(1);
	char __arena *t;
	int i, len = 0, cmp = 0;

	if (!s)
		return 1;
	t = s + 64;
	for (i = 0; i < 12; i++) {
		s[i] = 'a' + (ctx->a + i) % 26;
		t[i] = 'a' + (ctx->a + i) % 26;
	}
	t[5] = 'z';
	for (i = 0; i < 63 && s[i]; i++)
		len++;
	for (i = 0; i < 63; i++) {
		if (s[i] != t[i]) {
			cmp = s[i] - t[i];
			break;
		}
		if (!s[i])
			break;
	}
	ctx->ret[0] = len;
	ctx->ret[1] = cmp;
	return 0;
}
