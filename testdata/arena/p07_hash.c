#include "arena.h"
/* An open-addressing hash table in the arena. */
#define NB 32
struct slot {
	u32 key;
	u32 used;
	u64 val;
};

SEC("syscall") int hash(struct args *ctx)
{
	struct slot __arena *t = alloc_pages(1);
	u32 i, j, h;
	u64 found = 0;

	if (!t)
		return 1;
	for (i = 1; i <= 8; i++) {
		h = (i * 2654435761u) % NB;
		for (j = 0; j < 4; j++) {
			struct slot __arena *s = &t[(h + j) % NB];
			if (!s->used) {
				s->used = 1;
				s->key = i;
				s->val = i * ctx->a;
				break;
			}
		}
	}
	h = (3 * 2654435761u) % NB;
	for (j = 0; j < 4; j++) {
		struct slot __arena *s = &t[(h + j) % NB];
		if (s->used && s->key == 3) {
			found = s->val;
			break;
		}
	}
	ctx->ret[0] = found;
	return 0;
}
