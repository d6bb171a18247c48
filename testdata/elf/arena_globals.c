/* Arena globals for the loader tests only (the arena corpus lives in
 * testdata/arena): ld_imm64 of variables in .addr_space.1, addr_space_cast
 * (ALU64 MOV X off=1, which must survive loading), and an arena map. */
#include "bpf.h"

#define __arena __attribute__((address_space(1)))

struct {
	__uint(type, 33); /* BPF_MAP_TYPE_ARENA */
	__uint(map_flags, 1024); /* BPF_F_MMAPABLE */
	__uint(max_entries, 4); /* pages */
	enum { arena_user_base = 1ULL << 44 } *map_extra;
} arena SEC(".maps");

int __arena counter;
int __arena slots[16] = {1, 2, 3};

SEC("syscall")
int arena_bump(void *ctx)
{
	counter++;
	slots[counter & 15] += 5;
	return counter;
}

char LICENSE[] SEC("license") = "GPL";
