package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// bigProgram makes a straight-line-with-forward-jumps program of about n
// slots: 32-bit ALU, divisions (guards), stack stores and loads, arena
// casts and accesses, ld_imm64, forward conditional jumps.
func bigProgram(n int) *ir.Program {
	insns := make([]ir.Instruction, 0, n+16)
	insns = append(insns,
		ir.Instruction{Op: 0xbf, Dst: ir.R6, Src: ir.R1, Off: 1, Imm: 1}, // r6 = cast_kern(r1)
		ir.Instruction{Op: 0xb7, Dst: ir.R7, Imm: 3},
	)
	for len(insns) < n {
		k := len(insns)
		switch k % 12 {
		case 0:
			insns = append(insns, ir.Instruction{Op: 0xb4, Dst: ir.R2, Imm: int32(k)}) // w2 = k
		case 1:
			insns = append(insns, ir.Instruction{Op: 0x0c, Dst: ir.R2, Src: ir.R7}) // w2 += w7
		case 2:
			insns = append(insns, ir.Instruction{Op: 0x3f, Dst: ir.R2, Src: ir.R7}) // r2 /= r7
		case 3:
			insns = append(insns, ir.Instruction{Op: 0x7b, Dst: ir.R10, Src: ir.R2, Off: -8}) // *(u64 *)(r10-8) = r2
		case 4:
			insns = append(insns, ir.Instruction{Op: 0x79, Dst: ir.R3, Src: ir.R10, Off: -8})
		case 5:
			insns = append(insns, ir.Instruction{Op: 0x7b, Dst: ir.R6, Src: ir.R3, Off: 16}) // arena store
		case 6:
			insns = append(insns, ir.Instruction{Op: 0x15, Dst: ir.R3, Off: 2}) // if r3 == 0 goto +2
		case 7:
			insns = append(insns, ir.Instruction{Op: 0x61, Dst: ir.R4, Src: ir.R6, Off: 4}) // arena load w
		case 8:
			insns = append(insns, ir.Instruction{Op: 0x9c, Dst: ir.R4, Src: ir.R7}) // w4 %= w7
		case 9:
			ld := ir.LdImm64(ir.R5, uint64(k)<<32|7)
			insns = append(insns, ld[0], ld[1])
		case 10:
			insns = append(insns, ir.Instruction{Op: 0x0f, Dst: ir.R5, Src: ir.R4}) // r5 += r4
		case 11:
			insns = append(insns, ir.Instruction{Op: 0x07, Dst: ir.R6, Imm: 8}) // arena pointer arithmetic
		}
	}
	insns = append(insns, ir.Instruction{Op: 0xb7, Dst: ir.R0}, ir.Instruction{Op: ir.OpExit})
	return ir.NewProgram("big", insns)
}

func benchPipeline(b *testing.B, n int, force bool) {
	p := bigProgram(n)
	pl := Default(Options{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := p.Clone()
		if _, err := pl.Run(q, &pipeline.Context{ForceZext: force}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(p.Len()), "ns/insn")
}

func BenchmarkDefault65k(b *testing.B)         { benchPipeline(b, 65_535, false) }
func BenchmarkDefault1M(b *testing.B)          { benchPipeline(b, 1_000_000, false) }
func BenchmarkDefault1MForceZext(b *testing.B) { benchPipeline(b, 1_000_000, true) }

// TestBigProgram runs the pipeline over a large program once (its size
// guards against quadratic editing; timing is for the benchmarks).
func TestBigProgram(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	p := bigProgram(n)
	n0 := p.Len()
	if _, err := Default(Options{}).Run(p, &pipeline.Context{ForceZext: true}); err != nil {
		t.Fatal(err)
	}
	if p.Len() <= n0 || !p.UsesArena {
		t.Fatalf("%d -> %d instructions, UsesArena %v", n0, p.Len(), p.UsesArena)
	}
}
