package vm

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

// HelpersPass ("vm-helpers") points every call that leaves the program at a
// stub in the vm's code region, keeping the kernel's code shape (`call
// rel32` to CallBase + imm):
//
//   - a helper call `call N` gets imm = HelperImm(N), the stub that exits to
//     Go with "helper N";
//   - callx rX (an indirect call of the helper whose id is in rX, as ubpf and
//     the conformance suite define it) becomes a plain helper call of the
//     "callx rX" stub; Go reads the id from the saved rX. The kernel's JIT has
//     no callx, so the backend never sees one;
//   - a kfunc call gets the next kfunc slot's stub; Kfuncs records, per slot,
//     the name (Aux.Symbol) and BTF id, which Load resolves in the registry.
//
// Bpf-to-bpf calls are left alone: they run natively. Tail calls are an
// error. Load runs it first, before the verifier's passes: every stub imm
// is above every helper id, so those passes treat the calls as calls of
// helpers they do not know (and no kernel-only helper rewrite applies: in
// the vm every helper is a Go function of the registry).
type HelpersPass struct {
	// Kfuncs is filled by Run: the kfunc of each slot.
	Kfuncs []KfuncRef
	// Helpers is filled by Run: every helper call by id.
	Helpers []HelperRef
}

// HelperRef is one helper call of the program.
type HelperRef struct {
	ID    int32
	Index int // instruction
}

// KfuncRef names the kfunc of one slot.
type KfuncRef struct {
	Name  string
	BTFID int32
	Index int // instruction
}

// Name implements pipeline.Pass.
func (*HelpersPass) Name() string { return "vm-helpers" }

// Describe implements pipeline.Describer.
func (*HelpersPass) Describe() string {
	return "vm only: helper, callx and kfunc calls go to the vm's exit stubs (call CallBase+imm)"
}

// Run implements pipeline.Pass.
func (hp *HelpersPass) Run(p *ir.Program, ctx *pipeline.Context) error {
	hp.Kfuncs, hp.Helpers = nil, nil
	slots := map[string]int{}
	base, err := CallBase()
	if err != nil {
		return err
	}
	var resolved []int // rewritten helper/kfunc calls
	mayGoto := false
	for i := 0; i < len(p.Insns); i++ {
		ins := &p.Insns[i]
		switch {
		case ins.Op == ir.OpMayGoto:
			mayGoto = true
		case ins.IsLdImm64():
			i++
		case ins.IsCallX():
			r := int(ins.Dst)
			if r == 0 {
				r = int(ins.Imm)
			}
			if r < 0 || r > 10 {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("callx through invalid register r%d", r)}
			}
			*ins = ir.Instruction{Op: ir.OpCall, Src: ir.CallHelper, Imm: CallXImm(r)}
			resolved = append(resolved, i)
		case ins.IsTailCall():
			return &ir.Error{Index: i, Reason: "tail calls are not supported in the vm"}
		case ins.IsHelperCall():
			imm, err := HelperImm(ins.Imm)
			if err != nil {
				return &ir.Error{Index: i, Reason: err.Error()}
			}
			hp.Helpers = append(hp.Helpers, HelperRef{ID: ins.Imm, Index: i})
			ins.Imm = imm
			resolved = append(resolved, i)
		case ins.IsKfuncCall():
			name := ""
			if i < len(p.Aux) {
				name = p.Aux[i].Symbol
			}
			key := fmt.Sprintf("%s/%d/%d", name, ins.Imm, ins.Off)
			k, ok := slots[key]
			if !ok {
				k = len(hp.Kfuncs)
				slots[key] = k
				hp.Kfuncs = append(hp.Kfuncs, KfuncRef{Name: name, BTFID: ins.Imm, Index: i})
			}
			imm, err := KfuncImm(k)
			if err != nil {
				return &ir.Error{Index: i, Reason: err.Error()}
			}
			ins.Imm = imm // stays a kfunc call: passes may look at its symbol
			resolved = append(resolved, i)
		}
	}
	if mayGoto && ctx != nil {
		// The timed may_goto expansion (the fixups pass) calls
		// arch_bpf_timed_may_goto relative to __bpf_call_base: give it the
		// vm's stub, and give the calls already pointed at stubs their
		// own addresses so that resolving them again changes nothing.
		syms := make(map[string]uint64, len(ctx.Symbols)+len(resolved)+2)
		for k, v := range ctx.Symbols {
			syms[k] = v
		}
		syms[passes.CallBaseSymbol] = base
		syms[passes.MayGotoSymbol] = base + uint64(stubOffset(stubIndexMayGoto))
		for _, i := range resolved {
			ins := p.Insns[i]
			if ins.IsKfuncCall() {
				if i >= len(p.Aux) || p.Aux[i].Symbol == "" {
					return &ir.Error{Index: i, Reason: "kfunc call without a name in a program with may_goto"}
				}
				syms[p.Aux[i].Symbol] = base + uint64(ins.Imm)
				continue
			}
			syms[passes.HelperSymbol(ins.Imm)] = base + uint64(ins.Imm)
		}
		ctx.Symbols = syms
	}
	return nil
}

// FramePass ("vm-frame") fills Program.Funcs when no stackdepth/regusage
// passes are registered: every function gets the largest r10-relative
// access it makes as its stack depth (512 when r10 escapes into another
// register, as the kernel's verifier would have to track it), and saves
// every one of R6..R9 it mentions. The result is correct to run but not
// necessarily the kernel's exact frame.
type FramePass struct{}

// Name implements pipeline.Pass.
func (FramePass) Name() string { return "vm-frame" }

// Describe implements pipeline.Describer.
func (FramePass) Describe() string {
	return "vm fallback: conservative stack depth and callee-saved registers per function"
}

// Run implements pipeline.Pass.
func (FramePass) Run(p *ir.Program, _ *pipeline.Context) error {
	funcs, err := ir.FindFuncs(p)
	if err != nil {
		return err
	}
	for k := range funcs {
		f := &funcs[k]
		depth := int32(0)
		for i := f.Start; i < f.End; i++ {
			ins := p.Insns[i]
			for _, r := range []ir.Register{ins.Dst, ins.Src} {
				if r >= ir.R6 && r <= ir.R9 && !(ins.IsLdImm64() && r == ins.Src) && !ins.IsCall() {
					f.CalleeSaved = f.CalleeSaved.Add(r)
				}
			}
			c := ins.Class()
			switch {
			case ins.IsLdImm64():
				i++
			case c.IsLoadStore() && ins.Op != ir.OpLdImm64:
				base := ins.Dst
				if c == ir.ClassLDX {
					base = ins.Src
				}
				if base == ir.R10 && ins.Off < 0 && -int32(ins.Off) > depth {
					depth = -int32(ins.Off)
				}
				if c == ir.ClassSTX && ins.Src == ir.R10 {
					depth = 512 // the frame pointer is stored: it escapes
				}
			case (c.IsALU() || c.IsJump()) && ins.Source() == ir.SourceX && ins.Src == ir.R10:
				depth = 512 // r10 copied or compared: pointer arithmetic on the frame
			}
		}
		if depth > 512 {
			depth = 512
		}
		f.StackDepth = depth
	}
	p.Funcs = funcs
	return nil
}

func init() {
	pipeline.Default.Register("vm-helpers", func() pipeline.Pass { return &HelpersPass{} })
	pipeline.Default.Register("vm-frame", func() pipeline.Pass { return FramePass{} })
	pipeline.Default.Register("vm-fixups", func() pipeline.Pass { return FixupsPass{Div: true, CmpXchg: true} })
}
