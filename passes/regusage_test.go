package passes

import (
	"strings"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// goldenCaptures are the backend's live-kernel captures.
func goldenCaptures(t *testing.T) []*kernel.Capture {
	t.Helper()
	caps, err := kernel.ReadCaptures("../testdata/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if more, err := kernel.ReadCaptures("../testdata/kernel"); err == nil {
		caps = append(caps, more...)
	}
	if len(caps) == 0 {
		t.Skip("no captures in testdata/amd64")
	}
	return caps
}

// TestStackDepthRegUsageKernel runs stackdepth and regusage on the JIT
// input of every capture and compares with what the kernel's prologues
// show: sub rsp (round_up(depth, 8)), the pushes, the tail-call block.
func TestStackDepthRegUsageKernel(t *testing.T) {
	checked := 0
	for _, c := range goldenCaptures(t) {
		p, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range c.ArenaInsns { // arena truth (the arena pass infers it)
			if p.Insns[i].Mode() == ir.ModeMEM {
				p.Insns[i].Op = p.Insns[i].Op&^0xe0 | uint8(ir.ModeProbeMem32)
			}
		}
		ctx := &pipeline.Context{}
		if err := (StackDepth{}).Run(p, ctx); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if err := (RegUsage{}).Run(p, ctx); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(p.Funcs) != len(c.StackDepths) {
			t.Fatalf("%s: %d functions, kernel %d", c.Name, len(p.Funcs), len(c.StackDepths))
		}
		for k, f := range p.Funcs {
			if got := int((f.StackDepth + 7) &^ 7); got != c.StackDepths[k] {
				t.Errorf("%s: function %d: stack depth %d (rounded %d), kernel %d", c.Name, k, f.StackDepth, got, c.StackDepths[k])
			}
			var want ir.RegSet
			tcr := false
			for _, r := range strings.Fields(c.Pushes[k]) {
				switch r {
				case "rbx":
					want = want.Add(ir.R6)
				case "r13":
					want = want.Add(ir.R7)
				case "r14":
					want = want.Add(ir.R8)
				case "r15":
					want = want.Add(ir.R9)
				case "rax":
					tcr = true
				}
			}
			if f.CalleeSaved != want {
				t.Errorf("%s: function %d: callee-saved %b, kernel %b", c.Name, k, f.CalleeSaved, want)
			}
			if f.TailCallReachable != tcr {
				t.Errorf("%s: function %d: tail-call reachable %v, kernel %v", c.Name, k, f.TailCallReachable, tcr)
			}
			checked++
		}
		if p.UsesArena != (c.KernVMStart != 0) {
			t.Errorf("%s: UsesArena %v, kernel %v", c.Name, p.UsesArena, c.KernVMStart != 0)
		}
	}
	t.Logf("%d functions agree with the kernel", checked)
}
