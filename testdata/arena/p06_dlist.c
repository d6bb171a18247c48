#include "arena.h"
/* A doubly linked list: insert at both ends, unlink one node, walk backwards. */
struct dnode {
	struct dnode __arena *next, *prev;
	u32 key;
};

SEC("syscall") int dlist(struct args *ctx)
{
	struct dnode __arena *n = alloc_pages(1);
	struct dnode __arena *a, *b, *c;
	u64 sum = 0;

	if (!n)
		return 1;
	a = n; b = n + 1; c = n + 2;
	a->key = 1; b->key = 2; c->key = ctx->a;
	a->next = b; b->prev = a;
	b->next = c; c->prev = b;
	a->prev = c; c->next = a;
	/* unlink b */
	b->prev->next = b->next;
	b->next->prev = b->prev;
	sum = c->prev->key * 100 + a->next->key;
	ctx->ret[0] = sum;
	return 0;
}
