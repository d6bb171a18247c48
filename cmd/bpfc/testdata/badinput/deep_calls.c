/* Nine frames of bpf-to-bpf calls: one more than the kernel's MAX_CALL_FRAMES
 * (8); the verifier rejects it ("the call stack of 9 frames is too deep"). */
#include "../../../../testdata/elf/bpf.h"

#define LEVEL(n, next) \
	static __attribute__((noinline)) int f##n(int x) { return next(x ^ 0x5a) * 3 + x; }

static __attribute__((noinline)) int f9(int x) { return x * 7 + 1; }
LEVEL(8, f9)
LEVEL(7, f8)
LEVEL(6, f7)
LEVEL(5, f6)
LEVEL(4, f5)
LEVEL(3, f4)
LEVEL(2, f3)

SEC("syscall")
int deep(int *ctx)
{
	return f2(*(volatile int *)ctx);
}

char LICENSE[] SEC("license") = "GPL";
