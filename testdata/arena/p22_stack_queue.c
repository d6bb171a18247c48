#include "arena.h"
/* A stack (LIFO) and a ring queue in arena memory. */
struct ring {
	u32 head, tail;
	u64 items[16];
};

SEC("syscall") int stack_queue(struct args *ctx)
{
	struct ring __arena *q = alloc_pages(1);
	u64 s = 0;
	int i;

	if (!q)
		return 1;
	for (i = 0; i < 10; i++) {
		q->items[q->tail % 16] = i + ctx->a;
		q->tail++;
	}
	for (i = 0; i < 4; i++) {
		s += q->items[q->head % 16];
		q->head++;
	}
	ctx->ret[0] = s;
	ctx->ret[1] = q->tail - q->head;
	return 0;
}
