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

// callbackFuncs reports the functions whose address the program takes
// (ld_imm64 src=4: callbacks of bpf_loop, for_each_map_elem, timers...):
// helpers call them, so the analyses treat them as entry points.
func callbackFuncs(p *ir.Program, funcs []ir.Func) []bool {
	cb := make([]bool, len(funcs))
	for i := 0; i < len(p.Insns); i++ {
		if p.Insns[i].IsPseudoFunc() {
			t := p.Target(i)
			if k := ir.FuncOf(funcs, t); k < len(funcs) && funcs[k].Start == t {
				cb[k] = true
			}
		}
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	return cb
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

// edit replaces the instruction at At (both slots of a ld_imm64) by Insns
// with the given Aux entries. Jumps elsewhere that targeted At reach
// Insns[JumpSkip] (0: the first replacement instruction, as the kernel's
// bpf_patch_insn_data leaves them; calls and function references always
// reach Insns[0]). Offsets inside Insns are relative to their own new
// positions and are not adjusted.
type edit struct {
	At       int
	Insns    []ir.Instruction
	Aux      []ir.Aux
	JumpSkip int
	// HasOrig: Insns[OrigPos] is the original instruction moved as it
	// was; if it jumps, its distance is recomputed from its new place.
	HasOrig bool
	OrigPos int
	// Targets maps positions in Insns of jumps that leave the edit to
	// the old index of the instruction they reach.
	Targets map[int]int
}

// applyEdits applies edits (sorted by At, at most one per instruction) in
// one pass over the program, keeping every jump, bpf-to-bpf call and
// function reference on its target and Funcs on their functions. It is
// linear in the program size however many edits there are (the kernel's
// patching is quadratic). A distance that no longer fits its field is an
// error naming the instruction; the program is then unchanged.
func applyEdits(p *ir.Program, edits []edit) error {
	if len(edits) == 0 {
		return nil
	}
	n := len(p.Insns)
	newStart := make([]int, n+1)
	skip := make(map[int]int)
	pos, e := 0, 0
	for i := 0; i < n; i++ {
		newStart[i] = pos
		w := p.SlotLen(i)
		if e < len(edits) && edits[e].At == i {
			if len(edits[e].Insns) != len(edits[e].Aux) {
				return &ir.Error{Index: i, Reason: "internal: edit with mismatched aux"}
			}
			if edits[e].JumpSkip != 0 {
				skip[i] = edits[e].JumpSkip
			}
			pos += len(edits[e].Insns)
			e++
		} else {
			pos += w
		}
		if w == 2 {
			i++
			newStart[i] = newStart[i-1] + 1
		}
	}
	if e != len(edits) {
		return &ir.Error{Index: edits[e].At, Reason: "internal: edit out of order or inside a ld_imm64"}
	}
	newStart[n] = pos
	var retargetTo func(i int, ins *ir.Instruction, at, t int) error
	out := make([]ir.Instruction, 0, pos)
	aux := make([]ir.Aux, 0, pos)
	e = 0
	retarget := func(i int, ins *ir.Instruction, at int) error {
		if !(ins.IsJumpWithOffset() || ins.IsPseudoCall() || ins.IsPseudoFunc()) {
			return nil
		}
		return retargetTo(i, ins, at, p.Target(i))
	}
	retargetTo = func(i int, ins *ir.Instruction, at, t int) error {
		if t < 0 || t >= n {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("target %d outside the program", t)}
		}
		nt := newStart[t]
		if ins.IsJumpWithOffset() {
			nt += skip[t]
		}
		d := int64(nt - (at + 1))
		if ins.UsesImmDelta() {
			if d != int64(int32(d)) {
				return &ir.Error{Index: i, Reason: "distance no longer fits after the rewrite (ERANGE)"}
			}
			ins.Imm = int32(d)
		} else {
			if d != int64(int16(d)) {
				return &ir.Error{Index: i, Reason: "jump distance no longer fits after the rewrite (ERANGE)"}
			}
			ins.Off = int16(d)
		}
		return nil
	}
	for i := 0; i < n; {
		w := p.SlotLen(i)
		if e < len(edits) && edits[e].At == i {
			ed := edits[e]
			base := len(out)
			out = append(out, ed.Insns...)
			aux = append(aux, ed.Aux...)
			if ed.HasOrig {
				if err := retarget(i, &out[base+ed.OrigPos], newStart[i]+ed.OrigPos); err != nil {
					return err
				}
			}
			for pos, t := range ed.Targets {
				if err := retargetTo(i, &out[base+pos], newStart[i]+pos, t); err != nil {
					return err
				}
			}
			e++
			i += w
			continue
		}
		ins := p.Insns[i]
		if err := retarget(i, &ins, newStart[i]); err != nil {
			return err
		}
		out = append(out, ins)
		aux = append(aux, p.Aux[i])
		if w == 2 {
			out = append(out, p.Insns[i+1])
			aux = append(aux, p.Aux[i+1])
		}
		i += w
	}
	for k := range p.Funcs {
		f := &p.Funcs[k]
		f.Start, f.End = newStart[f.Start], newStart[f.End]
	}
	p.Insns, p.Aux = out, aux
	return nil
}
