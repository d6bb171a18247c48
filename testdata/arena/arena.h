/* arena.h: the few definitions the bpfc arena test programs need (instead of vmlinux.h). */
#ifndef BPFC_ARENA_H
#define BPFC_ARENA_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __ulong(name, val) enum { __bpfc_##name = val } name
#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))
#define __noinline __attribute__((noinline))
#define __arena __attribute__((address_space(1)))
#define __arg_arena __attribute__((btf_decl_tag("arg:arena")))

#define BPF_MAP_TYPE_ARENA 33
#define BPF_F_MMAPABLE 1024
#define NUMA_NO_NODE (-1)
#define PAGE_SIZE 4096

/* Every program has one arena of 64 pages at user address 4 GiB (or 1 GiB
 * with ARENA_EXTRA_UINT, which writes map_extra as an array size rather than
 * libbpf's enum form, for loaders that only read the array form). */
struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 64);
#ifdef ARENA_EXTRA_UINT
	__uint(map_extra, 0x40000000);
#else
	__ulong(map_extra, 0x100000000ULL);
#endif
} arena SEC(".maps");

void __arena *bpf_arena_alloc_pages(void *map, void __arena *addr, u32 page_cnt, int node_id,
				    u64 flags) __ksym __weak;
void bpf_arena_free_pages(void *map, void __arena *ptr, u32 page_cnt) __ksym __weak;

/* ctx of the syscall programs: arguments in, results out. */
struct args {
	u64 a, b, c, d;
	u64 ret[4];
};

static inline void __arena *alloc_pages(u32 n)
{
	return bpf_arena_alloc_pages(&arena, (void __arena *)0, n, NUMA_NO_NODE, 0);
}

/* can_loop: a may_goto guard (libbpf's bpf_experimental.h idea): true until
 * the kernel's loop budget runs out. */
#define can_loop                                                        \
	({                                                              \
		__label__ l_break, l_continue;                          \
		int ret = 1;                                            \
		asm volatile goto("may_goto %l[l_break]" :::: l_break); \
		goto l_continue;                                        \
	l_break:                                                        \
		ret = 0;                                                \
	l_continue:;                                                    \
		ret;                                                    \
	})

char _license[] SEC("license") = "GPL";

#endif
