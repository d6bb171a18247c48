/* ir/elf reads map_extra only in the array form (see arena.h). */
#define ARENA_EXTRA_UINT
#include "arena.h"
/* Arena globals (section .addr_space.1, placed by libbpf at the end of the
 * arena): a counter, an initialised table and a list head kept in the arena. */
struct node {
	struct node __arena *next;
	u64 v;
};

u64 __arena counter;
u32 __arena table[16] = {1, 2, 3, 4};
struct node __arena *__arena head;

SEC("syscall") int arena_globals(struct args *ctx)
{
	struct node __arena *n = alloc_pages(1);

	counter += ctx->a;
	table[ctx->b & 15] += 1;
	if (n) {
		n->v = counter;
		n->next = head;
		head = n;
	}
	ctx->ret[0] = counter + table[0] + table[3];
	ctx->ret[1] = head ? head->v : 0;
	return 0;
}
