/* Plain ALU and loops: no helpers, no maps, no context access, so the
 * verifier leaves the program as it is (used by the bpftool comparison). */
#include "bpf.h"

SEC("socket")
int alu_loop(struct __sk_buff *skb)
{
	__u64 acc = 0x1234;
	__u32 x = 7;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 16; i++) {
		acc = acc * 31 + i;
		acc ^= acc >> 7;
		x = (x << 3) | (x >> 29);
		x += (__u32)acc;
		if (acc & 0x100)
			acc -= x;
	}
	return (int)(acc ^ x) & 0xff;
}

SEC("xdp")
int xdp_bits(struct xdp_md *ctx)
{
	__s64 v = -5;
	__u64 u = 0xfedcba9876543210ULL;
	__s32 w = -1000;

	v = v * 3 - (__s64)u;
	u = (u >> 11) + ((__u64)v << 5);
	w = (w >> 2) + (__s32)(u & 0xffff);
	if (w > 100)
		return 2; /* XDP_PASS */
	if ((__s64)u < v)
		return 1; /* XDP_DROP */
	return 2;
}

char LICENSE[] SEC("license") = "GPL";
