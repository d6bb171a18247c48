/* A function whose frame is over 512 bytes: the verifier rejects it
 * ("combined stack size"/"invalid write to stack R10 off=-520"). */
#include "../../../../testdata/elf/bpf.h"

SEC("syscall")
int big(void *ctx)
{
	volatile char buf[600];
	for (int i = 0; i < 600; i += 64)
		buf[i] = i;
	return buf[520];
}

char LICENSE[] SEC("license") = "GPL";
