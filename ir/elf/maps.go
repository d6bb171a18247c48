package elf

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// loadMaps fills Object.Maps and Object.Arena: from cilium's CollectionSpec
// when it loaded the object, otherwise from the BTF of the .maps section
// (BTF-defined maps: a struct whose members type, key_size, value_size,
// max_entries, map_flags and map_extra are pointers to arrays whose length
// is the value, and key/value pointers to the key and value types).
func (l *loader) loadMaps() error {
	l.maps = map[string]*Map{}
	if l.spec != nil {
		names := make([]string, 0, len(l.spec.Maps))
		for n := range l.spec.Maps {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ms := l.spec.Maps[n]
			m := &Map{Name: n, Section: ".maps", Type: ms.Type, KeySize: ms.KeySize, ValueSize: ms.ValueSize,
				MaxEntries: ms.MaxEntries, Flags: ms.Flags, MapExtra: ms.MapExtra}
			if strings.HasPrefix(n, ".") {
				m.Section = n
				if len(ms.Contents) == 1 {
					if b, ok := ms.Contents[0].Value.([]byte); ok {
						m.Data = b
					}
				}
			}
			l.addMap(m)
		}
	} else {
		if err := l.btfMaps(); err != nil {
			return err
		}
		if err := l.dataMaps(); err != nil {
			return err
		}
	}
	if sec := l.f.Section(ArenaSection); sec != nil {
		a := &ArenaGlobals{Size: int(sec.Size)}
		if sec.Type != elf.SHT_NOBITS {
			data, err := sec.Data()
			if err != nil {
				return fmt.Errorf("section %s: %v", ArenaSection, err)
			}
			a.Data = data
		}
		for _, m := range l.obj.Maps {
			if m.Type == ebpf.Arena {
				a.Map = m.Name
				break
			}
		}
		l.obj.Arena = a
	}
	return nil
}

func (l *loader) addMap(m *Map) {
	l.maps[m.Name] = m
	l.obj.Maps = append(l.obj.Maps, m)
}

func (l *loader) btfMaps() error {
	sec := l.f.Section(".maps")
	if sec == nil {
		return nil
	}
	if l.obj.BTF == nil {
		return errors.New("section .maps needs BTF to describe its maps (compile with -g)")
	}
	var ds *btf.Datasec
	if err := l.obj.BTF.TypeByName(".maps", &ds); err != nil {
		return fmt.Errorf("corrupt BTF: no DATASEC for .maps: %v", err)
	}
	for _, vs := range ds.Vars {
		v, ok := vs.Type.(*btf.Var)
		if !ok {
			return fmt.Errorf("corrupt BTF: .maps entry is %v, not a variable", vs.Type)
		}
		st, ok := btf.UnderlyingType(v.Type).(*btf.Struct)
		if !ok {
			return fmt.Errorf("corrupt BTF: map %q is not a struct", v.Name)
		}
		m := &Map{Name: v.Name, Section: ".maps"}
		for _, mem := range st.Members {
			switch mem.Name {
			case "type", "key_size", "value_size", "max_entries", "map_flags", "map_extra":
				n, err := arrayLen(mem.Type)
				if err != nil {
					return fmt.Errorf("corrupt BTF: map %q member %s: %v", v.Name, mem.Name, err)
				}
				switch mem.Name {
				case "type":
					m.Type = ebpf.MapType(n)
				case "key_size":
					m.KeySize = uint32(n)
				case "value_size":
					m.ValueSize = uint32(n)
				case "max_entries":
					m.MaxEntries = uint32(n)
				case "map_flags":
					m.Flags = uint32(n)
				case "map_extra":
					m.MapExtra = n
				}
			case "key", "value":
				ptr, ok := btf.UnderlyingType(mem.Type).(*btf.Pointer)
				if !ok {
					return fmt.Errorf("corrupt BTF: map %q member %s is not a pointer", v.Name, mem.Name)
				}
				size, err := btf.Sizeof(ptr.Target)
				if err != nil {
					return fmt.Errorf("corrupt BTF: map %q %s: %v", v.Name, mem.Name, err)
				}
				if mem.Name == "key" {
					m.KeySize = uint32(size)
				} else {
					m.ValueSize = uint32(size)
				}
			}
		}
		l.addMap(m)
	}
	return nil
}

func arrayLen(t btf.Type) (uint64, error) {
	ptr, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return 0, fmt.Errorf("is %v, not a pointer to an array", t)
	}
	switch tt := btf.UnderlyingType(ptr.Target).(type) {
	case *btf.Array:
		return uint64(tt.Nelems), nil
	case *btf.Enum: // libbpf's __ulong(name, val): enum { x = val } *name
		if len(tt.Values) == 1 {
			return tt.Values[0].Value, nil
		}
	}
	return 0, fmt.Errorf("points to %v, not an array", ptr.Target)
}

// dataMaps adds one single-element array map per data section, as libbpf
// creates for global variables.
func (l *loader) dataMaps() error {
	for _, sec := range l.f.Sections {
		if !isDataSection(sec.Name) || sec.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		m := &Map{Name: sec.Name, Section: sec.Name, Type: ebpf.Array, KeySize: 4, ValueSize: uint32(sec.Size), MaxEntries: 1}
		if strings.HasPrefix(sec.Name, ".rodata") {
			m.Flags = 0x80 // BPF_F_RDONLY_PROG
		}
		if sec.Type != elf.SHT_NOBITS {
			data, err := sec.Data()
			if err != nil {
				return fmt.Errorf("section %s: %v", sec.Name, err)
			}
			m.Data = data
		}
		l.addMap(m)
	}
	return nil
}

// progType returns the program type: cilium's when it loaded the object,
// else from the section name by libbpf's conventions (the common ones).
func (l *loader) progType(name, section string) (ebpf.ProgramType, ebpf.AttachType) {
	if l.spec != nil {
		if ps, ok := l.spec.Programs[name]; ok {
			return ps.Type, ps.AttachType
		}
	}
	prefix := section
	if i := strings.IndexAny(prefix, "/."); i >= 0 {
		prefix = prefix[:i]
	}
	switch prefix {
	case "socket":
		return ebpf.SocketFilter, ebpf.AttachNone
	case "xdp":
		return ebpf.XDP, ebpf.AttachXDP
	case "tc", "classifier", "tcx":
		return ebpf.SchedCLS, ebpf.AttachNone
	case "action":
		return ebpf.SchedACT, ebpf.AttachNone
	case "syscall":
		return ebpf.Syscall, ebpf.AttachNone
	case "kprobe", "kretprobe", "uprobe", "uretprobe":
		return ebpf.Kprobe, ebpf.AttachNone
	case "tracepoint", "tp":
		return ebpf.TracePoint, ebpf.AttachNone
	case "raw_tracepoint", "raw_tp":
		return ebpf.RawTracepoint, ebpf.AttachNone
	case "tp_btf":
		return ebpf.Tracing, ebpf.AttachTraceRawTp
	case "fentry":
		return ebpf.Tracing, ebpf.AttachTraceFEntry
	case "fexit":
		return ebpf.Tracing, ebpf.AttachTraceFExit
	case "lsm":
		return ebpf.LSM, ebpf.AttachLSMMac
	case "struct_ops":
		return ebpf.StructOps, ebpf.AttachNone
	case "perf_event":
		return ebpf.PerfEvent, ebpf.AttachNone
	}
	return ebpf.UnspecifiedProgram, ebpf.AttachNone
}
