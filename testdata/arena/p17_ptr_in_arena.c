#include "arena.h"
/* A table of arena pointers stored in the arena, followed indirectly. */
SEC("syscall") int ptr_in_arena(struct args *ctx)
{
	u64 __arena *__arena *tab = alloc_pages(1);
	u64 __arena *data;
	u64 sum = 0;
	int i;

	if (!tab)
		return 1;
	data = (u64 __arena *)(tab + 64);
	for (i = 0; i < 8; i++) {
		data[i] = i + ctx->a;
		tab[i] = data + (7 - i);
	}
	for (i = 0; i < 8; i++)
		sum = sum * 3 + *tab[i];
	ctx->ret[0] = sum;
	return 0;
}
