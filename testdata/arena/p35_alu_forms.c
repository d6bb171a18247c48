#include "arena.h"
/* Arithmetic forms on arena pointers, written in asm to pin the
 * instructions: 64-bit add/and/lsh through an arena pointer are narrowed
 * to 32 bits by the verifier; neg and bswap make scalars and stay 64-bit;
 * scalar += arena pointer. */
SEC("syscall") int alu_forms(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	u64 a, b, c;

	if (!p)
		return 1;
	asm volatile(
		"%[a] = addr_space_cast(%[p], 0, 1);"
		"%[a] += 8;"
		"%[a] &= -8;"
		"*(u64 *)(%[a] + 0) = 7;"
		"%[b] = %[a];"
		"%[b] = -%[b];"
		"%[c] = %[a];"
		"%[c] = bswap64 %[c];"
		: [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c)
		: [p] "r"(p)
		: "memory");
	ctx->ret[0] = a;
	ctx->ret[1] = b;
	ctx->ret[2] = c;
	ctx->ret[3] = p[1];
	return 0;
}
