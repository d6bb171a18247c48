package passes

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// Arena finds the memory accesses that go through BPF arena pointers and
// rewrites the program the way the verifier does for them
// (convert_ctx_accesses and the arena part of do_misc_fixups).
//
// It is an abstract interpretation over each function's CFG of what every
// register and every 8-byte stack slot of the function's own frame may
// hold: a scalar, a stack pointer (with its offset when known), the
// context, a map pointer or value, an arena pointer or another pointer.
// Values are seeded as the verifier seeds them: R1 is the context and R10
// the frame pointer at the main program's entry; addr_space_cast to kernel
// space (imm 1) makes an arena pointer and the cast to user space (imm
// 1<<16) a scalar; a global function's arguments tagged arg:arena
// (Aux.ArgArena) start as scalars, exactly as the verifier starts them (it
// accepts an arena pointer or a scalar there, so the function must cast;
// checked against the kernel with testdata/arena/p33); kfunc and helper results
// are scalars (arena kfuncs return user addresses that the program casts);
// the arena globals' ld_imm64 (SymArena) is a scalar too. Values move through
// register copies, pointer arithmetic, 8-byte spills and fills of the
// frame's stack slots, static (non-global) function calls (arguments in,
// R0 out) and are merged where paths join; a scalar merged with a pointer
// is that pointer (a verified program only dereferences it on the paths
// where it is one).
//
// Rewrites: a load, store or atomic whose base register may hold an arena
// pointer becomes PROBE_MEM32 / PROBE_MEM32SX / PROBE_ATOMIC with
// Aux.PtrType = PtrArena (other accesses get the pointer type found, like
// the verifier's insn_aux_data.ptr_type); addr_space_cast to kernel space
// becomes the 32-bit mov the kernel emits (ALU MOV X, off 0, imm 0); the
// cast to user space is kept for the JIT; 64-bit arithmetic whose
// destination is an arena pointer becomes its 32-bit form; and
// Program.UsesArena is set when the program touches the arena at all.
// An instruction reached with an arena pointer on one path and another
// pointer on another is an error naming the instruction, as in the kernel
// ("same insn cannot be used with different pointers"), and so is an
// and/or/xor fetch atomic on arena memory, which the x86 JIT refuses.
//
// FromXlated mode (Context.FromXlated): the input is the kernel's xlated
// program, in which the rewrites are done but PROBE_MEM32 loads and stores
// are shown as plain MEM. The pass then infers them: besides the arena
// pointers above, a value defined by a 32-bit ALU instruction (which is
// what a lowered cast to kernel space and arena pointer arithmetic became)
// is an arena pointer when it is used as a base, since no other pointer fits
// in 32 bits; PROBE_MEM32SX and PROBE_ATOMIC accesses are already explicit
// and mark their base. Only the modes (and PtrType, UsesArena) change.
//
// Guarantees to the next pass: every arena access is in its PROBE_* form
// with PtrType PtrArena, no addr_space_cast to kernel space remains, and
// UsesArena says whether the prologue must set up r12.
type Arena struct{}

func (Arena) Name() string { return "arena" }

func (Arena) Describe() string {
	return "infer arena pointers; accesses through them to PROBE_MEM32/MEM32SX/ATOMIC, cast_kern to mov32, arena ALU64 to ALU32"
}

type kind uint8

const (
	kScalar kind = 1 << iota
	kStack
	kCtx
	kMap
	kArena
	kOther
	kSub32 // FromXlated: defined by a 32-bit ALU instruction
	kBTF   // maybe a pointer to a kernel object (kfunc or BTF helper result)

	kPointers = kStack | kCtx | kMap | kArena | kOther | kBTF
)

func (k kind) String() string {
	var s []string
	for i, n := range []string{"scalar", "stack", "ctx", "map", "arena", "other", "sub32", "btf"} {
		if k&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "uninit"
	}
	return strings.Join(s, "|")
}

// aval is an abstract value: the kinds it may have, and for a stack pointer
// its offset from the frame pointer when known.
type aval struct {
	k     kind
	offOK bool
	off   int32
}

var (
	scalar = aval{k: kScalar}
	uninit = aval{}
)

func join(a, b aval) aval {
	r := aval{k: a.k | b.k}
	switch {
	case a.k&kStack != 0 && b.k&kStack != 0:
		r.off, r.offOK = a.off, a.offOK && b.offOK && a.off == b.off
	case a.k&kStack != 0:
		r.off, r.offOK = a.off, a.offOK
	case b.k&kStack != 0:
		r.off, r.offOK = b.off, b.offOK
	}
	return r
}

const stackSlots = 64 // MAX_BPF_STACK / 8

// slotVal is what one 8-byte stack slot of the frame holds.
type slotVal struct {
	slot uint8
	v    aval
}

// astate is the abstract state at a program point: the registers, and the
// stack slots that hold something other than a plain scalar (sorted by slot; a
// slot not listed holds a scalar or nothing, which no access cares about).
// The slot list is never modified in place, so states can share it.
type astate struct {
	r [ir.RAX + 1]aval
	s []slotVal
}

func (st *astate) slot(i int) aval {
	for _, sv := range st.s {
		if int(sv.slot) == i {
			return sv.v
		}
	}
	return uninit
}

// setSlot stores v in slot i (a copy of the list).
func (st *astate) setSlot(i int, v aval) {
	// Nothing to change (the common scalar spill): no copy.
	if cur := st.slot(i); cur == v || (cur == uninit && v.k&^kScalar == 0) {
		return
	}
	out := make([]slotVal, 0, len(st.s)+1)
	done := false
	for _, sv := range st.s {
		if int(sv.slot) == i {
			continue
		}
		if !done && int(sv.slot) > i {
			if v.k&^kScalar != 0 {
				out = append(out, slotVal{uint8(i), v})
			}
			done = true
		}
		out = append(out, sv)
	}
	if !done && v.k&^kScalar != 0 {
		out = append(out, slotVal{uint8(i), v})
	}
	st.s = out
}

func (s *astate) join(o *astate) bool {
	changed := false
	for i := range s.r {
		if j := join(s.r[i], o.r[i]); j != s.r[i] {
			s.r[i], changed = j, true
		}
	}
	// Merge the slot lists.
	var out []slotVal
	a, b := s.s, o.s
	differs := false
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].slot < b[0].slot):
			out = append(out, a[0])
			a = a[1:]
		case len(a) == 0 || b[0].slot < a[0].slot:
			out = append(out, b[0])
			b = b[1:]
			differs = true
		default:
			j := join(a[0].v, b[0].v)
			if j != a[0].v {
				differs = true
			}
			out = append(out, slotVal{a[0].slot, j})
			a, b = a[1:], b[1:]
		}
	}
	if differs {
		s.s = out
		changed = true
	}
	return changed
}

// arenaInfo is the analysis result: per instruction, the kinds the base
// register of a memory access may hold, and the kinds of an ALU64
// instruction's destination.
type arenaInfo struct {
	base []kind
	dst  []kind
	sc   *arenaScratch
}

// arenaScratch is the analysis' working memory, reused from program to
// program (and function to function) through arenaPool: O(1) allocations
// per program, and memory that is already mapped and in cache.
type arenaScratch struct {
	base, dst []kind
	lead      []uint8
	at        []int32
	queued    []byte
	states    []astate
}

var arenaPool = sync.Pool{New: func() any { return new(arenaScratch) }}

// release gives the info's memory back to arenaPool; info is not used after.
func (info *arenaInfo) release() {
	if sc := info.sc; sc != nil {
		sc.base, sc.dst = info.base, info.dst
		info.sc, info.base, info.dst = nil, nil, nil
		arenaPool.Put(sc)
	}
}

// zeroed returns s with length n, all zero, reusing its array when it is
// large enough.
func zeroed[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func (Arena) Run(p *ir.Program, ctx *pipeline.Context) error {
	xl := ctx != nil && ctx.FromXlated
	info, err := analyzeArena(p, xl)
	if err != nil {
		return err
	}
	defer info.release()
	uses := false
	for i := 0; i < len(p.Insns); i++ {
		ins := &p.Insns[i]
		if ins.IsLdImm64() {
			if p.Aux[i].SymbolKind == ir.SymArena {
				uses = true
			}
			i++
			continue
		}
		c := ins.Class()
		switch {
		case ins.IsAddrSpaceCast():
			uses = true
			if ins.IsCastToKernel() {
				*ins = ir.Instruction{Op: uint8(ir.ClassALU) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ins.Dst, Src: ins.Src}
			}
		case !xl && c == ir.ClassALU64 && ins.ALUOp() != ir.ALUMov && ins.ALUOp() != ir.ALUEnd && ins.ALUOp() != ir.ALUNeg && info.dst[i]&kArena != 0:
			if k := info.dst[i] & kPointers &^ kArena; k != 0 {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("arithmetic on a register that is an arena pointer on one path and %v on another", k)}
			}
			ins.Op = uint8(ir.ClassALU) | ins.Op&0xf8
			uses = true
		case c == ir.ClassLDX || c == ir.ClassST || c == ir.ClassSTX:
			if ins.Op == ir.OpNospec {
				continue
			}
			k := info.base[i]
			mode := ins.Mode()
			explicit := mode == ir.ModeProbeMem32 || (c == ir.ClassLDX && mode == ir.ModeProbeMem32SX) || (c == ir.ClassSTX && mode == ir.ModeProbeAtomic)
			// FromXlated: a 32-bit result used as a base is an arena
			// pointer, unless another pointer can reach the access too
			// (a NULL-or-pointer merge): the kernel allows one kind per
			// instruction, so then it is that one.
			arena := k&kArena != 0 || (xl && k&kSub32 != 0 && k&kPointers == 0) || explicit
			if !arena {
				p.Aux[i].PtrType = ptrTypeOf(k)
				continue
			}
			if other := k & kPointers &^ kArena; other != 0 {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("same instruction used with an arena pointer and %v (the kernel: same insn cannot be used with different pointers)", other)}
			}
			uses = true
			p.Aux[i].PtrType = ir.PtrArena
			if err := toProbe(i, ins); err != nil {
				return err
			}
		}
	}
	p.UsesArena = p.UsesArena || uses
	return nil
}

// toProbe rewrites an arena access into its PROBE_* form.
func toProbe(i int, ins *ir.Instruction) error {
	c, mode := ins.Class(), ins.Mode()
	set := func(m ir.Mode) { ins.Op = ins.Op&^0xe0 | uint8(m) }
	switch {
	case c == ir.ClassLDX && (mode == ir.ModeMEM || mode == ir.ModeProbeMem32):
		set(ir.ModeProbeMem32)
	case c == ir.ClassLDX && (mode == ir.ModeMEMSX || mode == ir.ModeProbeMem32SX):
		set(ir.ModeProbeMem32SX)
	case (c == ir.ClassST || c == ir.ClassSTX) && (mode == ir.ModeMEM || mode == ir.ModeProbeMem32):
		set(ir.ModeProbeMem32)
	case c == ir.ClassSTX && (mode == ir.ModeATOMIC || mode == ir.ModeProbeAtomic):
		switch ins.Imm {
		case ir.AtomicAnd | ir.AtomicFetch, ir.AtomicOr | ir.AtomicFetch, ir.AtomicXor | ir.AtomicFetch:
			return &ir.Error{Index: i, Reason: "fetch-and/or/xor atomic on arena memory: the x86 JIT does not support it"}
		}
		if ins.Size() != ir.SizeW && ins.Size() != ir.SizeDW && ins.Imm != ir.AtomicLoadAcq && ins.Imm != ir.AtomicStoreRel {
			return &ir.Error{Index: i, Reason: "atomic of this size on arena memory is not supported"}
		}
		set(ir.ModeProbeAtomic)
	default:
		return &ir.Error{Index: i, Reason: fmt.Sprintf("%v access in mode %#x through an arena pointer is not supported", c, uint8(mode))}
	}
	return nil
}

func ptrTypeOf(k kind) ir.PtrType {
	switch {
	case k&kBTF != 0:
		return ir.PtrBTF
	case k&kStack != 0 && k&kPointers == kStack:
		return ir.PtrStack
	case k&kCtx != 0 && k&kPointers == kCtx:
		return ir.PtrCtx
	case k&kMap != 0 && k&kPointers == kMap:
		return ir.PtrMapValue
	case k&kPointers != 0:
		return ir.PtrMem
	}
	return ir.PtrUnknown
}

// analyzeArena runs the abstract interpretation over all functions until the
// function summaries (static functions' argument and return values) are
// stable.
func analyzeArena(p *ir.Program, xl bool) (*arenaInfo, error) {
	return analyzeArenaWith(p, xl, nil)
}

// analyzeArenaWith is analyzeArena with another per-function driver than
// analyzer.function when drive is not nil (tests: the former one).
func analyzeArenaWith(p *ir.Program, xl bool, drive func(*analyzer, int) (bool, error)) (*arenaInfo, error) {
	funcs, err := funcsOf(p)
	if err != nil {
		return nil, err
	}
	n := p.Len()
	sc := arenaPool.Get().(*arenaScratch)
	info := &arenaInfo{base: zeroed(sc.base, n), dst: zeroed(sc.dst, n), sc: sc}
	entry := make([]astate, len(funcs))
	ret := make([]aval, len(funcs))
	reached := make([]bool, len(funcs))
	for k := range funcs {
		st := &entry[k]
		st.r[ir.R10] = aval{k: kStack, offOK: true}
		if globalFunc(p, funcs, k) {
			reached[k] = true
			if k == 0 {
				st.r[ir.R1] = aval{k: kCtx}
			} else {
				// An arg:arena argument (Aux.ArgArena) starts as an
				// unknown scalar, as the verifier's do_check_common marks
				// it ("caller can pass either PTR_TO_ARENA or SCALAR"):
				// only a cast makes it an arena pointer, and arithmetic
				// on it before the cast stays 64-bit. Other arguments
				// are scalars or memory the BTF describes.
				aa := p.Aux[funcs[k].Start].ArgArena
				for r := ir.R1; r <= ir.R5; r++ {
					if aa.Has(r) {
						st.r[r] = scalar
					} else {
						st.r[r] = aval{k: kScalar | kOther}
					}
				}
			}
		}
	}
	// Callbacks (functions whose address is taken) are entered by helpers
	// with scalars or pointers the analysis does not model.
	for k, isCB := range callbackFuncs(p, funcs) {
		if isCB && !reached[k] {
			reached[k] = true
			st := &entry[k]
			for r := ir.R1; r <= ir.R5; r++ {
				st.r[r] = aval{k: kScalar | kOther}
			}
		}
	}
	a := &analyzer{p: p, funcs: funcs, info: info, entry: entry, ret: ret, reached: reached, xl: xl, drive: drive, sc: sc}
	for changed := true; changed; {
		changed = false
		for k := range funcs {
			if !a.reached[k] {
				continue
			}
			c, err := a.function(k)
			if err != nil {
				info.release()
				return nil, err
			}
			changed = changed || c
		}
	}
	return info, nil
}

type analyzer struct {
	p       *ir.Program
	funcs   []ir.Func
	info    *arenaInfo
	entry   []astate
	ret     []aval
	reached []bool
	xl      bool
	drive   func(*analyzer, int) (bool, error)
	sc      *arenaScratch
}

// function analyses function k from its entry state; it reports whether a
// summary of another function changed.
func (a *analyzer) function(k int) (bool, error) {
	if a.drive != nil {
		return a.drive(a, k)
	}
	p, f := a.p, a.funcs[k]
	// Block leaders, indexed from the function's start: lead[r] > 0 for a
	// leader, counting the jump edges (a conditional jump's fall-through
	// included) into it, up to 2. fwd: no edge goes backwards.
	lead := zeroed(a.sc.lead, f.Len()+1)
	a.sc.lead = lead
	lead[0] = 2
	fwd := true
	var buf []int
	var err error
	for i := f.Start; i < f.End; i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if ins.IsJumpWithOffset() || ins.IsExit() {
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return false, err
			}
			for _, s := range buf {
				if s < f.Start || s >= f.End {
					return false, &ir.Error{Index: i, Reason: "control flow leaves the function"}
				}
				if s <= i {
					fwd = false
				}
				if r := s - f.Start; lead[r] < 2 {
					lead[r]++
				}
			}
			if i+1 < f.End && lead[i+1-f.Start] == 0 {
				lead[i+1-f.Start] = 1
			}
		}
	}
	// The state at each leader, by index into states plus one (0: not
	// reached yet). In a function without back edges a leader whose only
	// predecessor is the conditional jump before it gets no state: the
	// analysis goes straight on into it (the ordered worklist would take
	// it next, once).
	at := zeroed(a.sc.at, f.Len())
	a.sc.at = at
	nlead := 0
	for _, l := range lead {
		if l > 0 {
			nlead++
		}
	}
	states := a.sc.states[:0]
	if cap(states) < nlead {
		states = make([]astate, 0, nlead)
	}
	states = append(states, a.entry[k])
	at[0] = 1
	// The worklist: the queued leaders, taken lowest first (in program
	// order, so in code without back edges every block is analysed once,
	// after all its predecessors). cur: no leader below it is queued.
	queued := zeroed(a.sc.queued, f.Len())
	a.sc.queued = queued
	queued[0] = 1
	pending, cur := 1, 0
	summary := false
	var st astate
	for pending > 0 {
		r := cur + bytes.IndexByte(queued[cur:], 1)
		queued[r] = 0
		pending--
		cur = r + 1
		b := f.Start + r
		st = states[at[r]-1]
		for i := b; i < f.End; {
			ins := p.Insns[i]
			c, err := a.step(k, i, &st)
			if err != nil {
				return false, err
			}
			summary = summary || c
			if !ins.Class().IsJump() {
				// Straight-line code: succs without the call, and
				// within a block straight on.
				next := i + 1
				if ins.IsLdImm64() {
					next = i + 2
				}
				if next < f.End && lead[next-f.Start] == 0 {
					i = next
					continue
				}
				buf = append(buf[:0], next)
			} else if buf, err = succs(p, i, buf[:0]); err != nil {
				return false, err
			}
			next := -1
			for _, s := range buf {
				if s >= f.End || s < f.Start {
					return false, &ir.Error{Index: i, Reason: "control flow leaves the function"}
				}
				r := s - f.Start
				if lead[r] == 0 || (fwd && lead[r] == 1 && s == i+1 && ins.IsJumpWithOffset()) {
					next = s
					continue
				}
				if at[r] == 0 {
					states = append(states, st)
					at[r] = int32(len(states))
				} else if !states[at[r]-1].join(&st) {
					continue
				}
				if queued[r] == 0 {
					queued[r] = 1
					pending++
					cur = min(cur, r)
				}
			}
			if next < 0 || ins.IsExit() {
				break
			}
			i = next
		}
	}
	a.sc.states = states[:0]
	return summary, nil
}

// slotOf returns the stack slot of an access at frame offset off of size
// bytes, and whether it is exactly one aligned 8-byte slot.
func slotOf(off int32, size int) (int, bool) {
	if off >= 0 || off < -stackSlots*8 {
		return -1, false
	}
	s := int(off+stackSlots*8) / 8
	return s, size == 8 && off%8 == 0
}

// clobber marks the slots an access of size bytes at v may write: the
// slots it overlaps when the offset is known, else none (a pointer spilled
// in a slot may stay; the verifier would forget it, which only matters
// for programs it rejects).
func (st *astate) clobber(v aval, size int) {
	if !v.offOK || len(st.s) == 0 {
		return
	}
	for o := v.off &^ 7; o < v.off+int32(size); o += 8 {
		if s, _ := slotOf(o, 8); s >= 0 {
			st.setSlot(s, scalar)
		}
	}
}

// step applies instruction i to st; it reports whether a function summary
// (static callee entry or return value) changed.
func (a *analyzer) step(k, i int, st *astate) (bool, error) {
	p := a.p
	ins := p.Insns[i]
	c := ins.Class()
	mem := func(base ir.Register) aval {
		v := st.r[base]
		a.info.base[i] |= v.k
		return v
	}
	switch c {
	case ir.ClassALU64:
		a.info.dst[i] |= st.r[ins.Dst].k
		switch {
		case ins.IsCastToKernel():
			st.r[ins.Dst] = aval{k: kArena}
		case ins.IsCastToUser():
			st.r[ins.Dst] = scalar
		case ins.IsPerCPUAddr():
			st.r[ins.Dst] = aval{k: kOther}
		case ins.ALUOp() == ir.ALUMov && ins.Source() == ir.SourceX && ins.Off == 0:
			st.r[ins.Dst] = st.r[ins.Src]
		case ins.ALUOp() == ir.ALUMov || ins.ALUOp() == ir.ALUNeg || ins.ALUOp() == ir.ALUEnd:
			// movsx, neg and byte swaps give scalars (check_alu_op marks
			// the destination unknown; only the binary operations keep an
			// arena pointer, and those are narrowed).
			st.r[ins.Dst] = scalar
		case ins.ALUOp() == ir.ALUAdd || ins.ALUOp() == ir.ALUSub:
			d := st.r[ins.Dst]
			if d.k&kPointers == 0 {
				// scalar += pointer gives the pointer (the verifier swaps
				// the operands); with an arena pointer the addition is
				// narrowed like any arena arithmetic (kernel-checked: p36).
				if ins.Source() == ir.SourceX && ins.ALUOp() == ir.ALUAdd && st.r[ins.Src].k&kPointers != 0 {
					s := st.r[ins.Src]
					s.offOK = false
					if s.k&kArena != 0 {
						a.info.dst[i] |= kArena
						s.k &= kArena | kScalar
					}
					st.r[ins.Dst] = s
				} else {
					st.r[ins.Dst] = scalar
				}
				break
			}
			if d.k&kStack != 0 {
				if ins.Source() == ir.SourceK && d.offOK {
					if ins.ALUOp() == ir.ALUAdd {
						d.off += ins.Imm
					} else {
						d.off -= ins.Imm
					}
				} else {
					d.offOK = false
				}
			}
			st.r[ins.Dst] = d
		default:
			d := st.r[ins.Dst]
			if d.k&kArena != 0 {
				st.r[ins.Dst] = aval{k: d.k & (kArena | kScalar)}
			} else {
				st.r[ins.Dst] = scalar
			}
		}
	case ir.ClassALU:
		a.info.dst[i] |= st.r[ins.Dst].k
		if d := st.r[ins.Dst]; !a.xl && ins.ALUOp() != ir.ALUMov && ins.ALUOp() != ir.ALUNeg && ins.ALUOp() != ir.ALUEnd && d.k&kArena != 0 {
			// 32-bit arithmetic keeps an arena pointer (only mov32 makes a scalar).
			st.r[ins.Dst] = aval{k: d.k & (kArena | kScalar)}
		} else if a.xl && !(ins.ALUOp() == ir.ALUMov && ins.Source() == ir.SourceK) {
			// A 32-bit result computed from a register (a constant is
			// never an arena pointer).
			st.r[ins.Dst] = aval{k: kScalar | kSub32}
		} else {
			st.r[ins.Dst] = scalar
		}
	case ir.ClassLDX:
		v := mem(ins.Src)
		r := scalar
		if v.k == kStack && v.offOK {
			off := v.off + int32(ins.Off)
			if s, whole := slotOf(off, ins.Size().Bytes()); s >= 0 && whole {
				if v := st.slot(s); v.k != 0 {
					r = v
				}
			}
		}
		st.r[ins.Dst] = r
	case ir.ClassST, ir.ClassSTX:
		if ins.Op == ir.OpNospec {
			break
		}
		v := mem(ins.Dst)
		if v.k&kStack != 0 {
			if v.k == kStack && v.offOK {
				off := v.off + int32(ins.Off)
				s, whole := slotOf(off, ins.Size().Bytes())
				if whole && c == ir.ClassSTX && ins.Mode() == ir.ModeMEM {
					st.setSlot(s, st.r[ins.Src])
				} else {
					st.clobber(aval{k: kStack, off: off, offOK: true}, ins.Size().Bytes())
				}
			} else {
				st.clobber(aval{k: kStack}, 8)
			}
		}
		if ins.IsAtomic() {
			if r, ok := atomicDef(ins); ok {
				st.r[r] = scalar
			}
		}
	case ir.ClassLD:
		if ins.IsLdImm64() {
			switch {
			case ins.Src == ir.PseudoNone || a.p.Aux[i].SymbolKind == ir.SymArena:
				st.r[ins.Dst] = scalar
			case ins.Src == ir.PseudoMapFD || ins.Src == ir.PseudoMapValue || ins.Src == ir.PseudoMapIdx || ins.Src == ir.PseudoMapIdxValue:
				st.r[ins.Dst] = aval{k: kMap}
			default:
				st.r[ins.Dst] = aval{k: kOther}
			}
			break
		}
		// LD_ABS / LD_IND: a helper-like call.
		for r := ir.R0; r <= ir.R5; r++ {
			st.r[r] = uninit
		}
		st.r[ir.R0] = scalar
	case ir.ClassJMP, ir.ClassJMP32:
		switch {
		case ins.IsExit():
			if k > 0 && !globalFunc(p, a.funcs, k) {
				if j := join(a.ret[k], st.r[ir.R0]); j != a.ret[k] {
					a.ret[k] = j
					return true, nil
				}
			}
		case ins.IsPseudoCall():
			ck, err := calleeIndex(p, a.funcs, i)
			if err != nil {
				return false, err
			}
			changed := false
			if !globalFunc(p, a.funcs, ck) {
				var in astate
				in.r[ir.R10] = aval{k: kStack, offOK: true}
				for r := ir.R1; r <= ir.R5; r++ {
					v := st.r[r]
					if v.k&kStack != 0 {
						// The caller's frame: not the callee's own slots.
						v = aval{k: v.k&^kStack | kOther}
					}
					in.r[r] = v
				}
				if !a.reached[ck] {
					a.reached[ck] = true
					a.entry[ck] = in
					changed = true
				} else if a.entry[ck].join(&in) {
					changed = true
				}
			}
			for r := ir.R0; r <= ir.R5; r++ {
				st.r[r] = uninit
			}
			if globalFunc(p, a.funcs, ck) {
				st.r[ir.R0] = scalar
			} else {
				st.r[ir.R0] = a.ret[ck]
				if st.r[ir.R0].k == 0 {
					st.r[ir.R0] = scalar
				}
			}
			return changed, nil
		case ins.IsCall() || ins.IsCallX() || ins.Op == ir.OpTailCall:
			for r := ir.R0; r <= ir.R5; r++ {
				st.r[r] = uninit
			}
			st.r[ir.R0] = callResult(ins, a.p.Aux[i])
		}
	}
	return false, nil
}

// atomicDef returns the register an atomic instruction writes, if any.
func atomicDef(ins ir.Instruction) (ir.Register, bool) {
	switch {
	case ins.Imm == ir.AtomicCmpXchg:
		return ir.R0, true
	case ins.Imm == ir.AtomicLoadAcq:
		return ins.Dst, true
	case ins.Imm&ir.AtomicFetch != 0 && ins.Imm != ir.AtomicStoreRel:
		return ins.Src, true
	}
	return 0, false
}

// callResult is what R0 holds after a helper or kfunc call: arena kfuncs
// return user addresses (scalars until cast); another kfunc may return a
// pointer to a kernel object, as may bpf_get_current_task_btf; map lookups
// return map values and ringbuf reservations memory; the rest scalars.
func callResult(ins ir.Instruction, a ir.Aux) aval {
	switch {
	case ins.IsKfuncCall():
		if strings.HasPrefix(a.Symbol, "bpf_arena_") {
			return scalar
		}
		return aval{k: kScalar | kBTF}
	case ins.IsHelperCall():
		switch ins.Imm {
		case 1, 195: // map_lookup_elem, map_lookup_percpu_elem
			return aval{k: kScalar | kMap}
		case 131: // ringbuf_reserve
			return aval{k: kScalar | kOther}
		case 158: // get_current_task_btf
			return aval{k: kBTF}
		}
	}
	return scalar
}
