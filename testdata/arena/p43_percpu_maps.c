#include "arena.h"
/* Per-cpu array and hash maps: lookups inlined with a per-cpu address move,
 * updates and deletes sent to the map type's functions. */
#define BPF_MAP_TYPE_PERCPU_HASH 5
#define BPF_MAP_TYPE_PERCPU_ARRAY 6

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, u64);
} pcarr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, u32);
	__type(value, u64);
} pchash SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;

SEC("syscall") int percpu_maps(struct args *ctx)
{
	u32 k = ctx->a & 3;
	u64 v = ctx->b, *p;

	p = bpf_map_lookup_elem(&pcarr, &k);
	if (p)
		*p += v;
	bpf_map_update_elem(&pchash, &k, &v, 0);
	p = bpf_map_lookup_elem(&pchash, &k);
	if (p)
		ctx->ret[0] = *p;
	bpf_map_delete_elem(&pchash, &k);
	bpf_map_update_elem(&pcarr, &k, &v, 0);
	return 0;
}
