// Package ir is bpfc's instruction model: an eBPF program as the kernel holds
// it, one Instruction per 8-byte struct bpf_insn slot (a ld_imm64 takes two),
// so that jump offsets, the JIT's addrs[] and kernel listings all line up.
//
// The package has four layers:
//
//   - the model: opcodes of the whole ISA and the kernel's internal forms
//     (opcode.go, register.go, insn.go), Program with per-slot Aux data like
//     the verifier's insn_aux_data, and functions (funcs.go);
//   - strict decoding and byte-exact encoding (decode.go, validate.go): every
//     malformed input is an *Error naming the instruction, never a panic;
//   - editing (edit.go): Patch, Insert and Remove keep every jump, call and
//     function reference, the Aux entries and the function table right, with
//     the kernel's own adjustment rule (bpf_patch_insn_data, bpf_adj_branches,
//     verifier_remove_insns) and its -ERANGE check;
//   - analysis and printing: a control-flow graph (cfg.go) and the kernel's
//     verifier-log printer (print.go: print_bpf_insn of Linux 6.18, with the
//     kernel's cb_call/cb_imm hooks and bpftool-style defaults), checked
//     against bpftool and verifier-log output captured from the live kernel
//     (testdata/xlated).
//
// The conformance assembly syntax is in the subpackage ir/asm, ELF loading in
// ir/elf.
package ir
