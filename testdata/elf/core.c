/* A CO-RE field access: the load's offset carries a .BTF.ext core_relo
 * record that libbpf would fix up against the kernel's BTF (bpfc keeps
 * clang's local offset and reports the relocation). */
#include "bpf.h"

struct task_like {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

SEC("syscall")
int core_read(void *ctx)
{
	struct task_like *t = ctx;

	return t->tgid + 1;
}

char LICENSE[] SEC("license") = "GPL";
