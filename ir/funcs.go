package ir

import (
	"fmt"
	"sort"
)

// RegSet is a set of BPF registers, bit r for register r.
type RegSet uint16

// Has reports whether r is in the set.
func (s RegSet) Has(r Register) bool { return s&(1<<r) != 0 }

// Add returns the set with r added.
func (s RegSet) Add(r Register) RegSet { return s | 1<<r }

// Func is one function (subprogram) of a program: the main program is
// function 0, and every target of a bpf-to-bpf call or function reference
// starts another. Passes fill in the fields after Start and End.
type Func struct {
	Start, End int // slot range [Start, End)
	Name       string

	// StackDepth is the number of bytes below r10 the function touches (the
	// verifier's stack_depth, before rounding).
	StackDepth int32
	// CalleeSaved is the set of R6..R9 the function uses: the prologue
	// saves and the epilogue restores them.
	CalleeSaved RegSet
	// TailCallReachable: the function is on a path that can tail call.
	TailCallReachable bool
}

// Len returns the number of slots of the function.
func (f *Func) Len() int { return f.End - f.Start }

// FindFuncs splits p into functions at the targets of bpf-to-bpf calls and
// function references, as the kernel's check_subprogs does, and checks that
// no jump leaves its function and every function ends in an exit or a jump.
// It expects a program that passed Validate.
func FindFuncs(p *Program) ([]Func, error) {
	n := len(p.Insns)
	starts := []int{0}
	for i := 0; i < n; i++ {
		ins := p.Insns[i]
		if ins.IsPseudoCall() || ins.IsPseudoFunc() {
			t := p.Target(i)
			if t < 0 || t >= n {
				return nil, errAt(i, "call target %d outside the program", t)
			}
			starts = append(starts, t)
		}
		if ins.IsLdImm64() {
			i++
		}
	}
	sort.Ints(starts)
	uniq := starts[:1]
	for _, s := range starts[1:] {
		if s != uniq[len(uniq)-1] {
			uniq = append(uniq, s)
		}
	}
	funcs := make([]Func, len(uniq))
	for k, s := range uniq {
		end := n
		if k+1 < len(uniq) {
			end = uniq[k+1]
		}
		funcs[k] = Func{Start: s, End: end}
		if k == 0 {
			funcs[k].Name = p.Name
		} else {
			funcs[k].Name = fmt.Sprintf("func_%d", s)
		}
	}
	for k := range funcs {
		f := &funcs[k]
		for i := f.Start; i < f.End; i++ {
			ins := p.Insns[i]
			if ins.IsJumpWithOffset() {
				if t := p.Target(i); t < f.Start || t >= f.End {
					return nil, errAt(i, "jump out of function: target %d is outside [%d, %d)", t, f.Start, f.End)
				}
			}
			if ins.IsLdImm64() {
				i++
			}
		}
		last := p.Insns[f.End-1]
		if !(last.IsExit() || last.Op == OpJA || last.Op == OpGotoL) || (f.End-2 >= f.Start && p.Insns[f.End-2].IsLdImm64()) {
			return nil, errAt(f.End-1, "last instruction of function %d is not an exit or jump", k)
		}
	}
	return funcs, nil
}

// FuncOf returns the index of the function containing slot i.
func FuncOf(funcs []Func, i int) int {
	return sort.Search(len(funcs), func(k int) bool { return funcs[k].End > i })
}
