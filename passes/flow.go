package passes

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
)

// Control-flow helpers shared by the analyses: successors of an instruction
// within its function, and the functions of a program.

// funcsOf returns the program's functions, computing them when a loader or
// an earlier pass has not.
func funcsOf(p *ir.Program) ([]ir.Func, error) {
	if len(p.Funcs) > 0 && p.Funcs[len(p.Funcs)-1].End == p.Len() && p.Funcs[0].Start == 0 {
		return p.Funcs, nil
	}
	fs, err := ir.FindFuncs(p)
	if err != nil {
		return nil, err
	}
	p.Funcs = fs
	return fs, nil
}

// succs appends the successors of instruction i to buf: the next
// instruction and/or the jump target. An exit has none.
func succs(p *ir.Program, i int, buf []int) ([]int, error) {
	ins := p.Insns[i]
	switch {
	case ins.IsLdImm64():
		return append(buf, i+2), nil
	case ins.IsExit():
		return buf, nil
	case ins.Class().IsJump() && ins.JumpOp() == ir.JumpJA && ins.Source() == ir.SourceX && ins.Class() == ir.ClassJMP:
		return nil, &ir.Error{Index: i, Reason: "indirect jump (gotox): targets unknown to the analysis"}
	case ins.Op == ir.OpJA || ins.Op == ir.OpGotoL:
		return append(buf, p.Target(i)), nil
	case ins.IsJumpWithOffset():
		return append(buf, i+1, p.Target(i)), nil
	}
	return append(buf, i+1), nil
}

// globalFunc reports whether function k of funcs is checked on its own by the
// verifier: the main program, or a function with global linkage.
func globalFunc(p *ir.Program, funcs []ir.Func, k int) bool {
	return k == 0 || p.Aux[funcs[k].Start].GlobalFunc
}

// calleeIndex returns the function index a bpf-to-bpf call at i targets.
func calleeIndex(p *ir.Program, funcs []ir.Func, i int) (int, error) {
	t := p.Target(i)
	k := ir.FuncOf(funcs, t)
	if k >= len(funcs) || funcs[k].Start != t {
		return 0, &ir.Error{Index: i, Reason: fmt.Sprintf("call target %d is not the start of a function", t)}
	}
	return k, nil
}

// regs returns a set of registers.
func regs(rs ...ir.Register) ir.RegSet {
	var s ir.RegSet
	for _, r := range rs {
		s = s.Add(r)
	}
	return s
}

var (
	argRegs      = regs(ir.R1, ir.R2, ir.R3, ir.R4, ir.R5)
	callerSaved  = regs(ir.R0, ir.R1, ir.R2, ir.R3, ir.R4, ir.R5)
	tailCallArgs = regs(ir.R1, ir.R2, ir.R3)
)
