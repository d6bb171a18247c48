package passes

import (
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// RegUsage fills in what each function's prologue must provide, as the
// kernel decides it:
//
//   - ir.Func.CalleeSaved: the JIT's detect_reg_usage, every slot of the
//     function whose dst_reg or src_reg field names R6..R9. The src field
//     of a ld_imm64 carries a pseudo-source number; the kernel clears it
//     (convert_pseudo_ld_imm64) at the end of bpf_check, which is before
//     the JIT for a single-function program but after jit_subprogs for a
//     program with several functions, so there a ld_imm64 with src 6
//     (BPF_PSEUDO_MAP_IDX_VALUE) makes the prologue save rbx. The program
//     given to this pass must therefore keep the pseudo source of its map
//     loads (an address resolved into a ld_imm64 keeps src as loaded);
//   - ir.Func.TailCallReachable: the verifier's marks (check_subprogs and
//     check_max_stack_depth): a function containing a tail call, and, once
//     the depth-first walk of bpf-to-bpf calls from the main program has
//     entered a function containing a tail call, the callers on the walk's
//     stack whenever it reaches a function's end afterwards (a sticky flag,
//     as in 6.18: a function called after a tail-calling one is not marked
//     itself, see testdata/amd64/tailcall_after.json);
//   - ir.Program.UsesArena: set (never cleared) when an instruction
//     accesses the arena (PROBE_MEM32, PROBE_MEM32SX, PROBE_ATOMIC) or
//     casts between address spaces.
type RegUsage struct{}

// Name implements pipeline.Pass.
func (RegUsage) Name() string { return "regusage" }

// Describe implements pipeline.Describer.
func (RegUsage) Describe() string {
	return "callee-saved registers, tail-call reachability and arena use of each function (what the prologue saves)"
}

func init() {
	pipeline.Default.Register("regusage", func() pipeline.Pass { return RegUsage{} })
}

// Run implements pipeline.Pass.
func (RegUsage) Run(p *ir.Program, _ *pipeline.Context) error {
	funcs, err := funcsOf(p)
	if err != nil {
		return err
	}
	hasTail := make([]bool, len(funcs))
	multi := len(funcs) > 1
	for k := range funcs {
		f := &funcs[k]
		var used ir.RegSet
		for i := f.Start; i < f.End; i++ {
			ins := p.Insns[i]
			if !ruSlow[ins.Op] {
				// Neither a ld_imm64, a call, a cast nor a PROBE_*
				// access: only its registers count.
				used |= ruCallee[ins.Dst] | ruCallee[ins.Src]
				continue
			}
			if ins.Dst >= ir.R6 && ins.Dst <= ir.R9 {
				used = used.Add(ins.Dst)
			}
			if (multi || !ins.IsLdImm64()) && ins.Src >= ir.R6 && ins.Src <= ir.R9 {
				used = used.Add(ins.Src)
			}
			if ins.IsTailCall() {
				hasTail[k] = true
			}
			switch {
			case ins.Class() == ir.ClassLDX && (ins.Mode() == ir.ModeProbeMem32 || ins.Mode() == ir.ModeProbeMem32SX),
				(ins.Class() == ir.ClassST || ins.Class() == ir.ClassSTX) && ins.Mode() == ir.ModeProbeMem32,
				ins.Class() == ir.ClassSTX && ins.Mode() == ir.ModeProbeAtomic,
				ins.IsAddrSpaceCast():
				p.UsesArena = true
			}
			if ins.IsLdImm64() {
				i++ // the second half's fields are zero in a valid program
				if i < f.End && (p.Insns[i].Dst >= ir.R6 && p.Insns[i].Dst <= ir.R9 || p.Insns[i].Src >= ir.R6 && p.Insns[i].Src <= ir.R9) {
					used = used.Add(p.Insns[i].Dst).Add(p.Insns[i].Src)
				}
			}
		}
		f.CalleeSaved = used & (1<<ir.R6 | 1<<ir.R7 | 1<<ir.R8 | 1<<ir.R9)
	}
	tcr, err := tailCallReach(p, funcs, hasTail)
	if err != nil {
		return err
	}
	for k := range funcs {
		funcs[k].TailCallReachable = tcr[k]
	}
	p.Funcs = funcs
	return nil
}

// ruSlow marks the opcodes for which RegUsage.Run looks at more than the
// registers: ld_imm64, calls (a tail call), the register mov (a cast) and
// memory accesses in a mode other than MEM (the PROBE_* forms).
// TestRegUsageTable checks the other opcodes are never any of those.
var ruSlow = func() (t [256]bool) {
	for op := range 256 {
		ins := ir.Instruction{Op: uint8(op)}
		c := ins.Class()
		t[op] = ins.IsLdImm64() || op == int(ir.OpCall) || op == int(ir.OpTailCall) ||
			op == int(uint8(ir.ClassALU64)|uint8(ir.ALUMov)|uint8(ir.SourceX)) ||
			(c == ir.ClassLDX || c == ir.ClassST || c == ir.ClassSTX) && ins.Mode() != ir.ModeMEM
	}
	return t
}()

// ruCallee maps a register number to its set when it is one of R6..R9,
// else to the empty set.
var ruCallee = func() (t [256]ir.RegSet) {
	for r := ir.R6; r <= ir.R9; r++ {
		t[r] = ir.RegSet(0).Add(r)
	}
	return t
}()

// tailCallReach mirrors the verifier's depth-first walk of the call graph
// from the main program (check_max_stack_depth_subprog).
func tailCallReach(p *ir.Program, funcs []ir.Func, hasTail []bool) ([]bool, error) {
	tcr := append([]bool(nil), hasTail...)
	any := false
	for _, h := range hasTail {
		any = any || h
	}
	if !any {
		return tcr, nil
	}
	sticky := false
	var stack []int // callers of the current function
	budget := 1 << 20
	var walk func(k int) error
	walk = func(k int) error {
		if budget--; budget < 0 || len(stack) > 64 {
			return &ir.Error{Index: funcs[k].Start, Reason: "call graph too deep or too large for the tail-call analysis"}
		}
		for i := funcs[k].Start; i < funcs[k].End; i++ {
			ins := p.Insns[i]
			if ins.IsLdImm64() {
				i++
				continue
			}
			if !ins.IsPseudoCall() {
				continue
			}
			c, err := calleeIndex(p, funcs, i)
			if err != nil {
				return err
			}
			if hasTail[c] {
				sticky = true
			}
			stack = append(stack, k)
			if err := walk(c); err != nil {
				return err
			}
			stack = stack[:len(stack)-1]
		}
		if sticky { // the callers on the stack, not k itself (6.18)
			for _, c := range stack {
				tcr[c] = true
			}
		}
		return nil
	}
	if err := walk(0); err != nil {
		return nil, err
	}
	return tcr, nil
}
