package passes

import (
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// ZextMark computes the verifier's zext_dst marks: for every 32-bit
// definition (a definition the verifier gives a subreg_def), whether a later
// 64-bit read (is_reg64) can see its upper half. It is a backward liveness
// analysis of "upper half read" over each function's CFG, made
// interprocedural the way the verifier's state copying makes it: a static
// function's arguments carry their callers' definitions in (the callee's
// 64-bit reads mark the caller's defs) and its R0 carries its definition
// out to the callers; a global function (and the main program) is checked on
// its own: its arguments are fresh and its R0 is read as 64 bits at exit.
//
// Guarantees to the next pass: Aux.ZextDst is set on exactly the 32-bit
// definitions whose upper half is read, and cleared elsewhere. Run it on the
// program as loaded (before the arena and fixups passes rewrite it), as the
// verifier computes the marks while checking the original program; the
// passes that insert instructions later mark them conservatively, as the
// kernel's adjust_insn_aux_data does.
//
// Differences from the kernel, all conservative (more marks, never fewer):
// the analysis follows every CFG path, including ones the verifier proves
// infeasible or prunes (the kernel's marks depend on its exploration order:
// a path pruned at a state equal to one seen before does not mark the
// definitions it carries), and a call of a helper missing from the
// argument table counts as a 64-bit read of all of R1..R5 (the verifier
// reads exactly the arguments of the helper's prototype).
type ZextMark struct{}

func (ZextMark) Name() string { return "zext-mark" }

func (ZextMark) Describe() string {
	return "mark 32-bit definitions whose upper half a later 64-bit read sees (zext_dst)"
}

func (ZextMark) Run(p *ir.Program, ctx *pipeline.Context) error {
	live, err := upperLiveness(p)
	if err != nil {
		return err
	}
	for i := range p.Insns {
		ins := p.Insns[i]
		var r ir.Register
		ok := false
		switch def32Table[ins.Op] {
		case d32Dst:
			r, ok = ins.Dst, true
		case d32R0:
			r, ok = ir.R0, true
		case d32Slow:
			r, ok = def32(ins)
		}
		p.Aux[i].ZextDst = ok && live[i].Has(r)
		if p.Insns[i].IsLdImm64() && i+1 < len(p.Aux) {
			p.Aux[i+1].ZextDst = false
		}
	}
	return nil
}

// Zext inserts the kernel's explicit zero-extension BPF_ZEXT_REG (mov32 rX,
// rX with imm 1) after each 32-bit definition marked ZextDst when the target
// asks for it (Context.ForceZext: targets without implicit zero-extension,
// the kernel's bpf_jit_needs_zext) and, on every target, after a 32-bit
// cmpxchg (also in its PROBE_ATOMIC form), whose R0 is left unchanged in its
// upper half on success. Kernel functions zero-extend their results
// themselves.
//
// Guarantees to the next pass: every ZextDst definition that needs it is
// followed by a ZEXT_REG (the inserted instruction has OrigIndex -1 and,
// being a 32-bit definition itself, ZextDst set, as in the kernel). Needs
// the marks of ZextMark. In FromXlated mode it does nothing: the kernel
// inserted them already.
type Zext struct{}

func (Zext) Name() string { return "zext" }

func (Zext) Describe() string {
	return "insert explicit zero-extensions after marked 32-bit defs (all with ForceZext; always after cmpxchg32)"
}

func (Zext) Run(p *ir.Program, ctx *pipeline.Context) error {
	if ctx != nil && ctx.FromXlated {
		return nil
	}
	force := ctx != nil && ctx.ForceZext
	// Collect first, then patch from the end so indices stay valid.
	var at []int
	for i := 0; i < len(p.Insns); i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if !p.Aux[i].ZextDst {
			continue
		}
		r, ok := def32(ins)
		if !ok || ins.IsKfuncCall() || (ins.IsZextReg() && p.Aux[i].OrigIndex < 0) {
			continue // an inserted zero-extension needs none itself
		}
		if force || isCmpxchg(ins) {
			// Already followed by the kernel's zext (a re-run): keep one.
			if i+1 < len(p.Insns) && p.Insns[i+1].IsZextReg() && p.Insns[i+1].Dst == r && p.Aux[i+1].OrigIndex < 0 {
				continue
			}
			at = append(at, i)
		}
	}
	edits := make([]edit, len(at))
	for k, i := range at {
		r, _ := def32(p.Insns[i])
		za := ir.Aux{OrigIndex: -1, ZextDst: true, Line: p.Aux[i].Line}
		edits[k] = edit{At: i, Insns: []ir.Instruction{p.Insns[i], zextReg(r)}, Aux: []ir.Aux{p.Aux[i], za}}
	}
	if _, err := funcsOf(p); err != nil {
		return err
	}
	return applyEdits(p, edits)
}

// zextReg is BPF_ZEXT_REG(r): ALU MOV X, dst = src = r, imm 1.
func zextReg(r ir.Register) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassALU) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: r, Src: r, Imm: 1}
}

func isCmpxchg(ins ir.Instruction) bool {
	return ins.IsAtomic() && ins.Imm == ir.AtomicCmpXchg
}

// def32Table says, per opcode, what def32 returns when that depends on the
// opcode alone: never a definition, the destination, R0, or d32Slow (ask
// def32: byte swaps, casts, atomics). TestDef32Table checks it against
// def32 over every opcode.
var def32Table = func() (t [256]uint8) {
	for op := range 256 {
		ins := ir.Instruction{Op: uint8(op), Dst: ir.R1, Src: ir.R2}
		switch c := ins.Class(); {
		case c == ir.ClassALU && ins.ALUOp() == ir.ALUEnd,
			c == ir.ClassALU64 && (ins.ALUOp() == ir.ALUEnd || ins.ALUOp() == ir.ALUMov && ins.Source() == ir.SourceX),
			c == ir.ClassSTX && ins.Mode() != ir.ModeMEM:
			t[op] = d32Slow
		case c == ir.ClassALU:
			t[op] = d32Dst
		case c == ir.ClassLDX || c == ir.ClassLD:
			if r, ok := def32(ins); ok && r == ir.R0 {
				t[op] = d32R0
			} else if ok {
				t[op] = d32Dst
			}
		}
	}
	return t
}()

const (
	d32None = iota
	d32Dst
	d32R0
	d32Slow
)

// def32 returns the register an instruction defines as a 32-bit subregister
// (the verifier sets subreg_def for it: is_reg64(DST_OP) is false), if any.
func def32(ins ir.Instruction) (ir.Register, bool) {
	switch ins.Class() {
	case ir.ClassALU:
		if ins.ALUOp() == ir.ALUEnd && ins.Imm == 64 {
			return 0, false
		}
		return ins.Dst, true
	case ir.ClassALU64:
		if ins.ALUOp() == ir.ALUEnd && (ins.Imm == 16 || ins.Imm == 32) {
			return ins.Dst, true
		}
		if ins.IsCastToKernel() {
			return ins.Dst, true // the verifier gives the arena pointer a subreg_def
		}
		return 0, false
	case ir.ClassLDX:
		switch ins.Mode() {
		case ir.ModeMEM, ir.ModeProbeMem, ir.ModeProbeMem32:
			return ins.Dst, ins.Size() != ir.SizeDW
		}
		return 0, false
	case ir.ClassSTX:
		if ins.IsAtomic() && ins.Size() != ir.SizeDW {
			switch {
			case ins.Imm == ir.AtomicCmpXchg:
				return ir.R0, true
			case ins.Imm == ir.AtomicLoadAcq:
				return ins.Dst, true
			case ins.Imm&ir.AtomicFetch != 0 && ins.Imm != ir.AtomicStoreRel:
				return ins.Src, true
			}
		}
		return 0, false
	case ir.ClassLD:
		if ins.Mode() == ir.ModeABS || ins.Mode() == ir.ModeIND {
			return ir.R0, true
		}
	}
	return 0, false
}

// defs returns every register an instruction writes (for liveness kills).
func defs(ins ir.Instruction) ir.RegSet {
	switch ins.Class() {
	case ir.ClassALU, ir.ClassALU64, ir.ClassLDX:
		return regs(ins.Dst)
	case ir.ClassLD:
		if ins.IsLdImm64() {
			return regs(ins.Dst)
		}
		return callerSaved // LD_ABS/IND: R0, and R1-R5 are clobbered
	case ir.ClassSTX:
		if ins.IsAtomic() {
			switch {
			case ins.Imm == ir.AtomicCmpXchg:
				return regs(ir.R0)
			case ins.Imm == ir.AtomicLoadAcq:
				return regs(ins.Dst)
			case ins.Imm&ir.AtomicFetch != 0 && ins.Imm != ir.AtomicStoreRel:
				return regs(ins.Src)
			}
		}
	case ir.ClassJMP:
		if ins.IsCall() || ins.IsCallX() || ins.Op == ir.OpTailCall {
			return callerSaved
		}
	}
	return 0
}

// uses64 returns the registers an instruction reads as 64-bit values
// (is_reg64(SRC_OP)), except for calls and exits, which the liveness
// handles with the callee's and caller's summaries.
func uses64(ins ir.Instruction) ir.RegSet {
	switch ins.Class() {
	case ir.ClassALU64:
		if ins.ALUOp() == ir.ALUEnd {
			if ins.Imm == 64 {
				return regs(ins.Dst)
			}
			return 0
		}
		var s ir.RegSet
		if ins.Source() == ir.SourceX && ins.ALUOp() != ir.ALUNeg {
			s = s.Add(ins.Src)
		}
		if ins.ALUOp() != ir.ALUMov {
			s = s.Add(ins.Dst)
		}
		return s
	case ir.ClassALU:
		if ins.ALUOp() == ir.ALUEnd && ins.Imm == 64 {
			return regs(ins.Dst)
		}
		return 0
	case ir.ClassJMP:
		switch {
		case ins.IsCallX():
			return regs(ins.Dst)
		case ins.IsJumpWithOffset() && ins.JumpOp().IsConditional():
			if ins.Source() == ir.SourceX {
				return regs(ins.Dst, ins.Src)
			}
			return regs(ins.Dst)
		}
		return 0
	case ir.ClassLDX:
		return regs(ins.Src)
	case ir.ClassST:
		if ins.Op == ir.OpNospec {
			return 0
		}
		return regs(ins.Dst)
	case ir.ClassSTX:
		s := regs(ins.Dst)
		dw := ins.Size() == ir.SizeDW
		if ins.IsAtomic() {
			switch ins.Imm {
			case ir.AtomicLoadAcq:
				return regs(ins.Src)
			case ir.AtomicCmpXchg:
				if dw {
					s = s.Add(ir.R0)
				}
			}
		}
		if dw {
			s = s.Add(ins.Src)
		}
		return s
	case ir.ClassLD:
		switch ins.Mode() {
		case ir.ModeABS:
			return regs(ir.R6)
		case ir.ModeIND:
			return regs(ir.R6, ins.Src)
		}
	}
	return 0
}

// upperLiveness returns, for every instruction, the registers whose upper
// half some path from after the instruction reads before redefining them.
func upperLiveness(p *ir.Program) ([]ir.RegSet, error) {
	funcs, err := funcsOf(p)
	if err != nil {
		return nil, err
	}
	n := p.Len()
	out := make([]ir.RegSet, n)
	in := make([]ir.RegSet, n)
	entry := make([]ir.RegSet, len(funcs)) // static functions: args read 64-bit
	retLive := make([]bool, len(funcs))    // static functions: R0 read after return
	callee := make(map[int]int)
	for k := range funcs {
		for i := funcs[k].Start; i < funcs[k].End; i++ {
			if p.Insns[i].IsPseudoCall() {
				c, err := calleeIndex(p, funcs, i)
				if err != nil {
					return nil, err
				}
				callee[i] = c
			}
			if p.Insns[i].IsLdImm64() {
				i++
			}
		}
	}
	// Callbacks are called by helpers: their R0 is taken as read at exit.
	cb := callbackFuncs(p, funcs)
	var buf []int
	for changed := true; changed; {
		changed = false
		for k := len(funcs) - 1; k >= 0; k-- {
			f := funcs[k]
			global := globalFunc(p, funcs, k) || cb[k]
			for again := true; again; {
				again = false
				// Without a backward edge one backward sweep reaches
				// the fixed point (every successor is final when read).
				back := false
				for i := f.End - 1; i >= f.Start; i-- {
					if i > f.Start && p.Insns[i-1].IsLdImm64() {
						continue // second slot
					}
					ins := p.Insns[i]
					var o ir.RegSet
					if !ins.Class().IsJump() {
						// Straight-line: the next slot (succs without the call).
						next := i + 1
						if ins.IsLdImm64() {
							next = i + 2
						}
						if next < f.End {
							o = in[next]
						}
					} else {
						buf, err = succs(p, i, buf[:0])
						if err != nil {
							return nil, err
						}
						for _, s := range buf {
							if s < f.End {
								o |= in[s]
								if s <= i {
									back = true
								}
							}
						}
					}
					var li ir.RegSet
					switch lf := liveTable[ins.Op]; {
					case lf&lfSlow == 0: // the common forms: never an exit or a call
						li = liveApply(o, ins, lf)
					case ins.IsExit():
						if global || retLive[k] {
							li = regs(ir.R0)
						}
					case ins.IsPseudoCall():
						c := callee[i]
						if o.Has(ir.R0) && !retLive[c] && !globalFunc(p, funcs, c) {
							retLive[c] = true
							changed = true
						}
						li = o &^ callerSaved
						if !globalFunc(p, funcs, c) {
							li |= entry[c] & argRegs
						}
					case ins.IsHelperCall() || ins.Op == ir.OpTailCall:
						li = o&^callerSaved | helperArgs(ins)
					default:
						li = liveThrough(o, ins)
					}
					if o != out[i] || li != in[i] {
						out[i], in[i] = o, li
						again = back
					}
				}
			}
			if !global && in[f.Start] != entry[k] {
				entry[k] = in[f.Start]
				changed = true
			}
		}
	}
	return out, nil
}

// helperArgCount is the number of arguments of a helper's prototype (the
// verifier reads R1..Rn as 64-bit values at the call), for the common
// helpers; others are taken as reading all five.
var helperArgCount = map[int32]int{
	1: 2, 2: 4, 3: 2, 4: 3, 5: 0, 6: 5, 7: 0, 8: 0, 12: 3, 14: 0, 15: 0, 16: 2,
	23: 2, 25: 5, 26: 4, 35: 0, 42: 0, 51: 3, 87: 3, 88: 2, 89: 2,
	112: 3, 113: 3, 114: 3, 115: 3, 130: 4, 131: 3, 132: 2, 133: 2, 158: 0,
	118: 0, 165: 5, 181: 4,
}

// helperArgs returns the registers a helper call (or a tail call) reads.
func helperArgs(ins ir.Instruction) ir.RegSet {
	if ins.Op == ir.OpTailCall {
		return tailCallArgs
	}
	n, ok := helperArgCount[ins.Imm]
	if !ok {
		return argRegs
	}
	var s ir.RegSet
	for r := ir.R1; r < ir.R1+ir.Register(n); r++ {
		s = s.Add(r)
	}
	return s
}

// liveThrough is o&^defs(ins) | uses64(ins), table-driven for the common
// forms (ALU but byte swaps, loads, plain stores, ld_imm64): a switch on
// the instruction class per instruction mispredicts on mixed code, a
// lookup by opcode and masks do not. TestLiveThrough checks it against
// defs and uses64 over every opcode.
func liveThrough(o ir.RegSet, ins ir.Instruction) ir.RegSet {
	f := liveTable[ins.Op]
	if f&lfSlow != 0 {
		return o&^defs(ins) | uses64(ins)
	}
	return liveApply(o, ins, f)
}

// liveApply is liveThrough for an opcode whose table entry is not lfSlow.
func liveApply(o ir.RegSet, ins ir.Instruction, f liveFlags) ir.RegSet {
	dst := ir.RegSet(1) << (ins.Dst & 15)
	src := ir.RegSet(1) << (ins.Src & 15)
	mask := func(bit liveFlags) ir.RegSet { return 0 - ir.RegSet(bit&1) }
	return o&^(dst&mask(f>>1)) | dst&mask(f>>2) | src&mask(f>>3)
}

type liveFlags uint8

const (
	lfSlow   liveFlags = 1 << iota // defs and uses64 decide
	lfDefDst                       // writes dst
	lfUseDst                       // reads dst as 64 bits
	lfUseSrc                       // reads src as 64 bits
)

// liveTable gives the liveness effect of each opcode.
var liveTable = func() (t [256]liveFlags) {
	for op := range t {
		ins := ir.Instruction{Op: uint8(op)}
		f := lfSlow
		switch ins.Class() {
		case ir.ClassALU64:
			if a := ins.ALUOp(); a != ir.ALUEnd {
				f = lfDefDst
				if ins.Source() == ir.SourceX && a != ir.ALUNeg {
					f |= lfUseSrc
				}
				if a != ir.ALUMov {
					f |= lfUseDst
				}
			}
		case ir.ClassALU:
			if ins.ALUOp() != ir.ALUEnd {
				f = lfDefDst
			}
		case ir.ClassLDX:
			f = lfDefDst | lfUseSrc
		case ir.ClassSTX:
			if ins.Mode() == ir.ModeMEM {
				f = lfUseDst
				if ins.Size() == ir.SizeDW {
					f |= lfUseSrc
				}
			}
		case ir.ClassLD:
			if uint8(op) == ir.OpLdImm64 {
				f = lfDefDst
			}
		}
		t[op] = f
	}
	return t
}()
