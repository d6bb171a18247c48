#include "arena.h"
/* A tail call with one constant key below the array's size: the verifier
 * records a poke descriptor and the JIT emits the direct, patchable form. */
#define BPF_MAP_TYPE_PROG_ARRAY 3

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, 4);
	__uint(value_size, 4);
} progs SEC(".maps");

static long (*bpf_tail_call)(void *ctx, void *map, u32 index) = (void *)12;

SEC("kprobe") int tail_call_direct(u64 *regs)
{
	u64 v = regs[0];

	if (v & 1)
		bpf_tail_call(regs, &progs, 5);
	return v * 3;
}
