package passes

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// BenchmarkPass measures each pass of the default pipeline on its own, in
// ns per instruction, over the peers' straight-line shape
// (internal/gen.Straight): the program is first taken through the passes
// before it, then each iteration runs the pass on a fresh copy of that
// (the copy is not timed).
func BenchmarkPass(b *testing.B) {
	for _, n := range []int{65535, 1_000_000} {
		if n > 65535 && testing.Short() {
			continue
		}
		pl := Default(Options{})
		ps, enabled := pl.Passes()
		p := gen.Straight(n)
		for k, ps := range ps {
			if !enabled[k] {
				continue
			}
			in := p.Clone()
			b.Run(fmt.Sprintf("%s/%d", ps.Name(), n), func(b *testing.B) {
				b.ReportAllocs()
				var q *ir.Program
				var cpu time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					q = in.Clone()
					b.StartTimer()
					c0 := cpuTime()
					if err := ps.Run(q, &pipeline.Context{}); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime() - c0
				}
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/insn")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
			})
			if err := ps.Run(p, &pipeline.Context{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// cpuTime is the process's user+system CPU time: on a loaded machine it
// measures the work better than the wall clock (it includes the GC's
// background workers).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
