#include "arena.h"
/* A struct with fields of mixed sizes and signedness. */
struct rec {
	s8 a;
	u8 b;
	s16 c;
	u16 d;
	s32 e;
	u32 f;
	s64 g;
};

SEC("syscall") int struct_fields(struct args *ctx)
{
	struct rec __arena *r = alloc_pages(1);
	s64 x = ctx->a;

	if (!r)
		return 1;
	r->a = x; r->b = x; r->c = x; r->d = x; r->e = x; r->f = x; r->g = x;
	ctx->ret[0] = r->a + r->c + r->e;
	ctx->ret[1] = r->b + r->d + r->f;
	ctx->ret[2] = r->g;
	return 0;
}
