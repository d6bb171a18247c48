package passes

import (
	"testing"

	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
)

// TestStackDepthDirect: where the direct path applies (no copies of r10)
// it gives the dataflow's depth, function by function, over every kernel
// capture and generated programs, with dead code and r10 accesses placed
// only there.
func TestStackDepthDirect(t *testing.T) {
	var progs []*ir.Program
	for _, c := range goldenCaptures(t) {
		p, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		progs = append(progs, p)
	}
	progs = append(progs, gen.Straight(5000), bigProgram(3000),
		// Dead code below a jump: its deeper access does not count.
		ir.NewProgram("dead", []ir.Instruction{
			{Op: 0x7a, Dst: ir.R10, Off: -16, Imm: 1}, // *(u64 *)(r10-16) = 1
			{Op: ir.OpJA, Off: 1},
			{Op: 0x7a, Dst: ir.R10, Off: -400, Imm: 1},    // dead
			{Op: 0x79, Dst: ir.R0, Src: ir.R10, Off: -24}, // r0 = *(u64 *)(r10-24)
			{Op: ir.OpExit},
		}))
	direct, total := 0, 0
	for _, p := range progs {
		funcs, err := funcsOf(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range funcs {
			total++
			if !sdDirect(p, f) {
				continue
			}
			direct++
			sdUseDirect = false
			want, werr := funcStackDepth(p, f)
			sdUseDirect = true
			got, gerr := funcStackDepth(p, f)
			if got != want || (werr == nil) != (gerr == nil) {
				t.Fatalf("%s function at %d: direct %d (%v), dataflow %d (%v)", p.Name, f.Start, got, gerr, want, werr)
			}
		}
	}
	if direct == 0 {
		t.Fatal("no function took the direct path")
	}
	t.Logf("%d of %d functions take the direct path, all agree with the dataflow", direct, total)
	d, err := funcStackDepth(progs[len(progs)-1], ir.Func{Start: 0, End: 5})
	if err != nil || d != 24 {
		t.Fatalf("dead code: depth %d, %v; want 24", d, err)
	}
}
