#include "arena.h"
/* Helpers the verifier inlines on x86-64: bpf_get_smp_processor_id (a
 * per-cpu load) and bpf_jiffies64 (a load of jiffies). */
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static u64 (*bpf_jiffies64)(void) = (void *)118;

SEC("kprobe") int inlined_helpers(u64 *regs)
{
	u64 cpu = bpf_get_smp_processor_id();
	u64 j = bpf_jiffies64();

	return cpu + (j & 0xff) + regs[0];
}
