#include "arena.h"
/* Tail calls (a kprobe program: sleepable programs cannot use prog arrays,
 * so no arena here): a constant key (the verifier makes it a direct,
 * patchable jump), a variable key (indirect), and a constant key beyond the
 * array's size (indirect). */
#define BPF_MAP_TYPE_PROG_ARRAY 3

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, 4);
	__uint(value_size, 4);
} jmp_table SEC(".maps");

static long (*bpf_tail_call)(void *ctx, void *map, u32 index) = (void *)12;

SEC("kprobe") int tail_calls(u64 *regs)
{
	u64 b = regs[1];

	if (b == 1)
		bpf_tail_call(regs, &jmp_table, 2);
	if (b == 2)
		bpf_tail_call(regs, &jmp_table, regs[2] & 3);
	if (b == 3)
		bpf_tail_call(regs, &jmp_table, 9);
	return b;
}
