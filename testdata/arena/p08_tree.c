#include "arena.h"
/* A binary search tree: insert a few keys and look one up. */
struct tnode {
	struct tnode __arena *l, *r;
	s64 key;
};

SEC("syscall") int tree(struct args *ctx)
{
	struct tnode __arena *pool = alloc_pages(1);
	struct tnode __arena *root, *cur;
	s64 keys[6] = {50, 30, 70, 20, 40, 60};
	int i, d;

	if (!pool)
		return 1;
	root = pool;
	root->key = keys[0];
	for (i = 1; i < 6; i++) {
		struct tnode __arena *n = pool + i;
		n->key = keys[i];
		cur = root;
		for (d = 0; d < 6; d++) {
			if (n->key < cur->key) {
				if (!cur->l) { cur->l = n; break; }
				cur = cur->l;
			} else {
				if (!cur->r) { cur->r = n; break; }
				cur = cur->r;
			}
		}
	}
	cur = root;
	for (d = 0; d < 6 && cur; d++) {
		if (cur->key == (s64)ctx->a)
			break;
		cur = (s64)ctx->a < cur->key ? cur->l : cur->r;
	}
	ctx->ret[0] = cur ? d + 1 : 0;
	return 0;
}
