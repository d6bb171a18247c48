#include "arena.h"
/* A singly linked list built in the arena and summed. */
struct node {
	struct node __arena *next;
	u64 val;
};

SEC("syscall") int list(struct args *ctx)
{
	struct node __arena *base = alloc_pages(1);
	struct node __arena *head, *n;
	u64 sum = 0;
	int i;

	if (!base)
		return 1;
	head = base + 16; /* sentinel, never NULL: storing a NULL constant trips clang-19 */
	head->val = 0;
	head->next = head;
	for (i = 0; i < 16; i++) {
		n = base + i;
		n->val = i * ctx->a;
		n->next = head;
		head = n;
	}
	for (i = 0; i < 16; i++) {
		sum += head->val;
		head = head->next;
	}
	ctx->ret[0] = sum;
	return 0;
}
