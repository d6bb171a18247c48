package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

func sdMov(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: dst, Src: src}
}
func sdAdd(dst ir.Register, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUAdd), Dst: dst, Imm: imm}
}
func sdStx(sz ir.Size, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Src: src, Off: off}
}
func sdSt(sz ir.Size, dst ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassST) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Off: off, Imm: 1}
}
func sdLdx(sz ir.Size, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Src: src, Off: off}
}

var (
	sdExit = ir.Instruction{Op: ir.OpExit}
	sdR0   = ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ir.R0}
)

func TestStackDepth(t *testing.T) {
	cases := []struct {
		name  string
		insns []ir.Instruction
		want  []int32
	}{
		{"none", []ir.Instruction{sdR0, sdExit}, []int32{0}},
		{"direct", []ir.Instruction{sdSt(ir.SizeW, ir.R10, -12), sdR0, sdExit}, []int32{12}},
		{"copy plus offset", []ir.Instruction{sdMov(ir.R1, ir.R10), sdAdd(ir.R1, -40), sdSt(ir.SizeB, ir.R1, 3), sdR0, sdExit}, []int32{37}},
		{"spill and fill", []ir.Instruction{
			sdMov(ir.R1, ir.R10), sdAdd(ir.R1, -64), sdStx(ir.SizeDW, ir.R10, ir.R1, -8),
			sdLdx(ir.SizeDW, ir.R2, ir.R10, -8), sdSt(ir.SizeW, ir.R2, 4), sdR0, sdExit}, []int32{60}},
		{"helper argument", []ir.Instruction{sdMov(ir.R2, ir.R10), sdAdd(ir.R2, -100), {Op: ir.OpCall, Imm: 1}, sdExit}, []int32{100}},
		{"clobbered by a call", []ir.Instruction{sdMov(ir.R2, ir.R10), sdAdd(ir.R2, -8), {Op: ir.OpCall, Imm: 7}, sdSt(ir.SizeB, ir.R2, -300), sdR0, sdExit}, []int32{8}},
		{"join keeps the deeper", []ir.Instruction{
			sdMov(ir.R1, ir.R10), sdAdd(ir.R1, -16),
			{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ir.R0, Off: 1}, sdAdd(ir.R1, -32),
			sdSt(ir.SizeDW, ir.R1, 0), sdR0, sdExit}, []int32{48}},
		{"per function", []ir.Instruction{
			sdSt(ir.SizeDW, ir.R10, -8), sdMov(ir.R1, ir.R10), sdAdd(ir.R1, -8), {Op: ir.OpCall, Src: ir.CallLocal, Imm: 1}, sdExit,
			sdSt(ir.SizeDW, ir.R10, -24), sdSt(ir.SizeDW, ir.R1, 0), sdR0, sdExit}, []int32{8, 24}},
	}
	for _, c := range cases {
		p := ir.NewProgram(c.name, c.insns)
		if err := (StackDepth{}).Run(p, &pipeline.Context{}); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for k, f := range p.Funcs {
			if f.StackDepth != c.want[k] {
				t.Errorf("%s: function %d: depth %d, want %d", c.name, k, f.StackDepth, c.want[k])
			}
		}
	}
}

func TestRegUsage(t *testing.T) {
	call := func(rel int32) ir.Instruction { return ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: rel} }
	tail := ir.Instruction{Op: ir.OpTailCall}
	// main: calls A (tail call), then B; B calls C.
	insns := []ir.Instruction{
		sdMov(ir.R6, ir.R1), call(2), call(4), sdExit, // 0..3
		tail, sdR0, sdExit, // A: 4..6
		call(2), {Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ir.R9}, sdExit, // B: 7..9
		{Op: uint8(ir.ClassSTX) | uint8(ir.SizeW) | uint8(ir.ModeProbeMem32), Dst: ir.R1, Src: ir.R8}, sdR0, sdExit, // C: 10..12
	}
	p := ir.NewProgram("r", insns)
	if err := (RegUsage{}).Run(p, &pipeline.Context{}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		saved ir.RegSet
		tcr   bool
	}{
		{1 << ir.R6, true}, // has callers' marks
		{0, true},          // contains the tail call
		{1 << ir.R9, true}, // on the stack when C ends, after A: marked as a caller
		{1 << ir.R8, false},
	}
	if len(p.Funcs) != 4 {
		t.Fatalf("%d functions", len(p.Funcs))
	}
	for k, f := range p.Funcs {
		if f.CalleeSaved != want[k].saved || f.TailCallReachable != want[k].tcr {
			t.Errorf("function %d: saved %b tcr %v, want %b %v", k, f.CalleeSaved, f.TailCallReachable, want[k].saved, want[k].tcr)
		}
	}
	if !p.UsesArena {
		t.Error("arena store not noticed")
	}
}

// TestRegUsageLdImm64Src: the pseudo source of a ld_imm64 counts only in
// programs with several functions (the kernel clears it after
// jit_subprogs but before the JIT of a single-function program).
func TestRegUsageLdImm64Src(t *testing.T) {
	ld := []ir.Instruction{{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapIdxValue}, {}}
	single := ir.NewProgram("s", append(append([]ir.Instruction{}, ld...), sdR0, sdExit))
	multi := ir.NewProgram("m", append(append([]ir.Instruction{}, ld...), ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: 1}, sdExit, sdR0, sdExit))
	for _, c := range []struct {
		p    *ir.Program
		want ir.RegSet
	}{{single, 0}, {multi, 1 << ir.R6}} {
		if err := (RegUsage{}).Run(c.p, &pipeline.Context{}); err != nil {
			t.Fatal(err)
		}
		if got := c.p.Funcs[0].CalleeSaved; got != c.want {
			t.Errorf("%s: callee-saved %b, want %b", c.p.Name, got, c.want)
		}
	}
}
