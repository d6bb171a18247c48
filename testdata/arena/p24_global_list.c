#include "arena.h"
/* Global functions taking arena list heads: push and sum. */
struct item {
	struct item __arena *next;
	u64 v;
};

__noinline int push(struct item *head __arg_arena, struct item *n __arg_arena, u64 v)
{
	struct item __arena *h = (struct item __arena *)head;
	struct item __arena *it = (struct item __arena *)n;

	if (!h || !it)
		return -1;
	it->v = v;
	it->next = h->next;
	h->next = it;
	return 0;
}

__noinline u64 total(struct item *head __arg_arena)
{
	struct item __arena *it = (struct item __arena *)head;
	u64 s = 0;
	int i;

	for (i = 0; i < 16 && it; i++) {
		s += it->v;
		it = it->next;
	}
	return s;
}

SEC("syscall") int global_list(struct args *ctx)
{
	struct item __arena *pool = alloc_pages(1);
	int i;

	if (!pool)
		return 1;
	for (i = 1; i < 6; i++)
		push((struct item *)pool, (struct item *)(pool + i), i * ctx->a);
	ctx->ret[0] = total((struct item *)pool);
	return 0;
}
