package amd64

import (
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// Instruction builders for test programs.

func alu(cls ir.Class, op ir.ALUOp, src ir.Source, dst, s ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(cls) | uint8(op) | uint8(src), Dst: dst, Src: s, Off: off, Imm: imm}
}
func a64k(op ir.ALUOp, dst ir.Register, imm int32) ir.Instruction {
	return alu(ir.ClassALU64, op, ir.SourceK, dst, 0, 0, imm)
}
func a32k(op ir.ALUOp, dst ir.Register, imm int32) ir.Instruction {
	return alu(ir.ClassALU, op, ir.SourceK, dst, 0, 0, imm)
}
func a64x(op ir.ALUOp, dst, src ir.Register) ir.Instruction {
	return alu(ir.ClassALU64, op, ir.SourceX, dst, src, 0, 0)
}
func a32x(op ir.ALUOp, dst, src ir.Register) ir.Instruction {
	return alu(ir.ClassALU, op, ir.SourceX, dst, src, 0, 0)
}
func mov64(dst ir.Register, imm int32) ir.Instruction { return a64k(ir.ALUMov, dst, imm) }
func movr(dst, src ir.Register) ir.Instruction        { return a64x(ir.ALUMov, dst, src) }
func ldx(sz ir.Size, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Src: src, Off: off}
}
func ldsx(sz ir.Size, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(sz) | uint8(ir.ModeMEMSX), Dst: dst, Src: src, Off: off}
}
func stx(sz ir.Size, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Src: src, Off: off}
}
func st(sz ir.Size, dst ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassST) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Off: off, Imm: imm}
}
func atomic(sz ir.Size, dst, src ir.Register, off int16, op int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(sz) | uint8(ir.ModeATOMIC), Dst: dst, Src: src, Off: off, Imm: op}
}
func jk(cls ir.Class, op ir.JumpOp, dst ir.Register, imm int32, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(cls) | uint8(op) | uint8(ir.SourceK), Dst: dst, Off: off, Imm: imm}
}
func jx(cls ir.Class, op ir.JumpOp, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(cls) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: src, Off: off}
}
func ja(off int16) ir.Instruction { return ir.Instruction{Op: ir.OpJA, Off: off} }
func gotol(imm int32) ir.Instruction {
	return ir.Instruction{Op: ir.OpGotoL, Imm: imm}
}
func call(helper int32) ir.Instruction { return ir.Instruction{Op: ir.OpCall, Imm: helper} }
func callLocal(rel int32) ir.Instruction {
	return ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: rel}
}
func exit() ir.Instruction { return ir.Instruction{Op: ir.OpExit} }
func lddw(dst ir.Register, v uint64) []ir.Instruction {
	p := ir.LdImm64(dst, v)
	return p[:]
}

const helperPrandom = 7 // bpf_get_prandom_u32

type goldenProgram struct {
	name string
	note string
	prog *ir.Program
	maps []kernel.MapDef
	typ  kernel.ProgType // 0: syscall
}

func prog(name string, parts ...any) *ir.Program {
	var insns []ir.Instruction
	for _, p := range parts {
		switch v := p.(type) {
		case ir.Instruction:
			insns = append(insns, v)
		case []ir.Instruction:
			insns = append(insns, v...)
		}
	}
	return ir.NewProgram(name, insns)
}

// initRegs sets R0..R9 to scalars so that any register may be read.
func initRegs() []ir.Instruction {
	var out []ir.Instruction
	for r := ir.R0; r <= ir.R9; r++ {
		out = append(out, mov64(r, int32(r)*3+1))
	}
	return out
}

// fill returns fixed-size filler instructions of exactly n bytes of x86
// code (5-byte `mov eax, imm32` and 4-byte `add rax, 1`).
func fill(n int) []ir.Instruction {
	var out []ir.Instruction
	for n%5 != 0 {
		out = append(out, a64k(ir.ALUAdd, ir.R0, 1))
		n -= 4
	}
	for ; n > 0; n -= 5 {
		out = append(out, mov64(ir.R0, 0x11111111))
	}
	return out
}

// chain builds k overlapping forward jumps: jump i's span contains jump
// i+1, and is short (<= 123 bytes) only once jump i+1 is short, so each
// layout pass shrinks one more jump: k+3 passes without padding.
func chain(name string, k int) *ir.Program {
	type item struct {
		insns []ir.Instruction
		jump  int // -1, or jump number
		label int // -1, or target label number
	}
	var items []item
	add := func(insns []ir.Instruction, jump, label int) {
		items = append(items, item{insns, jump, label})
	}
	add([]ir.Instruction{call(helperPrandom), movr(ir.R6, ir.R0), mov64(ir.R0, 0)}, -1, -1)
	// J1 X J2 Y1 T1 J3 Y2 T2 ... Jk Y(k-1) T(k-1) Z Tk
	add(nil, 0, -1)
	add(fill(59), -1, -1)
	for i := 1; i < k; i++ {
		add(nil, i, -1)
		add(fill(59), -1, -1)
		add(nil, -1, i-1)
	}
	add(fill(64), -1, -1)
	add(nil, -1, k-1)
	add([]ir.Instruction{exit()}, -1, -1)
	// Resolve.
	var insns []ir.Instruction
	jumpAt := map[int]int{}
	labelAt := map[int]int{}
	for _, it := range items {
		if it.jump >= 0 {
			jumpAt[it.jump] = len(insns)
			insns = append(insns, jk(ir.ClassJMP, ir.JumpJEQ, ir.R6, 0, 0))
		}
		if it.label >= 0 {
			labelAt[it.label] = len(insns)
		}
		insns = append(insns, it.insns...)
	}
	for j, at := range jumpAt {
		insns[at].Off = int16(labelAt[j] - at - 1)
	}
	return ir.NewProgram(name, insns)
}

func goldenPrograms() []goldenProgram {
	var gps []goldenProgram
	add := func(name, note string, p *ir.Program) {
		gps = append(gps, goldenProgram{name: name, note: note, prog: p})
	}
	add("simple", "mov, add, exit", prog("simple", mov64(ir.R0, 1), a64k(ir.ALUAdd, ir.R0, 2), exit()))
	add("passes6", "a chain of 3 overlapping jumps: 6 layout passes", chain("passes6", 3))
	add("passes9", "a chain of 6 overlapping jumps: 9 layout passes", chain("passes9", 6))
	add("padding", "a chain of 16 overlapping jumps: padding from pass 15", chain("padding", 16))
	gps = append(gps, formPrograms()...)
	gps = append(gps, multiPrograms()...)
	return gps
}
