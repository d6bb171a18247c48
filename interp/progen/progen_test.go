package progen

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
)

func TestGenerateValidAndDeterministic(t *testing.T) {
	calls, withCallees := 0, 0
	for seed := uint64(0); seed < 500; seed++ {
		opts := Options{Insns: 1 + int(seed%100), NoAtomics: seed%7 == 0, NoJumps: seed%11 == 0, NoV4: seed%5 == 0, Calls: seed%3 == 0, Loops: seed%6 == 0}
		p := Generate(seed, opts)
		if err := ir.Validate(p, ir.DecodeOptions{}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		funcs, err := ir.FindFuncs(p)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(funcs) > 2+calleeCount || (!opts.Calls && len(funcs) != 1) {
			t.Fatalf("seed %d: %d functions", seed, len(funcs))
		}
		if opts.Calls && seed%2 == 0 {
			calls++
			if len(funcs) > 1 {
				withCallees++
			}
		}
		q := Generate(seed, opts)
		if string(ir.Encode(p)) != string(ir.Encode(q)) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
		for i, in := range p.Insns {
			if in.IsJumpWithOffset() && p.Target(i) <= i {
				t.Fatalf("seed %d: backward jump at %d", seed, i)
			}
			if in.Class().IsALU() && (in.ALUOp() == ir.ALUDiv || in.ALUOp() == ir.ALUMod) && in.Source() == ir.SourceK && in.Imm == 0 {
				t.Fatalf("seed %d: division by immediate zero at %d", seed, i)
			}
			if opts.NoV4 && (in.Op == ir.OpGotoL || in.Class() == ir.ClassLDX && in.Mode() == ir.ModeMEMSX) {
				t.Fatalf("seed %d: v4 instruction with NoV4 at %d", seed, i)
			}
			if opts.NoAtomics && in.IsAtomic() {
				t.Fatalf("seed %d: atomic with NoAtomics", seed)
			}
		}
	}
	if withCallees < calls/2 {
		t.Fatalf("only %d of %d programs with Calls have callees", withCallees, calls)
	}
	if string(ir.Encode(Generate(1, Options{}))) == string(ir.Encode(Generate(2, Options{}))) {
		t.Fatal("different seeds give the same program")
	}
}
