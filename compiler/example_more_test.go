package compiler_test

import (
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// dropAddZero is a custom pass: it rewrites "rX += 0" into a no-op jump
// ("goto +0"), and counts what it did.
type dropAddZero struct{ n int }

func (*dropAddZero) Name() string { return "drop-add-zero" }

func (c *dropAddZero) Run(p *ir.Program, ctx *pipeline.Context) error {
	for i, ins := range p.Insns {
		if ins.Op == 0x07 && ins.Imm == 0 { // BPF_ALU64 | BPF_ADD | BPF_K
			p.Insns[i] = ir.Instruction{Op: 0x05} // goto +0
			c.n++
		}
	}
	return nil
}

// Add a pass of your own to the pipeline and see what it did in the
// per-pass dumps (here printed by a custom Dumper; bpfc's --dump-after
// logs them through zap).
func Example_customPass() {
	prog := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 7}, // r0 = 7
		{Op: 0x07, Dst: ir.R0, Imm: 0}, // r0 += 0
		{Op: ir.OpExit},
	}})
	inputs, _ := compiler.LoadBytes("add0.bin", prog, compiler.LoadOptions{})
	pl := compiler.DefaultPipeline(false)
	pass := &dropAddZero{}
	if err := pl.InsertBefore(pl.Names()[0], pass); err != nil {
		fmt.Println(err)
		return
	}
	pl.DumpAfter = []string{"drop-add-zero"}
	pl.Dumper = func(_ *zap.Logger, s pipeline.Snapshot, st pipeline.Stat) {
		fmt.Printf("after %s: %d changed\n", s.Pass, st.Changed)
		for i := range s.Program.Insns {
			mark := " "
			if s.Changed[i] {
				mark = "*"
			}
			fmt.Printf("%s %d: %s\n", mark, i, s.Program.Format(i))
		}
	}
	res, err := compiler.Compile(inputs[0], compiler.Options{Pipeline: pl, Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("passes run:", len(res.Passes.Stats), "first:", res.Passes.Stats[0].Pass)
	// Output:
	// after drop-add-zero: 1 changed
	//   0: r0 = 7
	// * 1: goto pc+0
	//   2: exit
	// passes run: 7 first: drop-add-zero
}

// Compile the same program for two targets: the Linux 6.18 kernel (whose
// returns go through the retbleed return thunk, as the running kernel's
// JIT emits them) and the host (in-process execution: a plain ret).
func Example_targets() {
	prog := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 1},
		{Op: ir.OpExit},
	}})
	inputs, _ := compiler.LoadBytes("one.bin", prog, compiler.LoadOptions{})
	kernel := amd64.Linux618()
	kernel.ReturnThunk = 0xffffffff82000000 // pin what /proc/kallsyms would say
	for _, t := range []amd64.Target{kernel, amd64.Host()} {
		res, err := compiler.Compile(inputs[0], compiler.Options{Target: t, ExecBase: []uint64{0xffffffffa0000000}})
		if err != nil {
			fmt.Println(err)
			return
		}
		var b strings.Builder
		if err := compiler.Listing(&b, res); err != nil {
			fmt.Println(err)
			return
		}
		// The epilogue: the x86 code after the exit instruction.
		out := b.String()
		fmt.Printf("%s:\n%s", t.Name, out[strings.Index(out, "(95) exit\n")+len("(95) exit\n"):])
	}
	// Output:
	// linux-6.18:
	//     0x000011: c9                       leave
	//     0x000012: e9e9ffffe1               jmp 0xffffffff82000000
	// host:
	//     0x000011: c9                       leave
	//     0x000012: c3                       ret
}

// Write the HTML report of a compilation: one column per pass and the x86
// listing, linked instruction by instruction.
func ExampleHTMLReport() {
	inputs, err := compiler.Load("../testdata/elf/core.o", compiler.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := compiler.Compile(inputs[0], compiler.Options{Target: amd64.Host(), ExecBase: []uint64{0x10000},
		DumpAfter: []string{"all"}}) // the report's columns are the snapshots
	if err != nil {
		fmt.Println(err)
		return
	}
	var page strings.Builder
	if err := compiler.HTMLReport(&page, res); err != nil {
		fmt.Println(err)
		return
	}
	// os.WriteFile("report.html", []byte(page.String()), 0o644)
	fmt.Println(strings.Count(page.String(), `<section class="col"`), "columns for", len(res.Passes.Stats), "passes")
	// Output: 8 columns for 6 passes
}
