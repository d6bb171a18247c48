package vm

import (
	"context"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/elf"
	"github.com/bpfc/bpfc/pipeline"
)

// ArenaMapAddr is the value an ld_imm64 of an object's arena map loads in
// the vm (the "map pointer" the arena kfuncs receive and ignore).
const ArenaMapAddr = 0xffff_8880_0000_0000

// ObjectEnv is what the programs of a clang object need to run in the vm:
// an arena for the object's arena map (its size and map_extra address),
// with the object's arena globals placed in its last pages as libbpf does,
// and the symbols the fixups pass resolves ld_imm64 of the arena map and of
// arena globals to; array and hash maps and data sections become
// helpers.Map values (their memory on the Go heap, which does not move).
// Other map types are an error.
type ObjectEnv struct {
	Arena   *arena.Arena // nil when the object has no arena map
	Symbols map[string]uint64
	// Maps are the object's array and hash maps and its data sections
	// (.data, .rodata, .bss as one-value arrays), by address.
	Maps map[uint64]*helpers.Map
}

// NewObjectEnv builds the environment of obj.
func NewObjectEnv(obj *elf.Object) (*ObjectEnv, error) {
	env := &ObjectEnv{Symbols: map[string]uint64{}, Maps: map[uint64]*helpers.Map{}}
	for _, m := range obj.Maps {
		if m.Type != ebpf.Arena {
			if err := env.addMap(m); err != nil {
				env.Close()
				return nil, fmt.Errorf("%s: %w", obj.File, err)
			}
			continue
		}
		if env.Arena != nil {
			env.Close()
			return nil, fmt.Errorf("%s: more than one arena map", obj.File)
		}
		a, err := arena.New(int(m.MaxEntries), arena.Options{UserVMStart: m.MapExtra})
		if err != nil {
			env.Close()
			return nil, fmt.Errorf("%s: arena map %s: %w", obj.File, m.Name, err)
		}
		env.Arena = a
		env.Symbols[m.Name] = ArenaMapAddr
	}
	if g := obj.Arena; g != nil && (g.Size > 0 || len(g.Data) > 0) {
		if env.Arena == nil {
			return nil, fmt.Errorf("%s: arena globals without an arena map", obj.File)
		}
		base, err := env.Arena.LoadGlobals(g.Data, g.Size)
		if err != nil {
			env.Close()
			return nil, fmt.Errorf("%s: arena globals: %w", obj.File, err)
		}
		env.Symbols[elf.ArenaSection] = base
	}
	return env, nil
}

func (e *ObjectEnv) addMap(m *elf.Map) error {
	var hm *helpers.Map
	var err error
	switch {
	case m.Section != ".maps":
		// a data section: programs use the value's address directly
		hm, err = helpers.NewDataMap(m.Name, m.Data, int(m.ValueSize), strings.HasPrefix(m.Section, ".rodata"))
		if err == nil {
			e.Symbols[m.Name] = hm.ValueAddr(0)
		}
	case m.Type == ebpf.Array || m.Type == ebpf.Hash || m.Type == ebpf.PerCPUArray || m.Type == ebpf.PerCPUHash:
		// Per-cpu maps have one value per key: programs in the vm see
		// one CPU (as a test run in the kernel does).
		typ := helpers.MapArray
		if m.Type == ebpf.Hash || m.Type == ebpf.PerCPUHash {
			typ = helpers.MapHash
		}
		hm, err = helpers.NewMap(m.Name, typ, m.KeySize, m.ValueSize, m.MaxEntries)
		if err == nil {
			e.Symbols[m.Name] = hm.Addr()
		}
	default:
		return fmt.Errorf("map %s: type %v is not supported in the vm", m.Name, m.Type)
	}
	if err != nil {
		return err
	}
	e.Maps[hm.Addr()] = hm
	return nil
}

// LoadOptions returns load options for a program of the object.
func (e *ObjectEnv) LoadOptions(base *LoadOptions) *LoadOptions {
	var o LoadOptions
	if base != nil {
		o = *base
	}
	o.Arena = e.Arena
	o.Maps = e.Maps
	pc := pipeline.Context{}
	if o.Context != nil {
		pc = *o.Context
	}
	syms := map[string]uint64{}
	for k, v := range pc.Symbols {
		syms[k] = v
	}
	for k, v := range e.Symbols {
		syms[k] = v
	}
	pc.Symbols = syms
	o.Context = &pc
	return &o
}

// Close frees the arena.
func (e *ObjectEnv) Close() error {
	if e.Arena != nil {
		return e.Arena.Close()
	}
	return nil
}

// RunOnce loads p, runs it once with rc and frees it: the library side of
// `bpfc run`.
func RunOnce(ctx context.Context, p *ir.Program, lo *LoadOptions, rc *RunConfig) (uint64, error) {
	prog, err := Load(p, lo)
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	if rc == nil {
		rc = &RunConfig{}
	}
	return prog.RunConfig(ctx, rc)
}
