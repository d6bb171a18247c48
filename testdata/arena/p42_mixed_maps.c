#include "arena.h"
/* A lookup whose map differs between paths: the verifier cannot inline it
 * and calls the generic bpf_map_lookup_elem. */
#define BPF_MAP_TYPE_ARRAY 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, u64);
} even SEC(".maps"), odd SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

SEC("syscall") int mixed_maps(struct args *ctx)
{
	u32 k = ctx->a & 3;
	void *m = (ctx->b & 1) ? (void *)&odd : (void *)&even;
	u64 *v = bpf_map_lookup_elem(m, &k);

	ctx->ret[0] = v ? *v : 0;
	return 0;
}
