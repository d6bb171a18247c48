#include "arena.h"
/* An LRU hash map: the inlined lookup also sets the element's reference bit. */
#define BPF_MAP_TYPE_LRU_HASH 9

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} lru SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;

SEC("syscall") int lru_hash(struct args *ctx)
{
	u32 k = ctx->a;
	u64 v = ctx->b, *p;

	bpf_map_update_elem(&lru, &k, &v, 0);
	p = bpf_map_lookup_elem(&lru, &k);
	if (p)
		ctx->ret[0] = *p;
	bpf_map_delete_elem(&lru, &k);
	return 0;
}
