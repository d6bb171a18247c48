/* A call of a kfunc the kernel does not have (bad-input test of bpfc). */
#include "../../../../testdata/elf/bpf.h"

extern int bpf_no_such_kfunc(int x) __attribute__((section(".ksyms")));

SEC("syscall")
int call_missing(void *ctx)
{
	return bpf_no_such_kfunc(1);
}

char LICENSE[] SEC("license") = "GPL";
