/* Plain ALU and loops: no helpers, no maps, no context access, so the
 * verifier leaves the program as it is (used by the bpftool comparison).
 * The seeds are volatile stack variables so that clang cannot fold the
 * computation away. */
#include "bpf.h"

SEC("socket")
int alu_loop(struct __sk_buff *skb)
{
	volatile __u64 seed = 0x1234;
	volatile __u32 rounds = 16;
	__u64 acc = seed;
	__u32 x = 7;
	__u32 n = rounds;

	if (n > 64)
		n = 64;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < n; i++) {
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
	volatile __s64 sv = -5;
	volatile __u64 su = 0xfedcba9876543210ULL;
	volatile __s32 sw = -1000;
	__s64 v = sv;
	__u64 u = su;
	__s32 w = sw;

	v = v * 3 - (__s64)u;
	u = (u >> 11) + ((__u64)v << 5);
	w = (w >> 2) + (__s32)(u & 0xffff);
	v = v / 7 + (__s64)(u % 1000);
	if (w > 100)
		return 2; /* XDP_PASS */
	if ((__s64)u < v)
		return 1; /* XDP_DROP */
	return (int)(v & 1) + 1;
}

char LICENSE[] SEC("license") = "GPL";
