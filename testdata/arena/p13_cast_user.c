#include "arena.h"
/* Pointers stored in arena memory are user addresses: the program casts both ways. */
struct box {
	void __arena *self;
	u64 v;
};

SEC("syscall") int cast_user(struct args *ctx)
{
	struct box __arena *b = alloc_pages(1);

	if (!b)
		return 1;
	b->self = b;
	b->v = ctx->a;
	ctx->ret[0] = (u64)b->self;
	ctx->ret[1] = (u64)b;
	ctx->ret[2] = ((struct box __arena *)b->self)->v;
	return 0;
}
