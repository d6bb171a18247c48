package helpers

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// heapMem is a Memory over real process memory of the given slices.
type heapMem [][]byte

func (h heapMem) Bytes(addr uint64, n int, _ bool) []byte {
	for _, b := range h {
		base := uint64(uintptr(unsafe.Pointer(&b[0])))
		if addr >= base && addr-base+uint64(n) <= uint64(len(b)) {
			return b[addr-base : addr-base+uint64(n)]
		}
	}
	return nil
}

func u32(v uint32) []byte  { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte  { return binary.LittleEndian.AppendUint64(nil, v) }
func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func TestHashMap(t *testing.T) {
	m, err := NewMap("h", MapHash, 4, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	k1, k2, k3, v := u32(1), u32(2), u32(3), u64(0x1122)
	c := &Context{Mem: heapMem{k1, k2, k3, v, m.Values()}, Maps: MapSet(m)}
	tests := []struct {
		name string
		got  uint64
		want int64
	}{
		{"lookup missing", MapLookupElem(c, m.Addr(), addr(k1), 0, 0, 0), 0},
		{"update exist on missing", MapUpdateElem(c, m.Addr(), addr(k1), addr(v), UpdateExist, 0), -errENOENT},
		{"insert", MapUpdateElem(c, m.Addr(), addr(k1), addr(v), UpdateNoExist, 0), 0},
		{"noexist on present", MapUpdateElem(c, m.Addr(), addr(k1), addr(v), UpdateNoExist, 0), -errEEXIST},
		{"insert 2", MapUpdateElem(c, m.Addr(), addr(k2), addr(v), UpdateAny, 0), 0},
		{"full", MapUpdateElem(c, m.Addr(), addr(k3), addr(v), UpdateAny, 0), -errE2BIG},
		{"bad flags", MapUpdateElem(c, m.Addr(), addr(k1), addr(v), 9, 0), -errEINVAL},
		{"delete", MapDeleteElem(c, m.Addr(), addr(k2), 0, 0, 0), 0},
		{"delete missing", MapDeleteElem(c, m.Addr(), addr(k2), 0, 0, 0), -errENOENT},
		{"insert after delete", MapUpdateElem(c, m.Addr(), addr(k3), addr(v), UpdateAny, 0), 0},
	}
	for _, tc := range tests {
		if int64(tc.got) != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, int64(tc.got), tc.want)
		}
	}
	p := MapLookupElem(c, m.Addr(), addr(k1), 0, 0, 0)
	if p == 0 {
		t.Fatal("lookup after insert")
	}
	val := c.Mem.Bytes(p, 8, true)
	if binary.LittleEndian.Uint64(val) != 0x1122 {
		t.Fatalf("value %x", val)
	}
	binary.LittleEndian.PutUint64(val, 7) // a program writes through the pointer
	if got, _ := m.Get(k1); binary.LittleEndian.Uint64(got) != 7 || m.Len() != 2 {
		t.Fatal("write through value pointer")
	}
	if c.Interrupted() {
		t.Fatal(c.Err())
	}
	MapLookupElem(c, 0x1234, addr(k1), 0, 0, 0)
	if c.Err() == nil {
		t.Fatal("lookup in a non-map did not abort")
	}
	c.Reset()
	MapLookupElem(c, m.Addr(), 0x10, 0, 0, 0)
	if c.Err() == nil {
		t.Fatal("unreadable key did not abort")
	}
}

func TestArrayAndDataMaps(t *testing.T) {
	m, err := NewMap("a", MapArray, 4, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m.Update(u32(4), u64(1), UpdateAny) != -errE2BIG || m.Update(u32(1), u64(1), UpdateNoExist) != -errEEXIST ||
		m.Update(u32(3), u64(9), UpdateExist) != 0 || m.Delete(u32(0)) != -errEINVAL {
		t.Fatal("array update/delete semantics")
	}
	if i, ok := m.Lookup(u32(3)); !ok || i != 3 || m.ValueAddr(3) != addr(m.Values())+24 {
		t.Fatal("array lookup")
	}
	if _, ok := m.Lookup(u32(4)); ok {
		t.Fatal("out-of-range lookup")
	}
	d, err := NewDataMap(".rodata", []byte{1, 2}, 8, true)
	if err != nil || len(d.Values()) != 8 || d.Values()[1] != 2 || !d.ReadOnly {
		t.Fatalf("data map: %v", err)
	}
	for _, bad := range []struct {
		typ        MapType
		ks, vs, me uint32
	}{{9, 4, 8, 1}, {MapArray, 8, 8, 1}, {MapHash, 4, 0, 1}, {MapHash, 4, 8, 0}, {MapHash, 0, 8, 1}} {
		if _, err := NewMap("bad", bad.typ, bad.ks, bad.vs, bad.me); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
