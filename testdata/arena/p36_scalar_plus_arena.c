#include "arena.h"
/* scalar += arena pointer (asm): the verifier swaps the operands, so the
 * result is an arena pointer, the addition is narrowed and the store through
 * it is an arena store. */
SEC("syscall") int scalar_plus_arena(struct args *ctx)
{
	u64 __arena *p = alloc_pages(1);
	u64 a;

	if (!p)
		return 1;
	asm volatile(
		"%[a] = addr_space_cast(%[p], 0, 1);"
		"r5 = 16;"
		"r5 += %[a];"
		"*(u64 *)(r5 + 0) = 9;"
		"%[a] = *(u64 *)(r5 + 0);"
		: [a] "=&r"(a)
		: [p] "r"(p)
		: "r5", "memory");
	ctx->ret[0] = a;
	return 0;
}
