package interp

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir/elf"
)

// ObjectMaps creates the array and hash maps of a loaded object, and the
// one-value array maps of its data sections (.data, .bss, .rodata with their
// initial contents, .rodata read-only), by the names its ld_imm64
// references use. Arena maps are left out: give Options.Arena instead.
func ObjectMaps(obj *elf.Object) (map[string]*helpers.Map, error) {
	out := map[string]*helpers.Map{}
	for _, d := range obj.Maps {
		var m *helpers.Map
		var err error
		switch {
		case d.Type == ebpf.Arena:
			continue
		case d.Section != ".maps":
			ro := d.Section == ".rodata" || d.Flags&0x80 != 0 // BPF_F_RDONLY_PROG
			m, err = helpers.NewDataMap(d.Name, d.Data, int(d.ValueSize), ro)
		case d.Type == ebpf.Array:
			m, err = helpers.NewMap(d.Name, helpers.MapArray, d.KeySize, d.ValueSize, d.MaxEntries)
		case d.Type == ebpf.Hash:
			m, err = helpers.NewMap(d.Name, helpers.MapHash, d.KeySize, d.ValueSize, d.MaxEntries)
		default:
			err = fmt.Errorf("map %s: type %v is not supported", d.Name, d.Type)
		}
		if err != nil {
			return nil, err
		}
		out[d.Name] = m
	}
	return out, nil
}
