package helpers

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"
)

// MapType is a BPF map type (enum bpf_map_type) this package implements.
type MapType uint32

const (
	MapHash  MapType = 1
	MapArray MapType = 2
)

// Kernel helper ids of the map helpers.
const (
	IDMapLookupElem = 1
	IDMapUpdateElem = 2
	IDMapDeleteElem = 3
)

// Update flags of bpf_map_update_elem.
const (
	UpdateAny     = 0
	UpdateNoExist = 1
	UpdateExist   = 2
)

// errno values the map helpers return (negated, as u64).
const (
	errENOENT = 2
	errE2BIG  = 7
	errEFAULT = 14
	errEEXIST = 17
	errEINVAL = 22
)

// Map is an array or hash map whose values live in one preallocated block
// (like the kernel's preallocated maps), so a value pointer a helper hands
// to a program stays valid: executors make Values() accessible memory.
type Map struct {
	Name       string
	Type       MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	ReadOnly   bool // values may not be written by programs (.rodata)

	hdr    []byte // its address identifies the map (ld_imm64 of the map)
	values []byte

	mu   sync.Mutex
	keys map[string]uint32 // hash: key -> slot
	free []uint32          // hash: free slots
}

// NewMap creates a map. Array maps have 4-byte keys; all values start zero.
func NewMap(name string, typ MapType, keySize, valueSize, maxEntries uint32) (*Map, error) {
	switch {
	case typ != MapArray && typ != MapHash:
		return nil, fmt.Errorf("map %s: type %d is not supported (array and hash are)", name, typ)
	case valueSize == 0 || maxEntries == 0:
		return nil, fmt.Errorf("map %s: zero value size or max entries", name)
	case typ == MapArray && keySize != 4:
		return nil, fmt.Errorf("map %s: array keys are 4 bytes, not %d", name, keySize)
	case keySize == 0 || keySize > 512:
		return nil, fmt.Errorf("map %s: key size %d", name, keySize)
	case uint64(valueSize)*uint64(maxEntries) > 1<<30:
		return nil, fmt.Errorf("map %s: %d x %d bytes is too large", name, maxEntries, valueSize)
	}
	m := &Map{Name: name, Type: typ, KeySize: keySize, ValueSize: valueSize, MaxEntries: maxEntries,
		hdr: make([]byte, 8), values: make([]byte, uint64(valueSize)*uint64(maxEntries))}
	if typ == MapHash {
		m.keys = map[string]uint32{}
		for i := maxEntries; i > 0; i-- {
			m.free = append(m.free, i-1)
		}
	}
	return m, nil
}

// NewDataMap is an array map of one value holding data (a .data, .bss or
// .rodata section, as libbpf makes them).
func NewDataMap(name string, data []byte, size int, readOnly bool) (*Map, error) {
	if size < len(data) {
		size = len(data)
	}
	if size == 0 {
		size = 1
	}
	m, err := NewMap(name, MapArray, 4, uint32(size), 1)
	if err != nil {
		return nil, err
	}
	copy(m.values, data)
	m.ReadOnly = readOnly
	return m, nil
}

// Addr is the value a ld_imm64 of the map loads (the "struct bpf_map *").
func (m *Map) Addr() uint64 { return uint64(uintptr(unsafe.Pointer(&m.hdr[0]))) }

// Values is the block holding every value; executors expose it to programs.
func (m *Map) Values() []byte { return m.values }

// ValueAddr is the address of value slot i.
func (m *Map) ValueAddr(i uint32) uint64 {
	return uint64(uintptr(unsafe.Pointer(&m.values[0]))) + uint64(i)*uint64(m.ValueSize)
}

func (m *Map) slot(i uint32) []byte {
	return m.values[uint64(i)*uint64(m.ValueSize) : uint64(i+1)*uint64(m.ValueSize)]
}

// Lookup returns the slot of key.
func (m *Map) Lookup(key []byte) (uint32, bool) {
	if m.Type == MapArray {
		i := binary.LittleEndian.Uint32(key)
		return i, i < m.MaxEntries
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.keys[string(key)]
	return i, ok
}

// Update stores value under key with bpf_map_update_elem's flags; it
// returns 0 or a negative errno.
func (m *Map) Update(key, value []byte, flags uint64) int {
	if flags > UpdateExist {
		return -errEINVAL
	}
	if m.Type == MapArray {
		i := binary.LittleEndian.Uint32(key)
		switch {
		case i >= m.MaxEntries:
			return -errE2BIG
		case flags == UpdateNoExist:
			return -errEEXIST
		}
		copy(m.slot(i), value)
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.keys[string(key)]
	switch {
	case ok && flags == UpdateNoExist:
		return -errEEXIST
	case !ok && flags == UpdateExist:
		return -errENOENT
	case !ok:
		if len(m.free) == 0 {
			return -errE2BIG
		}
		i = m.free[len(m.free)-1]
		m.free = m.free[:len(m.free)-1]
		m.keys[string(key)] = i
	}
	copy(m.slot(i), value)
	return 0
}

// Delete removes key (hash maps); arrays cannot delete.
func (m *Map) Delete(key []byte) int {
	if m.Type == MapArray {
		return -errEINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.keys[string(key)]
	if !ok {
		return -errENOENT
	}
	delete(m.keys, string(key))
	clear(m.slot(i))
	m.free = append(m.free, i)
	return 0
}

// Len returns the number of entries (hash) or MaxEntries (array).
func (m *Map) Len() int {
	if m.Type == MapArray {
		return int(m.MaxEntries)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// Get returns a copy of key's value, for tests and tools.
func (m *Map) Get(key []byte) ([]byte, bool) {
	i, ok := m.Lookup(key)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), m.slot(i)...), true
}

func (c *Context) mapAt(addr uint64) *Map {
	if c.Maps == nil {
		return nil
	}
	return c.Maps[addr]
}

// MapLookupElem is bpf_map_lookup_elem(map, key): the value's address or 0.
func MapLookupElem(c *Context, mp, keyPtr, _, _, _ uint64) uint64 {
	m := c.mapAt(mp)
	if m == nil {
		c.Abort(fmt.Errorf("bpf_map_lookup_elem: %#x is not a map", mp))
		return 0
	}
	key := c.Mem.Bytes(keyPtr, int(m.KeySize), false)
	if key == nil {
		c.Abort(fmt.Errorf("bpf_map_lookup_elem(%s): key pointer %#x is not readable", m.Name, keyPtr))
		return 0
	}
	i, ok := m.Lookup(key)
	if !ok {
		return 0
	}
	return m.ValueAddr(i)
}

// MapUpdateElem is bpf_map_update_elem(map, key, value, flags).
func MapUpdateElem(c *Context, mp, keyPtr, valPtr, flags, _ uint64) uint64 {
	m := c.mapAt(mp)
	if m == nil {
		c.Abort(fmt.Errorf("bpf_map_update_elem: %#x is not a map", mp))
		return 0
	}
	key := c.Mem.Bytes(keyPtr, int(m.KeySize), false)
	val := c.Mem.Bytes(valPtr, int(m.ValueSize), false)
	if key == nil || val == nil {
		c.Abort(fmt.Errorf("bpf_map_update_elem(%s): key %#x or value %#x is not readable", m.Name, keyPtr, valPtr))
		return 0
	}
	return uint64(int64(m.Update(key, val, flags)))
}

// MapDeleteElem is bpf_map_delete_elem(map, key).
func MapDeleteElem(c *Context, mp, keyPtr, _, _, _ uint64) uint64 {
	m := c.mapAt(mp)
	if m == nil {
		c.Abort(fmt.Errorf("bpf_map_delete_elem: %#x is not a map", mp))
		return 0
	}
	key := c.Mem.Bytes(keyPtr, int(m.KeySize), false)
	if key == nil {
		c.Abort(fmt.Errorf("bpf_map_delete_elem(%s): key pointer %#x is not readable", m.Name, keyPtr))
		return 0
	}
	return uint64(int64(m.Delete(key)))
}

// MapSet indexes maps by their address for Context.Maps.
func MapSet(maps ...*Map) map[uint64]*Map {
	out := make(map[uint64]*Map, len(maps))
	for _, m := range maps {
		out[m.Addr()] = m
	}
	return out
}
