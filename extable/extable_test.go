package extable

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		e        Entry
		wantLen  int
		clears   bool
		clearReg uint8
		arena    bool
		arenaReg uint8
		off      int16
		fixup    uint32
		data     uint32
	}{
		{
			name: "arena load r0 = *(u64 *)(r1 + 8)",
			e:    NewEntry(-100, 5, PtRegsOffset(0), true, PtRegsOffset(1), 8),
			// len 5 | rax(80)<<8 | rdi(112)<<16 | bit31
			wantLen: 5, clears: true, clearReg: 80, arena: true, arenaReg: 112, off: 8,
			fixup: 5 | 80<<8 | 112<<16 | 1<<31, data: 7 | 8<<16,
		},
		{
			name:    "arena store *(u32 *)(r6 - 4) = r2",
			e:       NewEntry(-28, 5, DontClear, true, PtRegsOffset(6), -4),
			wantLen: 5, clears: false, clearReg: DontClear, arena: true, arenaReg: 40, off: -4,
			fixup: 5 | 1<<8 | 40<<16 | 1<<31, data: 7 | 0xfffc<<16,
		},
		{
			name:    "PROBE_MEM load (not arena)",
			e:       NewEntry(-12, 4, PtRegsOffset(3), false, 0, 16),
			wantLen: 4, clears: true, clearReg: 96,
			fixup: 4 | 96<<8, data: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			assert.Equal(t, tt.fixup, e.Fixup, "fixup word")
			assert.Equal(t, tt.data, e.Data, "data word")
			assert.Equal(t, tt.wantLen, e.InsnLen())
			assert.Equal(t, tt.clears, e.Clears())
			assert.Equal(t, tt.clearReg, e.ClearReg())
			assert.Equal(t, tt.arena, e.IsArena())
			if tt.arena {
				assert.Equal(t, tt.arenaReg, e.ArenaReg())
				assert.Equal(t, tt.off, e.Off())
			}
			assert.Equal(t, uint8(TypeBPF), e.Type())
			var b [EntrySize]byte
			e.Put(b[:])
			assert.Equal(t, e, Get(b[:]))
		})
	}
}

func TestPtRegsOffsets(t *testing.T) {
	// struct pt_regs: r15 0, r14 8, r13 16, r12 24, bp 32, bx 40, r11 48,
	// r10 56, r9 64, r8 72, ax 80, cx 88, dx 96, si 104, di 112.
	want := map[uint8]uint8{0: 80, 1: 112, 2: 104, 3: 96, 4: 88, 5: 72, 6: 40, 7: 16, 8: 8, 9: 0}
	for r, off := range want {
		assert.Equal(t, off, PtRegsOffset(r), "R%d", r)
	}
}

func TestLookupAndApply(t *testing.T) {
	// Three entries at 0x1000; they cover instructions at 0x900, 0x910, 0x950.
	base := uint64(0x1000)
	tab := &Table{Base: base}
	for k, insn := range []uint64{0x900, 0x910, 0x950} {
		delta := int32(int64(insn) - int64(base+uint64(k)*EntrySize))
		clear := PtRegsOffset(0)
		if k == 1 {
			clear = DontClear
		}
		tab.Entries = append(tab.Entries, NewEntry(delta, 4+k, clear, true, PtRegsOffset(1), 0))
	}
	require.True(t, tab.Sorted())
	for _, pc := range []uint64{0x8ff, 0x901, 0x951, 0x1000} {
		_, ok := tab.Lookup(pc)
		assert.False(t, ok, "pc %#x", pc)
	}

	// A load: rax cleared, resume after the 4-byte instruction.
	e, ok := tab.Lookup(0x900)
	require.True(t, ok)
	var regs Regs
	regs[80/8] = 0xdead
	regs[112/8] = 0x1234
	assert.Equal(t, uint64(0x904), Apply(e, 0x900, &regs))
	assert.Zero(t, regs[80/8], "load destination cleared")
	assert.Equal(t, uint64(0x1234), regs[112/8], "base register untouched")

	// A store: nothing cleared, skipped.
	e, ok = tab.Lookup(0x910)
	require.True(t, ok)
	regs[80/8] = 0xdead
	assert.Equal(t, uint64(0x915), Apply(e, 0x910, &regs))
	assert.Equal(t, uint64(0xdead), regs[80/8], "store clears nothing")

	e, ok = tab.Lookup(0x950)
	require.True(t, ok)
	assert.Equal(t, 6, e.InsnLen())

	unsorted := &Table{Base: base, Entries: []Entry{tab.Entries[1], tab.Entries[0]}}
	unsorted.Entries[0].Insn += EntrySize // keep absolute 0x910 at index 0
	unsorted.Entries[1].Insn -= EntrySize // 0x900 at index 1
	assert.False(t, unsorted.Sorted())
}
