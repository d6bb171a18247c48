package ir_test

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// benchMixed is a 10k-slot program of every common kind: ALU, loads,
// stores, jumps, calls, ld_imm64.
func benchMixed() *ir.Program {
	var insns []ir.Instruction
	for len(insns) < 10000-3 {
		k := len(insns)
		insns = append(insns,
			ir.Instruction{Op: 0x07, Dst: 1, Imm: int32(k)},
			ir.Instruction{Op: 0x61, Dst: 2, Src: 1, Off: 4},
			ir.Instruction{Op: 0x7b, Dst: 10, Src: 2, Off: -8},
			ir.Instruction{Op: 0x2d, Dst: 1, Src: 2, Off: 1},
			ir.Instruction{Op: ir.OpCall, Imm: 5},
			ir.Instruction{Op: ir.OpLdImm64, Dst: 3, Imm: 7}, ir.Instruction{Imm: 1},
		)
	}
	insns = append(insns, ir.Instruction{Op: 0xb7}, ir.Instruction{Op: ir.OpExit})
	return ir.NewProgram("bench", insns)
}

func perInsn(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
}

func BenchmarkDecode(b *testing.B) {
	p := benchMixed()
	raw := ir.Encode(p)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ir.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
	perInsn(b, p.Len())
}

func BenchmarkString(b *testing.B) {
	p := benchMixed()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = p.String()
	}
	perInsn(b, p.Len())
}

func BenchmarkNewCFG(b *testing.B) {
	p := benchMixed()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ir.NewCFG(p); err != nil {
			b.Fatal(err)
		}
	}
	perInsn(b, p.Len())
}
