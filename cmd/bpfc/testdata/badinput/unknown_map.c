/* A reference to a map that is declared but defined nowhere (bad-input test
 * of bpfc): the ld_imm64 relocation names an undefined symbol. */
#include "../../../../testdata/elf/bpf.h"

extern struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} missing_map SEC(".maps");

SEC("syscall")
int use_missing(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&missing_map, &key);
	return v ? *v : 0;
}

char LICENSE[] SEC("license") = "GPL";
