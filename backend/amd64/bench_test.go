package amd64

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// benchProgram is straight-line ALU code with forward jumps, ld_imm64 and
// stack loads/stores, n slots, ending in exit (the peers' benchmark shape).
func benchProgram(n int) *ir.Program {
	pattern := func(i int) []ir.Instruction {
		r := ir.Register(i%5 + 1)
		return []ir.Instruction{
			mov64(r, int32(i)),
			a64k(ir.ALUAdd, r, 1000),
			a64x(ir.ALUXor, ir.R0, r),
			stx(ir.SizeDW, 10, r, -8*int16(i%8+1)),
			ldx(ir.SizeW, ir.R7, 10, -8*int16(i%8+1)),
			jk(ir.ClassJMP, ir.JumpJGT, r, 7, 3),
			lddw(ir.R6, 0x123456789a)[0], lddw(ir.R6, 0x123456789a)[1],
			a32x(ir.ALUMul, ir.R0, ir.R6),
			a64k(ir.ALURsh, ir.R0, 3),
		}
	}
	insns := make([]ir.Instruction, 0, n)
	for i := 0; len(insns)+10 < n; i++ {
		insns = append(insns, pattern(i)...)
	}
	for len(insns) < n-1 {
		insns = append(insns, mov64(ir.R0, 1))
	}
	insns = append(insns, exit())
	p := ir.NewProgram("bench", insns)
	p.Funcs = []ir.Func{{Start: 0, End: len(insns), StackDepth: 64, CalleeSaved: 1<<ir.R6 | 1<<ir.R7}}
	return p
}

var benchSizes = []int{1000, 65536, 1000000}

// BenchmarkCompile measures Decode + Compile (layout and final pass) per
// BPF instruction.
func BenchmarkCompile(b *testing.B) {
	for _, n := range benchSizes {
		p := benchProgram(n)
		raw := ir.Encode(p)
		funcs := p.Funcs
		tg := Linux618()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				q, err := ir.DecodeWith(raw, ir.DecodeOptions{Xlated: true})
				if err != nil {
					b.Fatal(err)
				}
				q.Funcs = funcs
				if _, err := Compile(q, tg, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
		})
	}
}

// BenchmarkBackend measures Compile alone, with allocated bytes per
// instruction.
func BenchmarkBackend(b *testing.B) {
	for _, n := range benchSizes {
		p := benchProgram(n)
		tg := Linux618()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for i := 0; i < b.N; i++ {
				if _, err := Compile(p, tg, nil); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/float64(n), "B/insn")
		})
	}
}

// BenchmarkLayoutPass measures one intermediate layout pass per BPF
// instruction.
func BenchmarkLayoutPass(b *testing.B) {
	for _, n := range benchSizes {
		p := benchProgram(n)
		l, err := NewLayout(p, Linux618())
		if err != nil {
			b.Fatal(err)
		}
		f := l.funcs[0]
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := f.sizingPass(false, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
		})
	}
}
