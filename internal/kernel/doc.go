// Package kernel is bpfc's live-kernel oracle: it loads programs into the
// running Linux kernel through the raw bpf(2) system call, reads back what
// the verifier and the x86-64 JIT made of them, and turns that into a
// Capture that reproduces the JIT's output without the kernel.
//
// Loading (Load, Spec) encodes the project's own ir.Program with ir.Encode:
// nothing is re-encoded through another library, so every field of every
// instruction reaches the kernel as written. Maps are created first and
// passed in fd_array (programs refer to them by index with ld_imm64 src 5/6);
// an arena map is mmap'ed (at its map_extra when given) before the program
// loads, as the kernel requires. By default every instruction gets a BTF
// line-info record (a minimal BTF blob is built here; multi-function
// programs also get func info), which makes the kernel report where each
// instruction's code starts: an exact BPF->x86 offset map (each record's line
// number is the source index + 1, so xlated instructions map back to the
// program as loaded). Spec.FuncDecls declares global functions and their
// arg:arena arguments; Spec.MapFDs passes maps the caller already has. A
// rejected load is retried with a verifier log, returned in LoadError.
//
// Reading back (ProgInfo) uses BPF_OBJ_GET_INFO_BY_FD twice (counts, then
// buffers): xlated instructions as raw bytes, jited bytes, function lengths
// and addresses, line info. Kallsyms gives __bpf_call_base and the thunks;
// TestRun wraps BPF_PROG_TEST_RUN. Available says whether all this works
// here (root, JIT on, addresses visible) and why not.
//
// A Capture holds the dump as the kernel reports it and derives what the
// JIT actually compiled (the dump hides or renames things: map ids instead
// of addresses, PROBE_MEM and PROBE_MEM32 shown as MEM, tail calls shown as
// helper calls, callee indices in bpf-to-bpf calls): map addresses are read
// from the jited movabs of the instruction (found through the line map),
// direct and indirect tail calls are told apart by the retpoline jump,
// PROBE_MEM loads by the kernel's address check, arena accesses by the r12
// index of their x86 memory operand; stack depth, callee-saved pushes,
// kern_vm_start and the return thunk are read off the prologue and
// epilogue. One kernel quirk is kept on purpose: in a program with several
// functions the JIT runs before the verifier clears ld_imm64 pseudo sources,
// so a map-value load given with src 6 (fd_array index) keeps src 6 in the
// JIT input, as the JIT saw it (it saves rbx for "R6"). Pure programs can
// also record BPF_PROG_TEST_RUN results (Capture.Runs). Captures are JSON (hex strings for bytes) under testdata/kernel;
// Equivalent compares two captures up to load addresses, which is how the
// capture command checks determinism across reloads.
package kernel
