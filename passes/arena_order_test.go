package passes

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bpfc/bpfc/internal/fuzzgen"
	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
)

// functionLIFO is the arena analysis' former per-function driver (a LIFO
// worklist over block leaders), kept as the oracle for the ordered one:
// TestArenaOrderSame checks both give the same result.
func (a *analyzer) functionLIFO(k int) (bool, error) {
	p, f := a.p, a.funcs[k]
	// Block leaders, indexed from the function's start.
	lead := make([]bool, f.Len()+1)
	lead[0] = true
	var buf []int
	var err error
	for i := f.Start; i < f.End; i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if ins.IsJumpWithOffset() || ins.IsExit() {
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return false, err
			}
			for _, s := range buf {
				if s < f.Start || s >= f.End {
					return false, &ir.Error{Index: i, Reason: "control flow leaves the function"}
				}
				lead[s-f.Start] = true
			}
			if i+1 < f.End {
				lead[i+1-f.Start] = true
			}
		}
	}
	// The state at each leader, by index into states (-1: not reached yet).
	at := make([]int32, f.Len())
	for i := range at {
		at[i] = -1
	}
	nlead := 0
	for _, l := range lead {
		if l {
			nlead++
		}
	}
	states := make([]astate, 0, nlead)
	states = append(states, a.entry[k])
	at[0] = 0
	queued := make([]bool, f.Len())
	work := make([]int, 1, 64)
	work[0] = f.Start
	queued[0] = true
	summary := false
	var st astate
	for len(work) > 0 {
		b := work[len(work)-1]
		work = work[:len(work)-1]
		queued[b-f.Start] = false
		st = states[at[b-f.Start]]
		for i := b; i < f.End; {
			ins := p.Insns[i]
			c, err := a.step(k, i, &st)
			if err != nil {
				return false, err
			}
			summary = summary || c
			if !ins.Class().IsJump() {
				// Straight-line code: succs without the call, and
				// within a block straight on.
				next := i + 1
				if ins.IsLdImm64() {
					next = i + 2
				}
				if next < f.End && !lead[next-f.Start] {
					i = next
					continue
				}
				buf = append(buf[:0], next)
			} else if buf, err = succs(p, i, buf[:0]); err != nil {
				return false, err
			}
			next := -1
			for _, s := range buf {
				if s >= f.End || s < f.Start {
					return false, &ir.Error{Index: i, Reason: "control flow leaves the function"}
				}
				r := s - f.Start
				if !lead[r] {
					next = s
					continue
				}
				if at[r] < 0 {
					at[r] = int32(len(states))
					states = append(states, st)
				} else if !states[at[r]].join(&st) {
					continue
				}
				if !queued[r] {
					queued[r] = true
					work = append(work, s)
				}
			}
			if next < 0 || ins.IsExit() {
				break
			}
			i = next
		}
	}
	return summary, nil
}

// TestArenaOrderSame checks that the ordered worklist driver gives the
// former LIFO driver's result (base and destination kinds per instruction,
// or the same error) in both modes, over the test objects' programs, the
// hand-built cases, generated shapes and random programs with arena casts
// and calls.
func TestArenaOrderSame(t *testing.T) {
	var progs []*ir.Program
	objs, _ := filepath.Glob(filepath.Join("..", "testdata", "*", "*.o"))
	for _, obj := range objs {
		ps, err := readObject(obj)
		if err != nil {
			continue
		}
		for _, op := range ps {
			progs = append(progs, op.Prog)
		}
	}
	if len(progs) < 44 {
		t.Fatalf("only %d object programs", len(progs))
	}
	for _, c := range handCases {
		if p, err := assembleNoT(c.asm); err == nil {
			progs = append(progs, p)
		}
	}
	for _, s := range []string{"straight:2000", "loop", "memsum", "calls"} {
		if p, err := gen.Parse(s); err == nil {
			progs = append(progs, p)
		}
	}
	for seed := uint64(0); seed < 400; seed++ {
		p := fuzzgen.FromSeed(seed, fuzzgen.Options{Calls: seed%2 == 0})
		if p == nil {
			continue
		}
		// Some movs become casts, some stores spills of them.
		for i := range p.Insns {
			if p.Insns[i].Op == 0xbf && (p.Insns[i].Imm+int32(seed))%3 == 0 {
				p.Insns[i].Off, p.Insns[i].Imm = 1, ir.CastToKernel
			}
		}
		progs = append(progs, p)
	}
	lifo := func(a *analyzer, k int) (bool, error) { return a.functionLIFO(k) }
	compared := 0
	for n, p := range progs {
		for _, xl := range []bool{false, true} {
			got, gerr := analyzeArenaWith(p.Clone(), xl, nil)
			want, werr := analyzeArenaWith(p.Clone(), xl, lifo)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) {
				t.Errorf("program %d (%s) xl=%v: error %v, want %v", n, p.Name, xl, gerr, werr)
				continue
			}
			if werr != nil {
				continue
			}
			for i := range want.base {
				if got.base[i] != want.base[i] || got.dst[i] != want.dst[i] {
					t.Errorf("program %d (%s) xl=%v insn %d: base %v dst %v, want %v %v", n, p.Name, xl, i, got.base[i], got.dst[i], want.base[i], want.dst[i])
					break
				}
			}
			compared++
		}
	}
	t.Logf("%d programs, %d analyses compared", len(progs), compared)
}
