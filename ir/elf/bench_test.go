package elf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(dir, "calls.o"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadReader(bytes.NewReader(data), "calls.o", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
