package compiler

import (
	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

// DefaultPipeline returns the pipeline Compile uses when Options.Pipeline is
// nil: for an original program passes.Default (the verifier's rewrites, then
// the JIT's analyses), for an xlated program (fromXlated) passes.JIT (only
// what the JIT needs).
func DefaultPipeline(fromXlated bool) *pipeline.Pipeline {
	if fromXlated {
		return passes.JIT()
	}
	return passes.Default(passes.Options{})
}

// PipelineFor is DefaultPipeline with the settings the input implies: the
// context is plain memory for syscall programs, and for raw and assembly
// inputs, which have no program type (the conformance suite's convention:
// r1 points to the test's memory); an object's maps are described to the
// fixups pass (passes.Options.Maps).
func PipelineFor(in *Input, fromXlated bool) *pipeline.Pipeline {
	if fromXlated {
		return passes.JIT()
	}
	var o passes.Options
	if in.ElfProg == nil || in.ElfProg.Type == ebpf.Syscall {
		o.CtxIsMemory = true
	}
	if in.Object != nil {
		// The object's maps, for the map helpers the kernel inlines or
		// sends to the map type's own functions.
		o.Maps = map[string]passes.MapInfo{}
		for _, m := range in.Object.Maps {
			o.Maps[m.Name] = passes.MapInfo{Type: uint32(m.Type), KeySize: m.KeySize, ValueSize: m.ValueSize,
				MaxEntries: m.MaxEntries, Flags: m.Flags}
		}
	}
	return passes.Default(o)
}
