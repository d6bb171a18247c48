package asm

import (
	"strings"
	"testing"
)

func BenchmarkAssemble(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		sb.WriteString("add %r1, 5\nldxw %r2, [%r1+4]\nstxdw [%r10-8], %r2\njgt %r1, %r2, -4\nlddw %r3, 0x1122334455667788\n")
	}
	sb.WriteString("exit\n")
	text := sb.String()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		p, err := Assemble(text)
		if err != nil {
			b.Fatal(err)
		}
		n = p.Len()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
}

func BenchmarkFormat(b *testing.B) {
	p, err := Assemble(strings.Repeat("add %r1, 5\nldxw %r2, [%r1+4]\njgt %r1, %r2, +1\nlddw %r3, 7\n", 2000) + "exit")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = Format(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(p.Len()), "ns/insn")
}
