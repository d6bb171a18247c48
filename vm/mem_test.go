package vm

import (
	"math/rand"
	"testing"
)

// TestCodeAlloc: first-fit page allocation with coalescing never hands out
// overlapping spans, fills freed code with int3 and returns to one free
// span when everything is freed.
func TestCodeAlloc(t *testing.T) {
	m := &codeMem{rw: make([]byte, 1<<20)}
	m.free = []span{{codeAllocBase, len(m.rw) - codeAllocBase}}
	type a struct{ off, n int }
	var live []a
	owner := make([]int, len(m.rw)/pageSize)
	rng := rand.New(rand.NewSource(1))
	for step := 0; step < 5000; step++ {
		if len(live) > 0 && rng.Intn(2) == 0 {
			k := rng.Intn(len(live))
			x := live[k]
			live = append(live[:k], live[k+1:]...)
			for pg := x.off / pageSize; pg < (x.off+x.n+pageSize-1)/pageSize; pg++ {
				owner[pg] = 0
			}
			m.rw[x.off] = 0x90
			m.release(x.off, x.n)
			if m.rw[x.off] != 0xcc {
				t.Fatal("freed code not filled with int3")
			}
			continue
		}
		n := 1 + rng.Intn(5*pageSize)
		off, err := m.alloc(n)
		if err != nil {
			continue // full
		}
		if off < codeAllocBase || off%pageSize != 0 || off+n > len(m.rw) {
			t.Fatalf("alloc(%d) = %#x", n, off)
		}
		for pg := off / pageSize; pg < (off+n+pageSize-1)/pageSize; pg++ {
			if owner[pg] != 0 {
				t.Fatalf("page %d handed out twice", pg)
			}
			owner[pg] = step + 1
		}
		live = append(live, a{off, n})
	}
	for _, x := range live {
		m.release(x.off, x.n)
	}
	if len(m.free) != 1 || m.free[0] != (span{codeAllocBase, len(m.rw) - codeAllocBase}) {
		t.Errorf("free list after freeing everything: %v", m.free)
	}
	if _, err := m.alloc(len(m.rw)); err == nil {
		t.Error("oversized allocation succeeded")
	}
}
