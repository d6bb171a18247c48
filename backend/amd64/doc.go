// Package amd64 is bpfc's x86-64 code generator. It produces the same bytes
// as the Linux 6.18 BPF JIT (arch/x86/net/bpf_jit_comp.c, do_jit and
// bpf_int_jit_compile) for the post-verifier ("xlated") program, BPF arena
// included, and can write them at any address for in-process execution.
//
// # Instruction selection
//
// Every instruction the kernel's do_jit accepts is selected the way it
// selects it (select.go, emit.go): the same register map (R0 rax, R1 rdi,
// R2 rsi, R3 rdx, R4 rcx, R5 r8, R6 rbx, R7 r13, R8 r14, R9 r15, R10 rbp, AX
// r10, scratch r11, arena base r12), the same redundant REX prefixes and
// always-present displacements, the same short forms (imm8, rax, xor for
// zero, mov32 for u32 constants), div/mod through rax/rdx with pushes,
// BMI2 shifts, the PROBE_MEM address check, [base + r12 + off] arena
// accesses with exception-table entries, the cmpxchg loop of fetch-and/or/
// xor, tail calls (direct and indirect, retpoline thunk) and the prologue
// and epilogue of each function. Instructions the kernel rejects give an
// *ir.Error naming the instruction; no input panics.
//
// # Layout without re-emitting
//
// The kernel runs do_jit repeatedly: addrs[i] starts at the pessimistic
// 64*(i+1), each pass re-emits every instruction and updates addrs[] in
// place (so backward targets see this pass's offsets and forward targets
// the previous pass's), until the image size stops changing; from pass 15
// on, jumps that would shrink are padded with NOPs (4 bytes before a jcc, 3
// before a jmp, 2 or 5 for a zero-offset jmp) so that it converges; after
// 20 passes without convergence the program is not JITed. Then one more
// pass writes the image (and, for programs with several functions,
// jit_subprogs runs an extra pass per function with padding on and the
// callees' real addresses).
//
// Only jumps change size between passes. So instruction selection runs
// once: every instruction's fixed bytes (all of a non-jump, the cmp/test
// prefix of a conditional jump) go into one buffer, and the variable
// instructions (conditional jumps, JA/gotol, EXITs after the first, which
// jump to the epilogue) are kept in a list. The variable instructions cut
// the function into segments of fixed code; a pass walks only that list,
// computing each jump's start from its segment's start plus the fixed
// bytes before it, and a target's address from its segment's start plus
// its precomputed offset in the segment. Segment ends are updated in place
// in program order, which reproduces the kernel's mix of this-pass and
// previous-pass addresses exactly (pass 0 uses the 64-byte estimate for
// forward targets), including the INSN_SZ_DIFF padding rule and its errors.
// A pass costs O(number of jumps), not O(instructions), and allocates
// nothing. The image pass and the subprogram extra pass are simulated the
// same way, so the final form of every jump (short, near, omitted, NOPs)
// is known before any byte is written.
//
// # Final pass
//
// Layout.Write copies the fixed bytes segment by segment into a
// caller-provided read-write buffer, emits each jump in its recorded form,
// then applies relocations against the address the code will execute at:
// calls (helpers and kfuncs at CallBase+imm, bpf-to-bpf calls at the
// callee's exec address), the retpoline and return thunks, the vm's yield
// stub, and function-address loads (checked to encode to the length the
// layout reserved with the kernel's MODULES_VADDR placeholder). The
// exception table follows the code at roundup(len, 4), padded with int3,
// each entry's instruction offset relative to the entry itself. Any
// disagreement between the written code and the layout is an error.
//
// # Target
//
// Target holds what varies: arena bases, __bpf_call_base, BMI2, NOP size
// limit, retpoline and return thunks, SLS, PROBE_MEM bounds, the
// tail-call struct offsets of the running kernel, and the vm-only budget
// check (YieldCheck): before every jump whose target is at or before
// itself it emits
//
//	mov r11, rsp            ; 49 89 E3
//	and r11, -0x10000       ; 49 81 E3 00 00 FF FF
//	sub qword ptr [r11], 1  ; 49 83 2B 01
//	jnz +5                  ; 75 05
//	call YieldAddr          ; E8 rel32
//
// as part of the jump's fixed prefix, so the layout accounts for it.
// Linux618 is this machine's kernel; Host detects BMI2 for in-process use.
//
// # Not covered
//
// What this machine's kernel never does for the programs bpfc compiles is
// left out: constant blinding (bpf_jit_harden is 0; a blinded program would
// arrive already rewritten), private stacks (tracing programs only),
// exception boundaries and callbacks (bpf_throw), IBT/kCFI preambles,
// gotox (indirect jumps, after 6.18) and classic-BPF programs. Such inputs
// either compile as the kernel would without the feature or give an error.
//
// Listing disassembles an image with x86asm (Intel syntax) interleaved with
// the BPF instructions, using the BPF->x86 offset map (Func.Addrs).
package amd64
