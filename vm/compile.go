package vm

import (
	"fmt"

	"go.uber.org/zap"
	"golang.org/x/sys/cpu"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

// LoadOptions configure Load.
type LoadOptions struct {
	Options
	// Pipeline runs before the backend; nil uses DefaultPipeline. Load
	// runs the vm-helpers pass before it.
	Pipeline *pipeline.Pipeline
	// Context is the pipeline context (logger, symbols, ...); nil for a
	// default one. Its arena bases are overwritten from Arena.
	Context *pipeline.Context
	// Target is the backend target; nil uses amd64.Host(). CallBase,
	// YieldCheck/YieldAddr and the arena bases are set by Load.
	Target *amd64.Target
	// NoYieldCheck leaves out the budget check before backward jumps: the
	// program then cannot be stopped by its context or budget and holds up
	// the garbage collector while it loops. For programs known to be short
	// (the check costs about one store-forwarded memory decrement per
	// back-edge).
	NoYieldCheck bool
	// Xlated: the program is a kernel xlated dump (or was written with the
	// kernel-internal forms: PROBE_MEM32, BPF_REG_AX, ...); it is validated
	// as such and the pipeline runs with FromXlated.
	Xlated bool
}

// DefaultPipeline returns the passes Load runs before the backend (after
// vm-helpers, which Load puts first): passes.JIT() for an xlated program,
// else passes.Default with the context treated as plain memory (the vm
// passes r1 as a pointer to the run's memory).
func DefaultPipeline(xlated bool) *pipeline.Pipeline {
	if xlated {
		return passes.JIT()
	}
	return passes.Default(passes.Options{CtxIsMemory: true})
}

// FallbackPipeline is the vm's own minimal pipeline: vm-fixups (division
// guards, cmpxchg32 zext) and vm-frame (conservative frame). It runs
// programs correctly without the passes package's analyses but does not
// aim at the kernel's exact code.
func FallbackPipeline() *pipeline.Pipeline {
	return pipeline.New(FixupsPass{Div: true, CmpXchg: true}, FramePass{})
}

// hostTarget is amd64.Host() without the /proc/kallsyms read (about 80 ms,
// and its addresses are replaced by the vm's anyway). TestHostTarget checks
// it equals amd64.Host() in every field that matters to the vm (the
// tail-call offsets do not: the vm rejects tail calls).
func hostTarget() amd64.Target {
	return amd64.Target{
		Name:           "host",
		BMI2:           cpu.X86.HasBMI2,
		NopMax:         8,
		PseudoFuncAddr: 0x00007f0000000000,
		VsyscallAddr:   0xffffffffff600000,
		TaskSizeMax:    (1 << 47) - 4096,
		PageSize:       4096,
		MaxTailCallCnt: 33,
	}
}

// Load compiles p (a copy; p is not modified) with the kernel's code shapes
// for this process, places it in the code region and returns it ready to
// run.
func Load(p *ir.Program, opts *LoadOptions) (*Program, error) {
	var o LoadOptions
	if opts != nil {
		o = *opts
	}
	if p == nil || len(p.Insns) == 0 {
		return nil, &ir.Error{Index: -1, Reason: "program is empty"}
	}
	if err := ir.Validate(p, ir.DecodeOptions{Xlated: o.Xlated}); err != nil {
		return nil, err
	}
	base, err := CallBase()
	if err != nil {
		return nil, err
	}
	yield, _ := YieldAddr()
	q := p.Clone()
	if len(q.Aux) != len(q.Insns) {
		q = ir.NewProgram(p.Name, append([]ir.Instruction(nil), p.Insns...))
	}
	src := o.Pipeline
	if src == nil {
		src = DefaultPipeline(o.Xlated)
	}
	// vm-helpers first, then the given passes (the caller's pipeline is
	// not modified).
	hp := &HelpersPass{}
	pl := pipeline.New(hp)
	pl.DumpAfter = src.DumpAfter
	pl.Dumper = src.Dumper
	ps, enabled := src.Passes()
	for i, x := range ps {
		pl.Append(x)
		if !enabled[i] {
			pl.SetEnabled(x.Name(), false)
		}
	}
	pctx := pipeline.Context{}
	if o.Context != nil {
		pctx = *o.Context
	}
	if pctx.Logger == nil {
		pctx.Logger = zap.NewNop()
	}
	if o.Xlated {
		pctx.FromXlated = true
	}
	if o.Arena != nil {
		pctx.KernVMStart, pctx.UserVMStart = o.Arena.KernVMStart(), o.Arena.UserVMStart()
	}
	if _, err := pl.Run(q, &pctx); err != nil {
		return nil, err
	}
	if q.UsesArena && o.Arena == nil {
		return nil, &ir.Error{Index: -1, Reason: "program uses an arena; LoadOptions.Arena is nil"}
	}
	t := hostTarget()
	if o.Target != nil {
		t = *o.Target
	}
	t.CallBase = base
	t.YieldCheck, t.YieldAddr = !o.NoYieldCheck, yield
	t.IndirectThunkRCX, t.ReturnThunk = 0, 0
	if o.Arena != nil {
		t.KernVMStart, t.UserVMStart = o.Arena.KernVMStart(), o.Arena.UserVMStart()
	}
	l, err := amd64.NewLayout(q, t)
	if err != nil {
		return nil, err
	}
	// Kfunc slots.
	hs := o.Helpers
	if hs == nil {
		hs = helpers.Kernel()
		o.Helpers = hs
	}
	for _, h := range hp.Helpers {
		if hs.Func(h.ID) == nil {
			name, _ := ir.HelperName(h.ID)
			if name != "" {
				name = " (" + name + ")"
			}
			return nil, &ir.Error{Index: h.Index, Reason: fmt.Sprintf("call of helper %d%s: not in the helper registry", h.ID, name)}
		}
	}
	o.Kfuncs = nil
	for _, k := range hp.Kfuncs {
		h, err := hs.ResolveKfunc(k.Name, k.BTFID)
		if err != nil {
			return nil, &ir.Error{Index: k.Index, Reason: err.Error()}
		}
		o.Kfuncs = append(o.Kfuncs, h)
	}
	if o.Name == "" {
		o.Name = p.Name
	}
	// All functions in one allocation, each at a 16-byte boundary.
	n := l.NumFuncs()
	offs := make([]int, n)
	size := 0
	for k := 0; k < n; k++ {
		offs[k] = size
		size += (l.Size(k) + 15) &^ 15
	}
	var funcs []*amd64.Func
	prog, err := LoadWriter(size, func(rw []byte, exec uint64) (uint64, *extable.Table, error) {
		for i := range rw {
			rw[i] = 0xcc
		}
		addrs := make([]uint64, n)
		for k := range addrs {
			addrs[k] = exec + uint64(offs[k])
		}
		var all extable.Table
		for k := 0; k < n; k++ {
			f, err := l.Write(k, rw[offs[k]:offs[k]+l.Size(k)], addrs[k], addrs)
			if err != nil {
				return 0, nil, err
			}
			funcs = append(funcs, f)
		}
		// One table for the vm (entries re-based to a common base).
		entries, base := mergeExtables(funcs)
		all.Base, all.Entries = base, entries
		if len(entries) == 0 {
			return addrs[0], nil, nil
		}
		return addrs[0], &all, nil
	}, &o.Options)
	if err != nil {
		return nil, err
	}
	prog.image = funcs
	return prog, nil
}

// mergeExtables expresses every function's entries relative to one base
// (the first function's table), so one extable.Table covers the program.
func mergeExtables(funcs []*amd64.Func) ([]extable.Entry, uint64) {
	var out []extable.Entry
	var base uint64
	first := true
	for _, f := range funcs {
		t := f.Table()
		for k, e := range t.Entries {
			pc := t.InsnAddr(k)
			if first {
				base = t.Base
				first = false
			}
			e.Insn = int32(int64(pc) - int64(base+uint64(len(out))*extable.EntrySize))
			out = append(out, e)
		}
	}
	return out, base
}

// Image returns the compiled functions (code aliases the read-write view;
// do not modify).
func (p *Program) Image() []*amd64.Func { return p.image }

// String describes the program.
func (p *Program) String() string {
	return fmt.Sprintf("vm program %q at %#x (%d bytes)", p.name, p.execLo, p.size)
}
