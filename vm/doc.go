// Package vm runs eBPF programs compiled by backend/amd64 — machine code in
// the shapes of the Linux 6.18 x86-64 JIT — inside the Go process, with the
// kernel's fault recovery for arena (PROBE_MEM32) accesses, helpers written
// in Go, and cooperation with the Go scheduler and garbage collector. It
// needs no cgo.
//
// # Code memory
//
// All code lives in one code region: a sparse memfd of 256 MiB mapped twice,
// read-write (where Layout.Write puts the bytes) and read-execute (where the
// code runs), at different addresses, so every relative offset is computed
// against an address other than the one written (the kernel's rw_image /
// image split) and no page is ever writable and executable. The first 64
// KiB of the region hold the stubs (below); programs are allocated after it
// (first fit, pages), filled with int3 when freed. Code, stacks, contexts
// and fault tables are off the Go heap and hold no Go pointers.
//
// # Entering the code
//
// Each run takes a private stack: a 64 KiB region aligned to 64 KiB whose
// first page is the execution context (the budget counter at offset 0, the
// saved Go and BPF stack pointers, the BPF registers at an exit), the next
// page a PROT_NONE guard, the rest the stack. enter (Go assembly, NOSPLIT
// and NOFRAME) loads R1..R5 into rdi, rsi, rdx, rcx, r8, saves Go's rsp and
// rbp in the context, switches rsp to the private stack and calls the
// program's entry; the program's ret lands back in enter, which stores rax
// (R0) and returns (with Go's rsp kept in rbx, which the code preserves, so
// the common return does not load rsp from memory). Because the stack region is 64 KiB aligned, code at any
// depth finds its context as rsp & -0x10000, with no register reserved.
//
// # Exits: helpers, callx, kfuncs, yields
//
// A program leaves to Go only through stubs in the code region. The
// vm-helpers pass (run first, before the verifier's passes) points every
// helper call's imm at the stub of that helper id, every callx rX (ubpf's
// indirect call of the helper whose id is in rX) at the "callx rX" stub,
// every kfunc call at a per-program slot stub; the backend then emits the
// kernel's `call rel32` to CallBase + imm with CallBase = the region's
// start. A stub is `mov r11d, exit code; jmp [rip+slot]` into vmexit (Go
// assembly), which saves every register in the context and returns to Go
// as if enter had returned. Go serves the exit — calls the helper from the
// shared helpers.Registry (a panic becomes the run's error; Context.Stop
// ends the run), or refills the budget — and resume restores the registers
// and returns into the code with rax = the helper's result. Both
// transitions end in pop; jmp so the return stack buffer stays balanced.
// Bpf-to-bpf calls run natively.
//
// The backend's Target.YieldCheck puts `mov r11,rsp; and r11,-0x10000; sub
// qword [r11],1; jnz +5; call YieldAddr` before every backward jump. When
// the counter runs out the yield stub exits to Go, which checks the run's
// context and budget, calls runtime.Gosched (so a stop-the-world or
// preemption request is honoured within YieldInterval back-edges) and
// resumes. The timed may_goto expansion calls a stub that implements
// arch_bpf_timed_may_goto (count in AX, frame-relative slot). bpf_loop runs
// its callback (a function of the program, by address) as nested runs on
// the same private stack, below the suspended caller (enterAt), restoring
// the caller's saved state after each.
//
// # Faults
//
// sigtramp (Go assembly) is installed with a raw rt_sigaction for SIGSEGV,
// SIGBUS, SIGFPE, SIGILL and SIGTRAP, keeping Go's flags (SA_ONSTACK,
// SA_SIGINFO, SA_RESTORER), mask and restorer. For a faulting rip outside
// the code region it jumps to Go's own handler with every register
// untouched, so Go code faults and panics exactly as before. Inside the
// region it binary-searches the fault table — every loaded program's
// exception-table entries as absolute pcs, off-heap, immutable and sorted,
// published with an atomic store and freed only once no handler can be
// reading it — and applies the kernel's rule (extable.Apply): clear the
// destination register of a load, skip a store, rip += instruction length,
// return. A fault with no entry (a bug, a stack overflow into the guard
// page, a division the fixups did not guard) sends the code to vmfault,
// which ends the run with a FaultError.
//
// # Lifetime
//
// A Program counts its runs and Runners; Close waits until none is left,
// then unpublishes its fault entries and frees its code, so code cannot be
// freed while it runs. Any number of goroutines may run the same and
// different programs at once.
package vm
