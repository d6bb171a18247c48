// Package passes holds what the Linux verifier does to a program before the
// JIT sees it, as separate pipeline passes, in the verifier's order:
//
//	zext-mark   do_check's zext_dst marks (mark_insn_zext): which 32-bit
//	            definitions have their upper half read as 64 bits
//	stackdepth  check_max_stack_depth: bytes of stack each function uses
//	arena       convert_ctx_accesses + the arena part of do_misc_fixups:
//	            PROBE_MEM32 / PROBE_MEM32SX / PROBE_ATOMIC, cast lowering,
//	            32-bit arena arithmetic, UsesArena
//	fixups      do_misc_fixups: div/mod guards, map and arena-global
//	            addresses, helper/kfunc call immediates, may_goto
//	            expansion, tail calls (direct or indirect), map helpers
//	            (array/hash lookups inlined, update/delete redirected),
//	            inlined smp_processor_id and jiffies64
//	zext        opt_subreg_zext_lo32_rnd_hi32: explicit zero-extensions
//	            (after cmpxchg32; everywhere marked with ForceZext)
//	regusage    the JIT's detect_reg_usage: callee-saved registers, tail
//	            calls, arena: what each prologue saves
//
// Default builds that pipeline for a program as an object file gives it;
// JIT (alias FromXlated; JITWith for options) builds the short one for the
// kernel's xlated program, whose verifier rewrites are done: arena
// (inference only), tailcalls (the dump shows tail calls as helper calls),
// stackdepth, regusage. Every pass is registered by name in
// pipeline.Default, so embedders can list, disable, reorder or replace
// them; each documents what it guarantees to the next.
//
// The analyses are whole-program but per function: control flow is walked
// over each function's instructions (ld_imm64 taking two slots), and
// bpf-to-bpf calls are handled through function summaries the way the
// verifier's frames make them behave (a static function sees its callers'
// values; a global function, like the main program, is checked on its own).
// Everything a pass cannot do without the kernel (context field
// conversions, most helper inlining, PROBE_MEM loads through kernel object
// pointers, LD_ABS) is an error naming the instruction rather than a guess.
//
// The tests compare with the live 6.18 kernel through committed captures:
// testdata/arena (44 clang-built programs, 37 of them arena programs:
// xlated, xlated with BPF_F_TEST_RND_HI32, jited bytes, addresses) and
// passes/testdata/zext (hand-built programs); -capture rewrites them on a
// machine with BPF. The
// Default pipeline followed by backend/amd64 reproduces the kernel's image
// of every one of those programs byte for byte, from the object file and
// from the kernel's xlated dump (JIT pipeline).
package passes
