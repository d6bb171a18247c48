#include "arena.h"
/* Array and hash map helpers: the verifier inlines array and hash lookups
 * and calls the map type's own update/delete functions. */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10);
	__type(key, u32);
	__type(value, u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u64);
	__type(value, u32);
} hsh SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;

SEC("syscall") int maps(struct args *ctx)
{
	u32 k = ctx->a & 7;
	u64 hk = ctx->b, v = ctx->c;
	u32 hv = 5;
	u64 *p;
	u32 *q;

	bpf_map_update_elem(&arr, &k, &v, 0);
	p = bpf_map_lookup_elem(&arr, &k);
	if (p)
		ctx->ret[0] = *p;
	bpf_map_update_elem(&hsh, &hk, &hv, 0);
	q = bpf_map_lookup_elem(&hsh, &hk);
	if (q)
		ctx->ret[1] = *q;
	bpf_map_delete_elem(&hsh, &hk);
	bpf_map_delete_elem(&arr, &k);
	return 0;
}
