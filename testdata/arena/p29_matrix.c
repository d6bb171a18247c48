#include "arena.h"
/* A small matrix product with nested loops. */
#define N 4
SEC("syscall") int matrix(struct args *ctx)
{
	s32 __arena *m = alloc_pages(1);
	s32 __arena *a, *b, *c;
	int i, j, k;

	if (!m)
		return 1;
	a = m; b = m + N * N; c = m + 2 * N * N;
	for (i = 0; i < N * N; i++) {
		a[i] = i + (s32)ctx->a;
		b[i] = i - 3;
	}
	for (i = 0; i < N; i++)
		for (j = 0; j < N; j++) {
			s32 s = 0;
			for (k = 0; k < N; k++)
				s += a[i * N + k] * b[k * N + j];
			c[i * N + j] = s;
		}
	ctx->ret[0] = (s64)c[0] + c[5] + c[10] + c[15];
	return 0;
}
