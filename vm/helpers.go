package vm

import (
	"fmt"
	"sync"
)

// Helper implements a BPF helper function: R1..R5 in, R0 out. A *Stop
// error ends the run at once with its R0; any other error ends the run with
// that error; a panic becomes an error of the run.
type Helper func(r1, r2, r3, r4, r5 uint64) (uint64, error)

// Stop, returned by a helper, ends the run with R0.
type Stop struct{ R0 uint64 }

func (s *Stop) Error() string { return fmt.Sprintf("program stopped by a helper (r0 = %#x)", s.R0) }

// Helpers is a registry of helpers by id, safe for concurrent use.
type Helpers struct {
	mu sync.RWMutex
	m  map[int64]Helper
}

// NewHelpers returns an empty registry.
func NewHelpers() *Helpers { return &Helpers{m: map[int64]Helper{}} }

// Register sets the helper for id (0 <= id < 1024).
func (h *Helpers) Register(id int32, f Helper) error {
	if id < 0 || id >= maxHelperID {
		return fmt.Errorf("vm: helper id %d out of range [0, %d)", id, maxHelperID)
	}
	h.mu.Lock()
	h.m[int64(id)] = f
	h.mu.Unlock()
	return nil
}

// Lookup returns the helper for id or nil.
func (h *Helpers) Lookup(id int64) Helper {
	h.mu.RLock()
	f := h.m[id]
	h.mu.RUnlock()
	return f
}

// HelperUnwind is the bpf_conformance/ubpf "unwind" helper id: with R1 == 0
// the program stops at once returning 0, otherwise the call returns R1.
const HelperUnwind = 5

// Unwind implements HelperUnwind.
func Unwind(r1, _, _, _, _ uint64) (uint64, error) {
	if r1 == 0 {
		return 0, &Stop{R0: 0}
	}
	return r1, nil
}

// DefaultHelpers returns a registry with the conformance suite's helpers
// (HelperUnwind).
func DefaultHelpers() *Helpers {
	h := NewHelpers()
	h.Register(HelperUnwind, Unwind)
	return h
}
