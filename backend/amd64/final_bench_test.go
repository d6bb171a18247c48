package amd64

import (
	"fmt"
	"testing"
)

// BenchmarkFinalPass measures the final (emitting) pass alone: Write of a
// laid-out function into a preallocated buffer, per BPF instruction.
func BenchmarkFinalPass(b *testing.B) {
	for _, n := range benchSizes {
		p := benchProgram(n)
		l, err := NewLayout(p, Linux618())
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, l.Size(0))
		exec := l.ExecAddrs(nil)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := l.Write(0, buf, exec[0], exec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
		})
	}
}
