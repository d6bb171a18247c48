package vm

import (
	"unsafe"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
)

// runMem is what a helper may touch during a run (helpers.Memory): the
// run's memory and regions, the private stack and the arena.
type runMem struct {
	mem     []byte
	regions [][]byte
	stack   []byte // the stack part of the private stack region
	arena   *arena.Arena
}

func within(b []byte, addr uint64, n int) []byte {
	if len(b) == 0 || n < 0 {
		return nil
	}
	lo := uint64(uintptr(unsafe.Pointer(&b[0])))
	if addr < lo || addr-lo > uint64(len(b)) || uint64(n) > uint64(len(b))-(addr-lo) {
		return nil
	}
	return b[addr-lo : addr-lo+uint64(n)]
}

// Bytes implements helpers.Memory.
func (m *runMem) Bytes(addr uint64, n int, write bool) []byte {
	if b := within(m.mem, addr, n); b != nil {
		return b
	}
	if b := within(m.stack, addr, n); b != nil {
		return b
	}
	for _, r := range m.regions {
		if b := within(r, addr, n); b != nil {
			return b
		}
	}
	if m.arena != nil {
		if b := m.arena.Bytes(addr, n); b != nil {
			return b
		}
		if b := m.arena.KernBytes(addr, n); b != nil {
			return b
		}
	}
	return nil
}

var _ helpers.Memory = (*runMem)(nil)
