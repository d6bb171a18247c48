package passes

import (
	"github.com/cilium/ebpf"

	irelf "github.com/bpfc/bpfc/ir/elf"
	"github.com/bpfc/bpfc/pipeline"
)

func init() {
	pipeline.Default.Register("zext-mark", func() pipeline.Pass { return ZextMark{} })
	pipeline.Default.Register("arena", func() pipeline.Pass { return Arena{} })
	pipeline.Default.Register("fixups", func() pipeline.Pass { return Fixups{} })
	pipeline.Default.Register("zext", func() pipeline.Pass { return Zext{} })
	pipeline.Default.Register("tailcalls", func() pipeline.Pass { return TailCalls{} })
}

// Order is the verifier's order of the passes for an original program.
var Order = []string{"zext-mark", "stackdepth", "arena", "fixups", "zext", "regusage"}

// JITOrder is the order for the kernel's xlated program.
var JITOrder = []string{"arena", "tailcalls", "stackdepth", "regusage"}

func build(names []string, opts Options) *pipeline.Pipeline {
	pl := &pipeline.Pipeline{}
	for _, n := range names {
		switch n {
		case "fixups":
			pl.Append(Fixups{Options: opts})
			continue
		case "tailcalls":
			pl.Append(TailCalls{Options: opts})
			continue
		}
		p, err := pipeline.Default.New(n)
		if err != nil {
			// stackdepth and regusage come from the backend's files of
			// this package; a build without them still runs the rest.
			continue
		}
		pl.Append(p)
	}
	return pl
}

// Default returns the pipeline for compiling a program as loaded from an
// object file or raw bytecode: zext-mark, stackdepth, arena, fixups, zext,
// regusage. Addresses (maps, kfuncs, helpers, __bpf_call_base) and the
// ForceZext setting come from the pipeline.Context the caller runs it with.
func Default(opts Options) *pipeline.Pipeline { return build(Order, opts) }

// JIT returns the pipeline for a program the kernel already verified (its
// xlated dump, run with Context.FromXlated): arena inference, tail calls
// back from their dumped form, stackdepth, regusage, which is all the JIT
// needs.
func JIT() *pipeline.Pipeline { return build(JITOrder, Options{}) }

// JITWith is JIT with options (prog array sizes for direct tail calls).
func JITWith(opts Options) *pipeline.Pipeline { return build(JITOrder, opts) }

// FromXlated is JIT.
func FromXlated() *pipeline.Pipeline { return JIT() }

// OptionsFor returns the options for a program type: CtxIsMemory for the
// types whose context the verifier passes through unchanged (syscall,
// kprobe, tracepoint and raw tracepoint programs: no convert_ctx_access);
// for the others context accesses are an error (their field conversions
// are the kernel's).
func OptionsFor(t ebpf.ProgramType) Options {
	switch t {
	case ebpf.Syscall, ebpf.Kprobe, ebpf.TracePoint, ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		return Options{CtxIsMemory: true}
	}
	return Options{}
}

// OptionsForObject returns the options for one program of an object file:
// OptionsFor its type, and the object's maps (for map helpers and tail
// calls).
func OptionsForObject(obj *irelf.Object, prog *irelf.Program) Options {
	o := OptionsFor(prog.Type)
	o.Maps = map[string]MapInfo{}
	for _, m := range obj.Maps {
		o.Maps[m.Name] = MapInfo{Type: uint32(m.Type), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries, Flags: m.Flags}
	}
	return o
}

// KernelSymbols lists the kernel functions and variables (besides maps,
// kfuncs and helpers) whose addresses Context.Symbols may need, by the
// names the kernel gives them in /proc/kallsyms: __bpf_call_base, the
// timed may_goto helper, and the map types' functions the map helpers are
// sent to. cpu_number and jiffies (inlined helpers) are not in kallsyms;
// a kernel's xlated dump shows them.
var KernelSymbols = []string{CallBaseSymbol, MayGotoSymbol,
	"array_map_lookup_elem", "array_map_update_elem", "array_map_delete_elem",
	"htab_map_lookup_elem", "htab_map_update_elem", "htab_map_delete_elem", "__htab_map_lookup_elem",
	"percpu_array_map_lookup_elem", "htab_percpu_map_lookup_elem", "htab_percpu_map_update_elem",
	"htab_lru_map_lookup_elem", "htab_lru_map_update_elem", "htab_lru_map_delete_elem"}
