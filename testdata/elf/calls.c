/* bpf-to-bpf calls: static and global subprograms in .text shared by two
 * programs, nested calls, a callback passed by address to bpf_loop, and a
 * kfunc call. */
#include "bpf.h"

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

static __noinline __u64 mix(__u64 a, __u64 b)
{
	return (a ^ (b << 13)) + (b >> 3);
}

__noinline __u64 square_sum(__u64 n)
{
	__u64 s = 0;

#pragma clang loop unroll(disable)
	for (__u64 i = 0; i < n && i < 32; i++)
		s = mix(s, i * i);
	return s;
}

static int add_step(__u32 index, void *ctx)
{
	__u64 *acc = ctx;

	*acc = mix(*acc, index);
	return 0;
}

SEC("socket")
int caller_one(struct __sk_buff *skb)
{
	__u64 acc = square_sum(10);

	bpf_loop(8, add_step, &acc, 0);
	return (int)acc & 1;
}

SEC("syscall")
int caller_two(void *ctx)
{
	__u64 v;

	bpf_rcu_read_lock();
	v = mix(square_sum(5), 3);
	bpf_rcu_read_unlock();
	return (int)v;
}

char LICENSE[] SEC("license") = "GPL";
