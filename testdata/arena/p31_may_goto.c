#include "arena.h"
/* An unbounded list walk guarded by may_goto (can_loop). */
struct node {
	struct node __arena *next;
	u64 val;
};

SEC("syscall") int may_goto_walk(struct args *ctx)
{
	struct node __arena *pool = alloc_pages(1);
	struct node __arena *n;
	u64 sum = 0, i, cnt = ctx->b & 255;

	if (!pool)
		return 1;
	for (i = 0; i < cnt && can_loop; i++) {
		pool[i].val = i + ctx->a;
		pool[i].next = &pool[i + 1];
	}
	pool[i].next = pool;
	for (n = pool; n != pool + i && can_loop; n = n->next)
		sum += n->val;
	ctx->ret[0] = sum;
	return 0;
}
