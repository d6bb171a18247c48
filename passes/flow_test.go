package passes

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestApplyEditsKeepsTargets: random programs with jumps, random edits
// (growing or shrinking instructions); every jump, call and function
// reference outside the edits still reaches the start of its target's
// replacement, and Funcs follow.
func TestApplyEditsKeepsTargets(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for iter := 0; iter < 500; iter++ {
		n := 4 + rng.Intn(60)
		insns := make([]ir.Instruction, n)
		for i := range insns {
			insns[i] = ir.Instruction{Op: 0xb7, Dst: ir.R0, Imm: int32(i)} // r0 = i
			if rng.Intn(3) == 0 && i < n-1 {
				insns[i] = ir.Instruction{Op: 0x15, Dst: ir.R1, Off: int16(rng.Intn(n-1) - i)} // if r1 == 0 goto
			}
		}
		insns[n-1] = ir.Instruction{Op: ir.OpExit}
		p := ir.NewProgram("r", insns)
		p.Funcs = []ir.Func{{Start: 0, End: n}}
		orig := p.Clone()
		var edits []edit
		for i := 0; i < n-1; i++ {
			if rng.Intn(4) != 0 || orig.Insns[i].IsJumpWithOffset() {
				continue
			}
			k := 1 + rng.Intn(4)
			ed := edit{At: i}
			for j := 0; j < k; j++ {
				ed.Insns = append(ed.Insns, ir.Instruction{Op: 0xbf, Dst: ir.R2, Src: ir.R2})
				ed.Aux = append(ed.Aux, ir.Aux{OrigIndex: -1})
			}
			ed.Aux[0].OrigIndex = int32(i)
			edits = append(edits, ed)
		}
		if err := applyEdits(p, edits); err != nil {
			t.Fatal(err)
		}
		newPos := map[int32]int{}
		for i, a := range p.Aux {
			if a.OrigIndex >= 0 {
				newPos[a.OrigIndex] = i
			}
		}
		for i, ins := range orig.Insns {
			if !ins.IsJumpWithOffset() {
				continue
			}
			np := newPos[int32(i)]
			if got, want := p.Target(np), newPos[int32(orig.Target(i))]; got != want {
				t.Fatalf("iter %d: jump %d (now %d) reaches %d, want %d", iter, i, np, got, want)
			}
		}
		if p.Funcs[0].End != p.Len() {
			t.Fatalf("Funcs end %d, program %d", p.Funcs[0].End, p.Len())
		}
	}
}

// TestApplyEditsRange: a jump whose distance no longer fits is an error
// naming it, and the program is unchanged.
func TestApplyEditsRange(t *testing.T) {
	n := 32770
	insns := make([]ir.Instruction, n)
	for i := range insns {
		insns[i] = ir.Instruction{Op: 0xb7}
	}
	insns[0] = ir.Instruction{Op: 0x05, Off: 32766} // ja to the last instruction
	insns[n-1] = ir.Instruction{Op: ir.OpExit}
	p := ir.NewProgram("r", insns)
	before := p.Clone()
	ed := edit{At: 5, Insns: make([]ir.Instruction, 3), Aux: make([]ir.Aux, 3)}
	err := applyEdits(p, []edit{ed})
	if err == nil || !strings.Contains(err.Error(), "instruction 0:") {
		t.Fatalf("error %v, want one naming instruction 0", err)
	}
	if p.Len() != before.Len() || p.Insns[0] != before.Insns[0] {
		t.Fatal("program changed")
	}
}
