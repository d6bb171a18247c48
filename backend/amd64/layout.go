package amd64

import (
	"fmt"

	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/ir"
)

const (
	maxPasses   = 20 // MAX_PASSES
	pessimistic = 64 // bytes per instruction in the first estimate
)

// paddingPasses is PADDING_PASSES (maxPasses - 5); a variable only so that
// a test can switch padding off to build a layout that does not converge.
var paddingPasses = maxPasses - 5

// sizingPass simulates one do_jit pass over the variable instructions only.
// pass0 uses the kernel's initial estimate addrs[i] = 64*(i+1) for every
// value not yet written in this pass. It updates segEnd and form in place,
// exactly as do_jit updates addrs[]: backward targets see this pass's
// offsets, forward targets and the instruction's own end the previous
// pass's. It returns the code length.
func (f *funcCode) sizingPass(pass0, padding bool) (int32, error) {
	vars, segEnd, form := f.vars, f.segEnd, f.form
	prev := f.prologue // start of the current segment (this pass)
	cleanup := int32(-1)
	for s := range vars {
		v := &vars[s]
		start := prev + v.pre
		oldEnd := segEnd[s]
		if pass0 {
			oldEnd = pessimistic * (v.j + 2)
		}
		var off int32
		switch {
		case v.kind == vExit:
			if cleanup < 0 {
				cleanup = f.segStart(int(f.feSeg), int32(s), prev) + f.feOff
			}
			off = cleanup - oldEnd
		case v.minus2:
			off = -2
		default:
			var tgt int32
			if pass0 && v.tidx > v.j {
				tgt = pessimistic * (v.tidx + 1)
			} else {
				tgt = f.segStart(int(v.tseg), int32(s), prev) + v.toff
			}
			off = tgt - oldEnd
		}
		diff := oldEnd - start - int32(v.prefix) // INSN_SZ_DIFF
		size := int32(v.prefix)
		var fm uint8
		if v.kind == vCond {
			if isImm8Jmp(int64(off)) {
				nop := int32(0)
				if padding {
					nop = diff - 2
					if nop != 0 && nop != 4 {
						return 0, insnErr(f.start+int(v.j), "unexpected jmp_cond padding: %d bytes", nop)
					}
				}
				size += nop + 2
				fm = formShort | uint8(nop)<<2
			} else {
				size += 6
				fm = formNear
			}
		} else if off == 0 && v.kind == vJA {
			nop := int32(0)
			if padding {
				nop = diff
				if nop != 0 && nop != 2 && nop != 5 {
					return 0, insnErr(f.start+int(v.j), "unexpected nop jump padding: %d bytes", nop)
				}
			}
			size += nop
			fm = formZero | uint8(nop)<<2
		} else if isImm8Jmp(int64(off)) {
			nop := int32(0)
			if padding {
				nop = diff - 2
				if nop != 0 && nop != 3 {
					return 0, insnErr(f.start+int(v.j), "unexpected jump padding: %d bytes", nop)
				}
			}
			size += nop + 2
			fm = formShort | uint8(nop)<<2
		} else {
			size += 5
			fm = formNear
		}
		prev = start + size
		segEnd[s] = prev
		form[s] = fm
	}
	// The trailing segment (after the last jump) holds only fixed code.
	return prev + f.fixOff[f.n] - f.fixOff[f.segFirst(len(vars))], nil
}

// segStart returns the start of segment seg during a pass that is at
// segment cur whose start is curStart; earlier segments have this pass's
// values, later ones the previous pass's.
func (f *funcCode) segStart(seg int, cur, curStart int32) int32 {
	switch {
	case int32(seg) == cur:
		return curStart
	case seg == 0:
		return f.prologue
	}
	return f.segEnd[seg-1]
}

// layout runs the kernel's pass loop (bpf_int_jit_compile) for one
// function; extra adds jit_subprogs' extra pass with padding on.
func (f *funcCode) layout(extra bool) error {
	if len(f.vars) == 0 {
		f.size = f.fixOff[f.n]
		f.passes = 3 // estimate, converge, write: the kernel counts them too
		if f.size <= 0 {
			return insnErr(f.start, "empty function")
		}
		return nil
	}
	old := int32(0)
	image := false
	padding := false
	for pass := 0; pass < maxPasses || image; pass++ {
		if !padding && pass >= paddingPasses {
			padding = true
		}
		size, err := f.sizingPass(pass == 0, padding)
		if err != nil {
			return err
		}
		if image {
			if size != old {
				return insnErr(f.start, "function %d: final pass size %d differs from the converged layout %d", f.index, size, old)
			}
			f.passes = pass + 1
			break
		}
		if size == old {
			image = true
		}
		old = size
	}
	if !image {
		return insnErr(f.start, "function %d: layout did not converge in %d passes", f.index, maxPasses)
	}
	if extra {
		size, err := f.sizingPass(false, true)
		if err != nil {
			return err
		}
		if size != old {
			return insnErr(f.start, "function %d: extra pass size %d differs from the converged layout %d", f.index, size, old)
		}
	}
	f.size = old
	return nil
}

// Layout is a program laid out as the kernel would: every function's code
// size is known and the bytes can be written at any address.
type Layout struct {
	p     *ir.Program
	t     Target
	funcs []*funcCode
}

// NewLayout runs instruction selection and the layout passes for every
// function of p. It reads p.Funcs and p.UsesArena. When p.Funcs is nil
// (the stackdepth and regusage passes did not run) it calls ir.FindFuncs
// and fills in safe values: the saved registers as the JIT's
// detect_reg_usage finds them, tail-call reachability for functions that
// contain a tail call, and the largest stack (MAX_BPF_STACK, 512 bytes),
// so the code runs correctly but its prologues may differ from the
// kernel's.
func NewLayout(p *ir.Program, t Target) (l *Layout, err error) {
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, &ir.Error{Index: -1, Reason: fmt.Sprintf("internal error in the backend: %v", r)}
		}
	}()
	if p == nil || len(p.Insns) == 0 {
		return nil, &ir.Error{Index: -1, Reason: "program is empty"}
	}
	funcs := p.Funcs
	if funcs == nil {
		funcs, err = ir.FindFuncs(p)
		if err != nil {
			return nil, err
		}
		defaultFuncInfo(p, funcs)
	}
	if err := checkFuncs(p, funcs); err != nil {
		return nil, err
	}
	l = &Layout{p: p, t: t, funcs: make([]*funcCode, len(funcs))}
	total := 0
	for _, f := range funcs {
		total += f.Len()
	}
	buf := make([]byte, 0, 8*total+64*len(funcs)+64)
	for k := range funcs {
		f, err := buildFunc(p, funcs, k, &l.t, buf[len(buf):])
		if err != nil {
			return nil, err
		}
		if len(f.code) <= cap(buf)-len(buf) { // else it outgrew buf and has its own array
			buf = buf[:len(buf)+len(f.code)]
		}
		if err := f.layout(len(funcs) > 1); err != nil {
			return nil, err
		}
		l.funcs[k] = f
	}
	return l, nil
}

// defaultFuncInfo fills in Funcs data for a program the passes did not see.
func defaultFuncInfo(p *ir.Program, funcs []ir.Func) {
	for k := range funcs {
		f := &funcs[k]
		f.StackDepth = 512
		for i := f.Start; i < f.End; i++ {
			ins := p.Insns[i]
			for _, r := range [2]ir.Register{ins.Dst, ins.Src} {
				if r >= ir.R6 && r <= ir.R9 {
					f.CalleeSaved = f.CalleeSaved.Add(r)
				}
			}
			if ins.IsTailCall() {
				f.TailCallReachable = true
			}
		}
	}
}

func checkFuncs(p *ir.Program, funcs []ir.Func) error {
	if len(funcs) == 0 || funcs[0].Start != 0 {
		return &ir.Error{Index: -1, Reason: "program has no main function"}
	}
	end := 0
	for k, f := range funcs {
		if f.Start != end || f.End <= f.Start || f.End > len(p.Insns) {
			return &ir.Error{Index: f.Start, Reason: fmt.Sprintf("function %d has an invalid range [%d, %d)", k, f.Start, f.End)}
		}
		end = f.End
	}
	if end != len(p.Insns) {
		return &ir.Error{Index: end, Reason: "instructions after the last function"}
	}
	return nil
}

// NumFuncs is the number of functions.
func (l *Layout) NumFuncs() int { return len(l.funcs) }

// CodeSize is the length of function k's machine code (jited_func_len).
func (l *Layout) CodeSize(k int) int { return int(l.funcs[k].size) }

// Size is the buffer size function k needs: code, padding to 4, extable.
func (l *Layout) Size(k int) int {
	f := l.funcs[k]
	return roundUp4(int(f.size)) + extable.EntrySize*len(f.ex)
}

// Passes is the number of passes the kernel takes for function k.
func (l *Layout) Passes(k int) int { return l.funcs[k].passes }

// Target returns the target the layout was made for.
func (l *Layout) Target() Target { return l.t }
