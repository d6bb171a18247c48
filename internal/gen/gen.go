// Package gen makes eBPF programs for benchmarks: the shapes the peers are
// measured with (see the project's peers.md).
//
//   - straight:N  straight-line code of N slots: 64- and 32-bit ALU with
//     register and immediate operands, forward conditional jumps, ld_imm64,
//     stack stores and loads, ending in exit. This is the compile-speed
//     shape (ubpf and rbpf are measured on it at 65,535 and 1,000,000).
//   - loop        10M iterations of 12 instructions (ALU and a stack store
//     and load): 120M instructions executed.
//   - memsum      sums the 64-bit words of the memory [r1, r1+r2).
//   - calls       10M bpf-to-bpf calls.
//   - empty       r0 = 1; exit (call overhead).
//
// Every program is valid for ir.Validate and for the default pass pipeline
// (registers are written before they are read, stack slots are stored before
// they are loaded), so it can be compiled and, for the execution shapes, run.
package gen

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

// Shapes lists the names Parse accepts (straight takes ":N").
var Shapes = []string{"straight:N", "loop", "memsum", "calls", "empty"}

// MemsumSize is the memory size memsum is measured with (64 KiB).
const MemsumSize = 64 << 10

// Loop, Memsum and Calls are the execution programs (assembly text).
const (
	LoopAsm = `
mov %r0, 0
mov %r1, 0
loop:
stxdw [%r10-8], %r1
ldxdw %r2, [%r10-8]
add %r0, %r2
xor %r0, 0x55
mov %r3, %r0
rsh %r3, 3
add %r0, %r3
and %r0, 0xffffff
sub %r0, 1
mul %r0, 3
add %r1, 1
jlt %r1, 10000000, loop
exit`
	MemsumAsm = `
mov %r0, 0
mov %r3, %r1
add %r3, %r2
loop:
ldxdw %r4, [%r1]
add %r0, %r4
add %r1, 8
jlt %r1, %r3, loop
exit`
	CallsAsm = `
mov %r6, 0
mov %r7, 0
loop:
mov %r1, %r6
call local f
add %r7, %r0
add %r6, 1
jlt %r6, 10000000, loop
mov %r0, %r7
exit
f:
mov %r0, %r1
add %r0, 1
exit`
	EmptyAsm = `
mov %r0, 1
exit`
)

// LoopInsns, CallsInsns are the instructions one run of loop and calls
// executes; memsum executes 4 per 8-byte word plus 4.
const (
	LoopInsns  = 2 + 10_000_000*12 + 1
	CallsInsns = 2 + 10_000_000*(5+3) + 2
)

// Executed returns the number of BPF instructions one run of the named
// shape executes with memory of memLen bytes (memsum), or 0 if unknown.
func Executed(name string, memLen int) int64 {
	switch name {
	case "loop":
		return LoopInsns
	case "calls":
		return CallsInsns
	case "memsum":
		return 3 + int64(memLen/8)*4 + 1
	case "empty":
		return 2
	}
	return 0
}

// Parse makes the program a shape names ("straight:65535", "loop", ...).
func Parse(spec string) (*ir.Program, error) {
	name, arg, hasArg := strings.Cut(spec, ":")
	var text string
	switch name {
	case "straight":
		if !hasArg {
			return nil, fmt.Errorf("gen: %q: straight needs a size (straight:N)", spec)
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > ir.MaxInsns {
			return nil, fmt.Errorf("gen: %q: size must be 1..%d", spec, ir.MaxInsns)
		}
		return Straight(n), nil
	case "loop":
		text = LoopAsm
	case "memsum":
		text = MemsumAsm
	case "calls":
		text = CallsAsm
	case "empty":
		text = EmptyAsm
	default:
		return nil, fmt.Errorf("gen: unknown shape %q (have %s)", spec, strings.Join(Shapes, ", "))
	}
	if hasArg {
		return nil, fmt.Errorf("gen: %q: %s takes no size", spec, name)
	}
	p, err := asm.Assemble(text)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", name, err)
	}
	p.Name = name
	return p, nil
}

// block is the length of Straight's repeated pattern.
const block = 10

// Straight returns straight-line code of exactly n slots (n >= 1): a
// repeated 10-slot block (mov, add, xor, stack store, stack load, forward
// conditional jump over a ld_imm64, 32-bit mul, shift), padded with movs
// and ending in exit. The program is built with O(1) allocations.
func Straight(n int) *ir.Program {
	if n < 1 {
		n = 1
	}
	insns := make([]ir.Instruction, 0, n)
	alu := func(class ir.Class, op ir.ALUOp, src uint8, dst, s ir.Register, imm int32) ir.Instruction {
		return ir.Instruction{Op: uint8(class) | uint8(op) | src, Dst: dst, Src: s, Imm: imm}
	}
	const k, x = 0x00, 0x08
	if n > 1 {
		insns = append(insns, alu(ir.ClassALU64, ir.ALUMov, k, ir.R0, 0, 0))
	}
	for i := 0; len(insns)+block < n; i++ {
		r := ir.Register(i%5 + 1)
		off := -8 * int16(i%8+1)
		ld := ir.LdImm64(ir.R6, 0x123456789a+uint64(i))
		insns = append(insns,
			alu(ir.ClassALU64, ir.ALUMov, k, r, 0, int32(i)),
			alu(ir.ClassALU64, ir.ALUAdd, k, r, 0, 1000),
			alu(ir.ClassALU64, ir.ALUXor, x, ir.R0, r, 0),
			ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R10, Src: r, Off: off},
			ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(ir.SizeW) | uint8(ir.ModeMEM), Dst: ir.R7, Src: ir.R10, Off: off},
			ir.Instruction{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJGT), Dst: r, Imm: 7, Off: 3}, // over the ld_imm64 and the mul
			ld[0], ld[1],
			alu(ir.ClassALU, ir.ALUMul, x, ir.R0, ir.R7, 0),
			alu(ir.ClassALU64, ir.ALURsh, k, ir.R0, 0, 3),
		)
	}
	for len(insns) < n-1 {
		insns = append(insns, alu(ir.ClassALU64, ir.ALUMov, k, ir.R0, 0, 1))
	}
	insns = append(insns, ir.Instruction{Op: ir.OpExit})
	return ir.NewProgram(fmt.Sprintf("straight_%d", n), insns)
}
