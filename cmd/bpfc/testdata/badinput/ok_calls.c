/* Eight frames of bpf-to-bpf calls: exactly the kernel's MAX_CALL_FRAMES,
 * accepted. */
#include "../../../../testdata/elf/bpf.h"

#define LEVEL(n, next) \
	static __attribute__((noinline)) int f##n(int x) { return next(x ^ 0x5a) * 3 + x; }

static __attribute__((noinline)) int f8(int x) { return x * 7 + 1; }
LEVEL(7, f8)
LEVEL(6, f7)
LEVEL(5, f6)
LEVEL(4, f5)
LEVEL(3, f4)
LEVEL(2, f3)

SEC("syscall")
int shallow(int *ctx)
{
	return f2(*(volatile int *)ctx);
}

char LICENSE[] SEC("license") = "GPL";
