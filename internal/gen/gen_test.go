package gen

import (
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

func TestStraightSizes(t *testing.T) {
	for _, n := range []int{1, 2, 10, 11, 12, 100, 65535, ir.MaxInsns} {
		p := Straight(n)
		if p.Len() != n {
			t.Fatalf("Straight(%d) has %d slots", n, p.Len())
		}
		if err := ir.Validate(p, ir.DecodeOptions{}); err != nil {
			t.Fatalf("Straight(%d): %v", n, err)
		}
		q, err := ir.Decode(ir.Encode(p))
		if err != nil || q.Len() != n {
			t.Fatalf("Straight(%d) does not decode back: %v", n, err)
		}
	}
}

// TestStraightShape checks the mix: ld_imm64, forward jumps, stack
// stores and loads are all there.
func TestStraightShape(t *testing.T) {
	p := Straight(1000)
	var ld, jmp, st, ldx int
	for i, ins := range p.Insns {
		switch {
		case ins.IsLdImm64():
			ld++
		case ins.IsJumpWithOffset():
			jmp++
			if p.Target(i) <= i {
				t.Fatalf("instruction %d: jump backwards", i)
			}
		case ins.Class() == ir.ClassSTX && ins.Dst == ir.R10:
			st++
		case ins.Class() == ir.ClassLDX && ins.Src == ir.R10:
			ldx++
		}
	}
	if ld < 90 || jmp < 90 || st < 90 || ldx < 90 {
		t.Fatalf("ld_imm64 %d, jumps %d, stores %d, loads %d: want about 100 each", ld, jmp, st, ldx)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		n       int
		wantErr string
	}{
		{"straight:100", 100, ""},
		{"loop", 15, ""},
		{"memsum", 8, ""},
		{"calls", 12, ""},
		{"empty", 2, ""},
		{"straight", 0, "needs a size"},
		{"straight:0", 0, "size must be"},
		{"straight:1000001", 0, "size must be"},
		{"straight:x", 0, "size must be"},
		{"loop:3", 0, "takes no size"},
		{"nope", 0, "unknown shape"},
	} {
		p, err := Parse(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if p.Len() != tc.n {
			t.Errorf("%s: %d slots, want %d", tc.spec, p.Len(), tc.n)
		}
		if _, err := passes.Default(passes.Options{CtxIsMemory: true}).Run(p.Clone(), &pipeline.Context{}); err != nil {
			t.Errorf("%s: default passes: %v", tc.spec, err)
		}
	}
}

func TestExecuted(t *testing.T) {
	if Executed("memsum", MemsumSize) != 3+MemsumSize/8*4+1 || Executed("loop", 0) != LoopInsns || Executed("x", 0) != 0 {
		t.Fatal("Executed")
	}
}
