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

// PipelineFor is DefaultPipeline with the settings the input's program type
// implies: the context is plain memory for syscall programs, and for raw
// and assembly inputs, which have no program type (the conformance suite's
// convention: r1 points to the test's memory).
func PipelineFor(in *Input, fromXlated bool) *pipeline.Pipeline {
	if fromXlated {
		return passes.JIT()
	}
	var o passes.Options
	if in.ElfProg == nil || in.ElfProg.Type == ebpf.Syscall {
		o.CtxIsMemory = true
	}
	return passes.Default(o)
}
