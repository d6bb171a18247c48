package compiler

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
)

// benchWhole measures the whole path of one raw program: decode and
// validate (LoadBytes), the default passes, layout and the final pass.
// B/insn counts every allocated byte, the output image included.
func benchWhole(b *testing.B, n int) {
	raw := ir.Encode(gen.Straight(n))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ins, err := LoadBytes("bench.bin", raw, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(ins[0], Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/float64(n), "B/insn")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)/float64(n), "allocs/insn")
}

// BenchmarkWholeCompile is the whole compile of the peers' straight-line
// shape at 1,000, 65,535 and 1,000,000 instructions.
func BenchmarkWholeCompile(b *testing.B) {
	for _, n := range []int{1000, 65535, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchWhole(b, n) })
	}
}

// BenchmarkCompileBatch compiles 64 programs of about 4,000 instructions
// with CompileBatch on 1 worker and on GOMAXPROCS workers; the ratio of the
// two ns/insn figures is the parallel speedup (on a loaded machine it is
// bounded by the CPU time the machine gives the process).
func BenchmarkCompileBatch(b *testing.B) {
	ins := batchInputs(b, 64, 4000, -1)
	total := 0
	for _, in := range ins {
		total += in.Prog.Len()
	}
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				_, errs := CompileBatch(ins, Options{}, workers)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(total), "ns/insn")
		})
	}
}
