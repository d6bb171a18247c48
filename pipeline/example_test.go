package pipeline_test

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// zeroR0 is a pass: it makes every "r0 = imm" load zero.
type zeroR0 struct{}

func (zeroR0) Name() string { return "zero-r0" }

func (zeroR0) Run(p *ir.Program, _ *pipeline.Context) error {
	for i, ins := range p.Insns {
		if ins.Op == 0xb7 && ins.Dst == ir.R0 { // BPF_ALU64 | BPF_MOV | BPF_K
			p.Insns[i].Imm = 0
		}
	}
	return nil
}

// noop is a pass that changes nothing.
type noop struct{}

func (noop) Name() string                             { return "noop" }
func (noop) Run(*ir.Program, *pipeline.Context) error { return nil }

// Build a pipeline of your own passes, run it, and read what each pass did
// from the statistics and the snapshots.
func Example() {
	p := ir.NewProgram("demo", []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 42}, // r0 = 42
		{Op: 0xb7, Dst: ir.R1, Imm: 7},  // r1 = 7
		{Op: ir.OpExit},
	})
	pl := pipeline.New(noop{}, zeroR0{})
	pl.DumpAfter = []string{"all"}
	pl.Dumper = func(*zap.Logger, pipeline.Snapshot, pipeline.Stat) {} // keep the snapshots, log nothing
	res, err := pl.Run(p, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for k, st := range res.Stats {
		fmt.Printf("%s: %d -> %d instructions, %d changed\n", st.Pass, st.InsnsBefore, st.InsnsAfter, st.Changed)
		s := res.Snapshots[k]
		for i := range s.Program.Insns {
			if s.Changed[i] {
				fmt.Printf("  changed %d: %s\n", i, s.Program.Format(i))
			}
		}
	}
	// Output:
	// noop: 3 -> 3 instructions, 0 changed
	// zero-r0: 3 -> 3 instructions, 1 changed
	//   changed 0: r0 = 0
}
