// Entry, exit, resume and fault paths between Go and compiled BPF code.
// See doc.go for the design. Offsets below must match execCtx (checked by
// TestCtxLayout).

#include "textflag.h"

#define CTX_BUDGET 0
#define CTX_GOSP 8
#define CTX_GOBP 16
#define CTX_BPFSP 24
#define CTX_EXIT 32
#define CTX_RAX 40
#define CTX_RDI 48
#define CTX_RSI 56
#define CTX_RDX 64
#define CTX_RCX 72
#define CTX_R8 80
#define CTX_R9 88
#define CTX_R10 96
#define CTX_R11 104
#define CTX_RBX 112
#define CTX_RBP 120
#define CTX_R12 128
#define CTX_R13 136
#define CTX_R14 144
#define CTX_R15 152
#define CTX_FAULTPC 160
#define CTX_FAULTADDR 168
#define CTX_FAULTSIG 176
#define CTX_RESUMED 184

// The stack pointer given to the code: the top of the 64 KiB region less 16,
// so that rsp & -0x10000 is the region's base (the context) at any depth.
#define STACK_TOP 65520

#define EXIT_FAULT 0x40000

// ucontext_t: uc_mcontext.gregs starts at 40; gregs index * 8.
#define UC_R9 48
#define UC_R10 56
#define UC_R11 64
#define UC_RSP 160
#define UC_RIP 168
#define SI_ADDR 16

// func enter(ctx, code uintptr)
// Loads R1..R5 (rdi, rsi, rdx, rcx, r8) from the context, switches to the
// private stack and calls the code. Returns to the caller either here after
// the code's ret (exit code 0, r0 saved) or from vmexit/vmfault.
TEXT ·enter(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ ctx+0(FP), R10
	MOVQ code+8(FP), R11
	MOVQ SP, CTX_GOSP(R10)
	MOVQ BP, CTX_GOBP(R10)
	MOVQ $0, CTX_RESUMED(R10)
	// Go's rsp also in rbx, which the code preserves (SysV callee-saved):
	// restoring rsp from a register is much cheaper than from memory
	// (measured: about 8 ns less per call here).
	MOVQ SP, BX
	MOVQ CTX_RDI(R10), DI
	MOVQ CTX_RSI(R10), SI
	MOVQ CTX_RDX(R10), DX
	MOVQ CTX_RCX(R10), CX
	MOVQ CTX_R8(R10), R8
	LEAQ STACK_TOP(R10), SP
	CALL R11
	// The code returned: rsp is STACK_TOP again, rbp and rbx are ours.
	MOVQ SP, R10
	ANDQ $-65536, R10
	MOVQ AX, CTX_RAX(R10)
	MOVQ $0, CTX_EXIT(R10)
	CMPQ CTX_RESUMED(R10), $0
	JNE resumed
	MOVQ BX, SP
	RET
resumed:
	// After an exit to Go, the caller is resume's (its rsp and rbp were
	// saved there).
	MOVQ CTX_GOBP(R10), BP
	MOVQ CTX_GOSP(R10), SP
	RET

// func enterAt(ctx, code, sp, r1, r2 uintptr)
// A nested call of BPF code (a bpf_loop callback) on the same private stack,
// below the suspended outer code at sp: R1, R2 = r1, r2. Returns like enter.
TEXT ·enterAt(SB), NOSPLIT|NOFRAME, $0-40
	MOVQ ctx+0(FP), R10
	MOVQ code+8(FP), R11
	MOVQ SP, CTX_GOSP(R10)
	MOVQ BP, CTX_GOBP(R10)
	MOVQ $0, CTX_RESUMED(R10)
	MOVQ SP, BX
	MOVQ r1+24(FP), DI
	MOVQ r2+32(FP), SI
	MOVQ sp+16(FP), SP
	CALL R11
	MOVQ SP, R10
	ANDQ $-65536, R10
	MOVQ AX, CTX_RAX(R10)
	MOVQ $0, CTX_EXIT(R10)
	CMPQ CTX_RESUMED(R10), $0
	JNE resumedAt
	MOVQ BX, SP
	RET
resumedAt:
	MOVQ CTX_GOBP(R10), BP
	MOVQ CTX_GOSP(R10), SP
	RET

// vmexit is reached by a jmp from a stub in the code region with r11 = exit
// code and [rsp] = the address to resume at. It saves every register in the
// context and returns to the Go caller of enter/resume.
TEXT ·vmexit(SB), NOSPLIT|NOFRAME, $0
	PUSHQ R10
	MOVQ SP, R10
	ANDQ $-65536, R10
	MOVQ R11, CTX_EXIT(R10)
	POPQ R11
	MOVQ R11, CTX_R10(R10)
	MOVQ AX, CTX_RAX(R10)
	MOVQ DI, CTX_RDI(R10)
	MOVQ SI, CTX_RSI(R10)
	MOVQ DX, CTX_RDX(R10)
	MOVQ CX, CTX_RCX(R10)
	MOVQ R8, CTX_R8(R10)
	MOVQ R9, CTX_R9(R10)
	MOVQ BX, CTX_RBX(R10)
	MOVQ BP, CTX_RBP(R10)
	MOVQ R12, CTX_R12(R10)
	MOVQ R13, CTX_R13(R10)
	MOVQ R14, CTX_R14(R10)
	MOVQ R15, CTX_R15(R10)
	MOVQ SP, CTX_BPFSP(R10)
	MOVQ CTX_GOBP(R10), BP
	MOVQ CTX_GOSP(R10), SP
	// pop; jmp rather than ret: the return stack buffer's top entry is the
	// code's call, which resume's ret will consume.
	POPQ R11
	JMP R11

// func resume(ctx uintptr)
// Restores the registers saved by vmexit (rax holding the helper's result)
// and returns into the code on its private stack. It does not return to its
// caller: the code's next exit (vmexit, vmfault, or its final ret through
// enter) returns there, with the Go stack pointer saved here.
TEXT ·resume(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ ctx+0(FP), R10
	MOVQ SP, CTX_GOSP(R10)
	MOVQ BP, CTX_GOBP(R10)
	MOVQ $1, CTX_RESUMED(R10)
	MOVQ CTX_RAX(R10), AX
	MOVQ CTX_RDI(R10), DI
	MOVQ CTX_RSI(R10), SI
	MOVQ CTX_RDX(R10), DX
	MOVQ CTX_RCX(R10), CX
	MOVQ CTX_R8(R10), R8
	MOVQ CTX_R9(R10), R9
	MOVQ CTX_RBX(R10), BX
	MOVQ CTX_RBP(R10), BP
	MOVQ CTX_R12(R10), R12
	MOVQ CTX_R13(R10), R13
	MOVQ CTX_R14(R10), R14
	MOVQ CTX_R15(R10), R15
	MOVQ CTX_BPFSP(R10), SP
	MOVQ CTX_R10(R10), R10
	// pop; jmp rather than ret: a ret would pop the return stack buffer's
	// entry for our caller's CALL and mispredict. r11 is free (a helper
	// call clobbers it, the yield sequence computed it).
	POPQ R11
	JMP R11

// vmfault is where the signal handler sends a fault inside compiled code
// that has no exception-table entry: r11 = faulting pc, r10 = fault address,
// r9 = signal number.
// The run ends with EXIT_FAULT.
TEXT ·vmfault(SB), NOSPLIT|NOFRAME, $0
	MOVQ SP, AX
	ANDQ $-65536, AX
	MOVQ R11, CTX_FAULTPC(AX)
	MOVQ R10, CTX_FAULTADDR(AX)
	MOVQ R9, CTX_FAULTSIG(AX)
	MOVQ $EXIT_FAULT, CTX_EXIT(AX)
	MOVQ BP, CTX_RBP(AX)
	MOVQ CTX_GOBP(AX), BP
	MOVQ CTX_GOSP(AX), SP
	POPQ R11
	JMP R11

// sigtramp is the SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP handler (C ABI: rdi = signo, rsi =
// siginfo, rdx = ucontext). A fault at a pc inside the code region is fixed
// up from the fault table (the extable rule: clear the load's destination,
// resume after the instruction) or sent to vmfault; anything else goes to
// Go's own handler with all registers untouched.
//
// The fault table is off-heap: [count uint64][entries], entry = pc uint64,
// len uint32, clear uint32 (ucontext offset of the register to clear, or 0),
// sorted by pc.
TEXT ·sigtramp(SB), NOSPLIT|NOFRAME, $0
	MOVQ UC_RIP(DX), AX
	MOVQ ·codeLo(SB), R8
	CMPQ AX, R8
	JCS notours
	MOVQ ·codeHi(SB), R8
	CMPQ AX, R8
	JCC notours
	MOVQ $1, R9
	LOCK
	XADDQ R9, ·inHandler(SB)
	// Only memory faults are fixed up (SIGSEGV 11, SIGBUS 7).
	CMPL DI, $11
	JEQ lookup
	CMPL DI, $7
	JNE nofix
lookup:
	MOVQ ·faultTable(SB), R8
	TESTQ R8, R8
	JEQ nofix
	MOVQ 0(R8), R9         // hi = count
	ADDQ $8, R8            // entries
	XORQ R10, R10          // lo = 0
search:
	CMPQ R10, R9
	JCC nofix
	MOVQ R10, R11
	ADDQ R9, R11
	SHRQ $1, R11           // mid
	MOVQ R11, CX
	SHLQ $4, CX
	CMPQ AX, 0(R8)(CX*1)
	JEQ found
	JCS below
	LEAQ 1(R11), R10       // pc > entry: lo = mid+1
	JMP search
below:
	MOVQ R11, R9           // pc < entry: hi = mid
	JMP search
found:
	MOVL 12(R8)(CX*1), R9  // ucontext offset of the register to clear
	TESTL R9, R9
	JEQ noclear
	MOVQ $0, 0(DX)(R9*1)
noclear:
	MOVL 8(R8)(CX*1), R9   // instruction length
	ADDQ R9, UC_RIP(DX)
	JMP done
nofix:
	MOVQ AX, UC_R11(DX)
	MOVQ SI_ADDR(SI), R9
	MOVQ R9, UC_R10(DX)
	MOVQ DI, UC_R9(DX)
	MOVQ $·vmfault(SB), R9
	MOVQ R9, UC_RIP(DX)
done:
	MOVQ $-1, R9
	LOCK
	XADDQ R9, ·inHandler(SB)
	RET
notours:
	// Outside the code region. A fault with rsp on a vm private stack is
	// compiled code gone astray (say, a ret through a return address the
	// program overwrote): end the run too. Go code never runs there.
	MOVQ UC_RSP(DX), R8
	MOVQ ·stackTableN(SB), R9
	LEAQ ·stackTable(SB), R10
scan:
	TESTQ R9, R9
	JEQ gohandler
	CMPQ R8, 0(R10)
	JCS scannext
	CMPQ R8, 8(R10)
	JCS strayed
scannext:
	ADDQ $16, R10
	DECQ R9
	JMP scan
strayed:
	MOVQ AX, UC_R11(DX)
	MOVQ SI_ADDR(SI), R9
	MOVQ R9, UC_R10(DX)
	MOVQ DI, UC_R9(DX)
	MOVQ $·vmfault(SB), R9
	MOVQ R9, UC_RIP(DX)
	RET
gohandler:
	MOVQ ·goHandler(SB), AX
	JMP AX

// func stubAddrs() (exit, fault, sig uintptr)
TEXT ·stubAddrs(SB), NOSPLIT, $0-24
	MOVQ $·vmexit(SB), AX
	MOVQ AX, exit+0(FP)
	MOVQ $·vmfault(SB), AX
	MOVQ AX, fault+8(FP)
	MOVQ $·sigtramp(SB), AX
	MOVQ AX, sig+16(FP)
	RET

// func rtSigaction(sig uintptr, new, old unsafe.Pointer) int64
TEXT ·rtSigaction(SB), NOSPLIT, $0-32
	MOVQ sig+0(FP), DI
	MOVQ new+8(FP), SI
	MOVQ old+16(FP), DX
	MOVQ $8, R10
	MOVQ $13, AX // SYS_rt_sigaction
	SYSCALL
	MOVQ AX, ret+24(FP)
	RET
