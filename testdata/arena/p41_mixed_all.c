#include "arena.h"
/* Everything together: a config array map, an arena hash table filled in a
 * may_goto loop through a global function with an arg:arena argument,
 * 32-bit atomics, a division, inlined helpers. */
#define BPF_MAP_TYPE_ARRAY 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} config SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static u64 (*bpf_jiffies64)(void) = (void *)118;

struct bucket {
	u32 count;
	u32 pad;
	u64 sum;
};

__noinline int add(struct bucket *tab __arg_arena, u64 v, u64 nb)
{
	struct bucket __arena *t = (struct bucket __arena *)tab;
	u64 b;

	if (!t || !nb)
		return -1;
	b = v % nb;
	__sync_fetch_and_add(&t[b].count, 1);
	t[b].sum += v;
	return 0;
}

SEC("syscall") int mixed_all(struct args *ctx)
{
	struct bucket __arena *tab = alloc_pages(1);
	u32 zero = 0;
	u64 *cfg, nb = 8, i, v = ctx->a;

	if (!tab)
		return 1;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && *cfg > 0 && *cfg < 64)
		nb = *cfg;
	for (i = 0; i < ctx->b && can_loop; i++) {
		add((struct bucket *)tab, v, nb);
		v = v * 31 + bpf_get_smp_processor_id();
	}
	ctx->ret[0] = tab[0].count + tab[1].count;
	ctx->ret[1] = tab[0].sum / (tab[0].count | 1);
	ctx->ret[2] = bpf_jiffies64() != 0;
	return 0;
}
