/* Maps, global data (.data, .rodata, .bss) and helper calls. */
#include "bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} stamps SEC(".maps");

__u64 total = 1;           /* .data */
__u32 hits;                /* .bss */
const volatile __u32 limit = 100; /* .rodata */

SEC("socket")
int count_packets(struct __sk_buff *skb)
{
	__u32 key = bpf_get_prandom_u32() & 63;
	__u64 one = 1, *val;

	val = bpf_map_lookup_elem(&counters, &key);
	if (val) {
		__sync_fetch_and_add(val, 1);
	} else {
		bpf_map_update_elem(&counters, &key, &one, 0);
	}
	hits++;
	total += key;
	return hits < limit;
}

SEC("xdp")
int stamp(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *slot = bpf_map_lookup_elem(&stamps, &key);
	static const char fmt[] = "stamp %llu\n";

	if (!slot)
		return 1;
	*slot = bpf_ktime_get_ns();
	bpf_trace_printk(fmt, sizeof(fmt), *slot);
	return 2;
}

char LICENSE[] SEC("license") = "GPL";
