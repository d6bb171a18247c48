// Package extable is the x86-64 BPF JIT's exception table: one entry per
// instruction that may fault (PROBE_MEM, PROBE_MEM32, PROBE_ATOMIC), placed
// after the code, and the fixup rule the fault handler applies.
//
// An entry is the kernel's struct exception_table_entry, three little-endian
// 32-bit words:
//
//	insn   offset from the entry's own insn field to the faulting instruction
//	fixup  bits 0-7 instruction length, 8-15 pt_regs offset of the register
//	       to clear (or DontClear), 16-23 pt_regs offset of the arena
//	       register, bit 31 set for arena accesses
//	data   bits 0-7 type (TypeBPF), bits 16-31 the access's offset (arena)
//
// The rule: a faulting load clears its destination register, a faulting
// store is skipped; in both cases execution resumes after the instruction.
package extable

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// EntrySize is the size of one encoded entry.
const EntrySize = 12

// TypeBPF is EX_TYPE_BPF, the entry type the x86 JIT emits.
const TypeBPF = 7

// DontClear in the register field means: clear nothing (stores).
const DontClear = 1

const (
	fixupLenMask    = 0xff
	fixupRegShift   = 8
	fixupArenaShift = 16
	fixupArenaBit   = 1 << 31
	dataOffShift    = 16
)

// pt_regs offsets of the x86 registers the BPF registers live in
// (the kernel's reg2pt_regs), indexed by BPF register number R0..R9.
var ptRegsOffset = [10]uint8{
	80,  // R0 rax
	112, // R1 rdi
	104, // R2 rsi
	96,  // R3 rdx
	88,  // R4 rcx
	72,  // R5 r8
	40,  // R6 rbx
	16,  // R7 r13
	8,   // R8 r14
	0,   // R9 r15
}

// PtRegsOffset returns the offset in struct pt_regs of the x86 register
// holding BPF register r (R0..R9).
func PtRegsOffset(r uint8) uint8 {
	if int(r) >= len(ptRegsOffset) {
		return 0
	}
	return ptRegsOffset[r]
}

// Entry is one exception-table entry, as the kernel lays it out.
type Entry struct {
	Insn  int32
	Fixup uint32
	Data  uint32
}

// NewEntry builds an entry. insnDelta is the faulting instruction's address
// minus the address of the entry; clearReg is a pt_regs offset or DontClear;
// arenaReg is the pt_regs offset of the base register of an arena access.
func NewEntry(insnDelta int32, insnLen int, clearReg uint8, arena bool, arenaReg uint8, off int16) Entry {
	e := Entry{
		Insn:  insnDelta,
		Fixup: uint32(insnLen)&fixupLenMask | uint32(clearReg)<<fixupRegShift,
		Data:  TypeBPF,
	}
	if arena {
		e.Fixup |= fixupArenaBit | uint32(arenaReg)<<fixupArenaShift
		e.Data |= uint32(uint16(off)) << dataOffShift
	}
	return e
}

// InsnLen is the length of the faulting instruction.
func (e Entry) InsnLen() int { return int(e.Fixup & fixupLenMask) }

// ClearReg is the pt_regs offset of the register to clear, or DontClear.
func (e Entry) ClearReg() uint8 { return uint8(e.Fixup >> fixupRegShift) }

// Clears reports whether the fixup clears a register (a load).
func (e Entry) Clears() bool { return e.ClearReg() != DontClear }

// IsArena reports an arena (PROBE_MEM32 / PROBE_ATOMIC) access.
func (e Entry) IsArena() bool { return e.Fixup&fixupArenaBit != 0 }

// ArenaReg is the pt_regs offset of the arena access's base register.
func (e Entry) ArenaReg() uint8 { return uint8(e.Fixup >> fixupArenaShift) }

// Type is the entry type from the data word.
func (e Entry) Type() uint8 { return uint8(e.Data) }

// Off is the access's displacement (arena entries).
func (e Entry) Off() int16 { return int16(e.Data >> dataOffShift) }

// Put writes the entry into b[:12].
func (e Entry) Put(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], uint32(e.Insn))
	binary.LittleEndian.PutUint32(b[4:], e.Fixup)
	binary.LittleEndian.PutUint32(b[8:], e.Data)
}

// Get reads an entry from b[:12].
func Get(b []byte) Entry {
	return Entry{
		Insn:  int32(binary.LittleEndian.Uint32(b[0:])),
		Fixup: binary.LittleEndian.Uint32(b[4:]),
		Data:  binary.LittleEndian.Uint32(b[8:]),
	}
}

func (e Entry) String() string {
	reg := "dont_clear"
	if e.Clears() {
		reg = fmt.Sprintf("pt_regs+%d", e.ClearReg())
	}
	s := fmt.Sprintf("insn%+d len=%d clear=%s", e.Insn, e.InsnLen(), reg)
	if e.IsArena() {
		s += fmt.Sprintf(" arena_reg=pt_regs+%d off=%d", e.ArenaReg(), e.Off())
	}
	return s
}

// Table is an exception table placed at address Base (the address of entry 0
// where the code runs). Entries are sorted by instruction address, which the
// JIT guarantees by emitting them in code order.
type Table struct {
	Base    uint64
	Entries []Entry
}

// InsnAddr is the address of the instruction entry k covers.
func (t *Table) InsnAddr(k int) uint64 {
	return t.Base + uint64(k)*EntrySize + uint64(int64(t.Entries[k].Insn))
}

// Lookup finds the entry covering the instruction at pc.
func (t *Table) Lookup(pc uint64) (Entry, bool) {
	k := sort.Search(len(t.Entries), func(k int) bool { return t.InsnAddr(k) >= pc })
	if k < len(t.Entries) && t.InsnAddr(k) == pc {
		return t.Entries[k], true
	}
	return Entry{}, false
}

// Sorted reports whether the entries are in ascending address order.
func (t *Table) Sorted() bool {
	for k := 1; k < len(t.Entries); k++ {
		if t.InsnAddr(k) <= t.InsnAddr(k-1) {
			return false
		}
	}
	return true
}

// Regs is a register file indexed by pt_regs offset / 8 (r15 at 0 ... rdi at 14).
type Regs [16]uint64

// Apply is the kernel's ex_handler_bpf: for a fault at pc covered by e, it
// clears the destination register of a load (not of a store) and returns
// where execution resumes.
func Apply(e Entry, pc uint64, regs *Regs) (resume uint64) {
	if e.Clears() {
		regs[e.ClearReg()/8] = 0
	}
	return pc + uint64(e.InsnLen())
}
