package passes

import (
	"errors"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// chainProgram: n functions, function k stores at r10-stack[k] and calls
// function k+1 (call imm relative), the last one returns.
func chainProgram(stack []int16) *ir.Program {
	var insns []ir.Instruction
	n := len(stack)
	// Each function: st [r10-s]; call next; exit  (3 slots); last: st; r0=0; exit.
	for k := 0; k < n; k++ {
		insns = append(insns, sdSt(ir.SizeB, ir.R10, -stack[k]))
		if k < n-1 {
			insns = append(insns, ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: 1})
		} else {
			insns = append(insns, sdR0)
		}
		insns = append(insns, sdExit)
	}
	return ir.NewProgram("chain", insns)
}

func TestStackLimits(t *testing.T) {
	recursive := ir.NewProgram("rec", []ir.Instruction{
		{Op: ir.OpCall, Src: ir.CallLocal, Imm: 1}, sdExit,
		{Op: ir.OpCall, Src: ir.CallLocal, Imm: -1}, sdExit, // calls itself
	})
	cases := []struct {
		name string
		p    *ir.Program
		at   int    // -1: no error
		want string // substring of the reason
	}{
		{"512 bytes", chainProgram([]int16{512}), -1, ""},
		{"513 bytes", chainProgram([]int16{513}), 0, "uses 513 bytes of stack, more than the kernel's limit of 512"},
		{"8 frames", chainProgram([]int16{8, 8, 8, 8, 8, 8, 8, 8}), -1, ""},
		{"9 frames", chainProgram([]int16{8, 8, 8, 8, 8, 8, 8, 8, 8}), 22, "call stack 9 frames deep, more than the kernel's limit of 8"},
		{"combined 512", chainProgram([]int16{256, 256}), -1, ""},
		{"combined 2x300", chainProgram([]int16{300, 300}), 1, "combined stack size of 2 calls is 608 bytes"},
		{"rounding to 16", chainProgram([]int16{250, 257}), 1, "combined stack size of 2 calls is 528 bytes"},
		{"recursion", recursive, 2, "recursive call"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := StackDepth{}.Run(c.p, &pipeline.Context{})
			if c.at < 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ie *ir.Error
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an *ir.Error", err)
			}
			if ie.Index != c.at || !strings.Contains(ie.Reason, c.want) {
				t.Fatalf("got %q (index %d), want index %d and %q", err, ie.Index, c.at, c.want)
			}
		})
	}
}

// TestDivByConstantZero: a division or modulo by an immediate 0 is refused
// as the verifier refuses it (check_alu_op "div by zero"), in every width
// and signedness; a register divisor gets the run-time guard instead.
func TestDivByConstantZero(t *testing.T) {
	for _, op := range []ir.ALUOp{ir.ALUDiv, ir.ALUMod} {
		for _, c := range []ir.Class{ir.ClassALU, ir.ClassALU64} {
			for _, off := range []int16{0, ir.OffSigned} {
				p := ir.NewProgram("d", []ir.Instruction{sdR0, {Op: uint8(c) | uint8(op), Dst: ir.R0, Off: off}, sdExit})
				_, err := Default(Options{}).Run(p, &pipeline.Context{})
				var ie *ir.Error
				if !errors.As(err, &ie) || ie.Index != 1 || !strings.Contains(ie.Reason, "division by a constant 0") {
					t.Errorf("%v op %#x off %d: got %v", c, op, off, err)
				}
			}
		}
	}
	p := ir.NewProgram("r", []ir.Instruction{sdR0, {Op: uint8(ir.ClassALU64) | uint8(ir.ALUDiv) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R0}, sdExit})
	if _, err := Default(Options{}).Run(p, &pipeline.Context{}); err != nil {
		t.Errorf("register divisor: %v", err)
	}
}
