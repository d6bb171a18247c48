package passes

import (
	"fmt"
	"sort"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// CallBaseSymbol is the Context.Symbols key of the kernel's __bpf_call_base:
// helper and kfunc call immediates become the callee's address minus it.
const CallBaseSymbol = "__bpf_call_base"

// HelperSymbol returns the Context.Symbols key of helper id's address.
func HelperSymbol(id int32) string { return fmt.Sprintf("helper#%d", id) }

// HelperFuncs names, for some common helpers, the kernel function their
// prototype points at (as /proc/kallsyms shows it), so that a driver can
// fill Symbols[HelperSymbol(id)] from kallsyms; checked against Linux 6.18's
// xlated call targets.
var HelperFuncs = map[int32]string{
	1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem",
	5: "bpf_ktime_get_ns", 7: "bpf_user_rnd_u32", 14: "bpf_get_current_pid_tgid",
	15: "bpf_get_current_uid_gid", 35: "bpf_get_current_task", 42: "bpf_get_numa_node_id",
	113: "bpf_probe_read_kernel", 125: "bpf_ktime_get_boot_ns", 158: "bpf_get_current_task_btf",
}

// Fixups does the rewrites of the verifier's do_misc_fixups (and the map
// part of resolve_pseudo_ldimm64) that change what the JIT gets, for
// programs whose context needs no kernel-specific conversion:
//
//   - div/mod by a register: the guard sequences of 6.18 exactly (x / 0 = 0,
//     x % 0 = x, and for sdiv/smod also INT_MIN / -1 = INT_MIN, x % -1 = 0,
//     through BPF_REG_AX); sdiv/smod by the constant -1 become neg / mov 0;
//   - ld_imm64 of a map (src 1/5) or a map value (src 2/6), and of arena
//     globals (SymArena) and kernel variables (src 3), become a plain
//     ld_imm64 of the address: Context.Symbols[Aux.Symbol], plus the value
//     offset for map values;
//   - helper and kfunc calls: imm = address - __bpf_call_base when the
//     caller provides the addresses (Symbols[CallBaseSymbol], the kfunc's
//     name, HelperSymbol(id)); with no call base the immediates stay as they
//     are;
//   - bpf-to-bpf calls keep their relative imm (the JIT resolves them to
//     the callee's image, as the kernel's extra pass does);
//   - map_lookup_elem, map_update_elem and map_delete_elem on a map that is
//     the same on every path (Options.Maps says its type) go where the
//     kernel sends them: (per-cpu) array, (per-cpu, LRU) hash lookups are
//     inlined (array_map_gen_lookup, htab_map_gen_lookup and their forms:
//     Symbols "__htab_map_lookup_elem"), updates and deletes call the map
//     type's functions (Symbols "array_map_update_elem",
//     "htab_map_delete_elem", ...); with different maps on different paths,
//     the generic helper;
//   - bpf_get_smp_processor_id and bpf_jiffies64 are inlined as the x86-64
//     kernel inlines them (a per-cpu load of cpu_number, a load of jiffies:
//     Symbols[CPUNumberSymbol], Symbols[JiffiesSymbol]);
//   - a bpf_tail_call becomes the kernel's tail call instruction: the
//     direct form (imm = poke descriptor index + 1, in program order) when
//     the key is the same constant on every path and below the prog
//     array's size (Options.MapMaxEntries) and the map is known, else the
//     indirect form (imm 0), as record_func_key decides. The key and map
//     are followed over the function's CFG (constants, copies, simple
//     arithmetic; different values on different paths mean indirect); when
//     that cannot decide (a load from a stack slot or a read-only map that
//     the verifier may know to be constant), the pass says so;
//   - may_goto becomes the x86 kernel's timed form: a 16-byte counter and
//     timestamp below the function's stack (its StackDepth grows by 16, so
//     the stackdepth pass must run first), a decrement through BPF_REG_AX
//     and a call of arch_bpf_timed_may_goto (Symbols) when the count runs
//     out; the function's first instruction is preceded by the counter's
//     initialisation (BPF_MAX_TIMED_LOOPS, 0).
//
// What only the kernel knows is an error naming the instruction, never a
// guess: accesses through pointers to kernel objects (PROBE_MEM), context
// field conversions (unless Options.CtxIsMemory says the program type
// passes its context through, as syscall programs do), LD_ABS/LD_IND,
// helpers the kernel inlines or redirects by map type (map operations,
// for_each_map_elem, bpf_loop, get_func_arg...), and kfuncs it specialises
// (obj_new, cast_to_kern_ctx, ...).
//
// Context.Symbols keys: map and data-section names and ".addr_space.1"
// (the user address of the arena globals: user_vm_start + libbpf's
// placement offset) as the loader names them in Aux.Symbol; kfunc names;
// CallBaseSymbol; HelperSymbol(id); MayGotoSymbol; CPUNumberSymbol;
// JiffiesSymbol.
//
// Instructions this pass inserts get OrigIndex -1 and a conservative
// ZextDst (set on every 32-bit definition), as the kernel's
// adjust_insn_aux_data does. Guarantees to the next pass: no map, kfunc,
// helper or arena-global reference that needs an address is left
// symbolic, and no division can trap. In FromXlated mode it does nothing.
type Fixups struct {
	Options Options

	mayGotoFuncs []bool // per function: may_goto slots were added
}

// Options are settings of the passes that depend on the program's type or
// origin rather than on the target.
type Options struct {
	// CtxIsMemory: the program type's context is plain memory that the
	// verifier does not rewrite (syscall programs, for example). Otherwise
	// an access through the context is an error.
	CtxIsMemory bool
	// MapMaxEntries gives the size of prog array maps by symbol: a tail
	// call with a constant key below it becomes the direct form.
	MapMaxEntries map[string]uint32
	// Maps describes the maps by symbol, for the map helpers the kernel
	// inlines or sends to the map type's own functions (array and hash
	// maps); their sizes also serve MapMaxEntries.
	Maps map[string]MapInfo
	// ArrayValueOffset is offsetof(struct bpf_array, value) and
	// HtabKeyOffset offsetof(struct htab_elem, key) in the target kernel;
	// 0 means Linux 6.18 x86-64's (312 and 48).
	ArrayValueOffset, HtabKeyOffset int32
	// LRURefOffset is offsetof(struct htab_elem, lru_node) +
	// offsetof(struct bpf_lru_node, ref); 0 means Linux 6.18 x86-64's (35).
	LRURefOffset int32
}

// MapInfo is what the map helper rewrites need to know about a map.
type MapInfo struct {
	Type       uint32 // BPF_MAP_TYPE_*
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
}

func (o Options) mapMaxEntries(sym string) (uint32, bool) {
	if n, ok := o.MapMaxEntries[sym]; ok {
		return n, true
	}
	if m, ok := o.Maps[sym]; ok {
		return m.MaxEntries, true
	}
	return 0, false
}

func (Fixups) Name() string { return "fixups" }

// Run applies the fixups to p.
func (f Fixups) Run(p *ir.Program, ctx *pipeline.Context) error { return f.run(p, ctx) }

func (Fixups) Describe() string {
	return "div/mod guards, map/arena-global addresses into ld_imm64, helper/kfunc call immediates (do_misc_fixups)"
}

// Helpers the kernel inlines or redirects on x86-64: the JIT's input then
// depends on maps and kernel configuration.
var kernelOnlyHelpers = map[int32]string{
	87:  "map_push_elem",
	88:  "map_pop_elem",
	89:  "map_peek_elem",
	99:  "inode_storage_get",
	107: "sk_storage_get",
	156: "task_storage_get",
	164: "for_each_map_elem",
	170: "timer_set_callback",
	173: "get_func_ip",
	176: "get_branch_snapshot",
	181: "loop",
	183: "get_func_arg",
	184: "get_func_ret",
	185: "get_func_arg_cnt",
	194: "kptr_xchg",
	195: "map_lookup_percpu_elem",
	210: "cgrp_storage_get",
}

// Kfuncs fixup_kfunc_call rewrites into other instructions or arguments.
var kernelOnlyKfuncs = map[string]bool{
	"bpf_obj_new_impl": true, "bpf_percpu_obj_new_impl": true, "bpf_obj_drop_impl": true,
	"bpf_percpu_obj_drop_impl": true, "bpf_refcount_acquire_impl": true,
	"bpf_list_push_front_impl": true, "bpf_list_push_back_impl": true, "bpf_rbtree_add_impl": true,
	"bpf_cast_to_kern_ctx": true, "bpf_rdonly_cast": true, "bpf_session_is_return": true,
	"bpf_session_cookie": true, "bpf_iter_css_task_new": true,
}

func (f *Fixups) run(p *ir.Program, ctx *pipeline.Context) error {
	if ctx == nil {
		ctx = &pipeline.Context{}
	}
	if ctx.FromXlated {
		return nil
	}
	base, haveBase := ctx.Symbols[CallBaseSymbol]
	if _, err := funcsOf(p); err != nil {
		return err
	}
	f.mayGotoFuncs = make([]bool, len(p.Funcs)) // functions given may_goto slots
	var edits []edit
	// Tail call forms and map helper targets, decided before map loads
	// become addresses.
	var tc map[int]int32
	var cs map[int]kstate
	mapCall, tailCall := false, false
	for i := 0; i < len(p.Insns) && !(mapCall && tailCall); i++ {
		if in := p.Insns[i]; in.Class() == ir.ClassJMP && in.IsHelperCall() && (i == 0 || !p.Insns[i-1].IsLdImm64()) {
			mapCall = mapCall || in.Imm >= 1 && in.Imm <= 3
			tailCall = tailCall || in.Imm == ir.HelperTailCall
		}
	}
	if mapCall {
		var err error
		if cs, err = callStates(p); err != nil {
			return err
		}
	}
	if tailCall {
		var err error
		if tc, err = f.tailCallForms(p); err != nil {
			return err
		}
	}
	for i := 0; i < len(p.Insns); i++ {
		ins := p.Insns[i]
		// The common forms no case below takes: ALU but div/mod, and
		// memory accesses through neither the context nor a BTF object.
		switch ins.Class() {
		case ir.ClassALU, ir.ClassALU64:
			if op := ins.ALUOp(); op != ir.ALUDiv && op != ir.ALUMod {
				continue
			}
		case ir.ClassLDX, ir.ClassST, ir.ClassSTX:
			if pt := p.Aux[i].PtrType; pt != ir.PtrCtx && pt != ir.PtrBTF {
				continue
			}
		}
		a := &p.Aux[i]
		switch {
		case ins.IsLdImm64():
			if err := f.ldImm64(p, i, ctx); err != nil {
				return err
			}
			i++
		case ins.Class() == ir.ClassLD:
			return &ir.Error{Index: i, Reason: "LD_ABS/LD_IND: the kernel rewrites legacy packet loads per program type (out of scope)"}
		case (ins.Class() == ir.ClassLDX || ins.Class() == ir.ClassST || ins.Class() == ir.ClassSTX) && a.PtrType == ir.PtrCtx && !f.Options.CtxIsMemory:
			return &ir.Error{Index: i, Reason: "context access: the kernel converts context fields per program type (out of scope; set CtxIsMemory for program types that pass the context through)"}
		case (ins.Class() == ir.ClassLDX || ins.Class() == ir.ClassST || ins.Class() == ir.ClassSTX) && a.PtrType == ir.PtrBTF:
			return &ir.Error{Index: i, Reason: "access through what may be a pointer to a kernel object (a kfunc or BTF helper result): the kernel turns such loads into checked PROBE_MEM loads (out of scope)"}
		case ins.Op == ir.OpMayGoto:
			ed, err := f.mayGoto(p, i, ctx)
			if err != nil {
				return err
			}
			edits = append(edits, ed)
		case ins.IsTailCall():
			if ins.Op == ir.OpTailCall {
				continue // already rewritten
			}
			p.Insns[i] = ir.Instruction{Op: ir.OpTailCall, Imm: tc[i]}
		case ins.IsHelperCall() && (ins.Imm == helperSMPProcessorID || ins.Imm == helperJiffies64):
			ed, err := inlineHelper(p, i, ctx)
			if err != nil {
				return err
			}
			edits = append(edits, ed)
		case ins.IsHelperCall() && ins.Imm >= 1 && ins.Imm <= 3:
			if cs == nil {
				var err error
				if cs, err = callStates(p); err != nil {
					return err
				}
			}
			ed, did, err := f.mapHelper(p, i, cs[i], ctx)
			if err != nil {
				return err
			}
			switch did {
			case mapInlined:
				edits = append(edits, ed)
				continue
			case mapRedirected:
				continue
			}
			if !haveBase {
				continue
			}
			addr, found := ctx.Symbols[HelperSymbol(ins.Imm)]
			if !found {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("no address for helper %d (Symbols[%q])", ins.Imm, HelperSymbol(ins.Imm))}
			}
			if err := setCallImm(p, i, addr, base); err != nil {
				return err
			}
		case ins.IsHelperCall():
			if name, ok := kernelOnlyHelpers[ins.Imm]; ok {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("call of helper %d (%s): the kernel inlines or redirects it (out of scope)", ins.Imm, name)}
			}
			if !haveBase {
				continue
			}
			addr, ok := ctx.Symbols[HelperSymbol(ins.Imm)]
			if !ok {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("no address for helper %d (Symbols[%q])", ins.Imm, HelperSymbol(ins.Imm))}
			}
			if err := setCallImm(p, i, addr, base); err != nil {
				return err
			}
		case ins.IsKfuncCall():
			if kernelOnlyKfuncs[a.Symbol] {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("call of kfunc %s: the kernel rewrites it (out of scope)", a.Symbol)}
			}
			if !haveBase {
				continue
			}
			addr, ok := ctx.Symbols[a.Symbol]
			if a.Symbol == "" || !ok {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("no address for kfunc %q", a.Symbol)}
			}
			if err := setCallImm(p, i, addr, base); err != nil {
				return err
			}
		case (ins.Class() == ir.ClassALU || ins.Class() == ir.ClassALU64) && (ins.ALUOp() == ir.ALUDiv || ins.ALUOp() == ir.ALUMod):
			if ins.Source() == ir.SourceK && ins.Imm == 0 {
				// check_alu_op: "div by zero". Compiled, x86 div would fault.
				return &ir.Error{Index: i, Reason: "division by a constant 0 (the verifier rejects it: div by zero)"}
			}
			if ed, ok := divGuard(p, i); ok {
				edits = append(edits, ed)
			}
		}
	}
	edits = f.mayGotoPrologues(p, edits)
	if err := applyEdits(p, edits); err != nil {
		return err
	}
	for k, added := range f.mayGotoFuncs {
		if added {
			p.Funcs[k].StackDepth += 16
		}
	}
	return nil
}

func setCallImm(p *ir.Program, i int, addr, base uint64) error {
	d := int64(addr - base)
	if d != int64(int32(d)) {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("call target %#x is out of reach of __bpf_call_base %#x", addr, base)}
	}
	p.Insns[i].Imm = int32(d)
	return nil
}

func (f Fixups) ldImm64(p *ir.Program, i int, ctx *pipeline.Context) error {
	ins, a := p.Insns[i], p.Aux[i]
	var addr uint64
	switch ins.Src {
	case ir.PseudoNone, ir.PseudoFunc:
		return nil
	case ir.PseudoMapFD, ir.PseudoMapIdx, ir.PseudoMapValue, ir.PseudoMapIdxValue, ir.PseudoBTFID:
		if a.Symbol == "" {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("ld_imm64 with src %d has no symbol to resolve (raw map fds need the kernel)", ins.Src)}
		}
		v, ok := ctx.Symbols[a.Symbol]
		if !ok {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("no address for %v %q", a.SymbolKind, a.Symbol)}
		}
		addr = v
		if ins.Src == ir.PseudoMapValue || ins.Src == ir.PseudoMapIdxValue {
			addr += uint64(uint32(p.Insns[i+1].Imm))
		}
	default:
		return &ir.Error{Index: i, Reason: fmt.Sprintf("ld_imm64 with unknown src %d", ins.Src)}
	}
	ld := ir.LdImm64(ins.Dst, addr)
	p.Insns[i], p.Insns[i+1] = ld[0], ld[1]
	return nil
}

// divGuard returns the edit that replaces the division or modulo at i by
// the kernel's guarded sequence, if it needs one.
func divGuard(p *ir.Program, i int) (edit, bool) {
	ins := p.Insns[i]
	is64 := ins.Class() == ir.ClassALU64
	isDiv := ins.ALUOp() == ir.ALUDiv
	signed := ins.Off == ir.OffSigned
	alu, jmp := uint8(ir.ClassALU), uint8(ir.ClassJMP32)
	if is64 {
		alu, jmp = uint8(ir.ClassALU64), uint8(ir.ClassJMP)
	}
	ax, src, dst := ir.RAX, ins.Src, ins.Dst
	ja := func(off int16) ir.Instruction { return ir.Instruction{Op: ir.OpJA, Off: off} }
	mov32 := uint8(ir.ClassALU) | uint8(ir.ALUMov)
	var patch []ir.Instruction
	orig := -1 // position of the original instruction in the patch
	if ins.Source() == ir.SourceK {
		if !signed || ins.Imm != -1 {
			return edit{}, false // constant divisor: nothing can trap (the verifier rejects / 0)
		}
		if isDiv {
			// x s/ -1 = -x (INT_MIN stays INT_MIN).
			patch = []ir.Instruction{{Op: alu | uint8(ir.ALUNeg), Dst: dst}}
		} else {
			// x s% -1 = 0.
			patch = []ir.Instruction{{Op: mov32, Dst: dst}}
		}
	} else {
		switch {
		case isDiv && signed:
			patch = []ir.Instruction{
				{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ax, Src: src}, // AX = src
				{Op: alu | uint8(ir.ALUAdd), Dst: ax, Imm: 1},                                        // AX += 1
				{Op: jmp | uint8(ir.JumpJGT), Dst: ax, Off: 4, Imm: 1},                               // if AX > 1 goto div
				{Op: jmp | uint8(ir.JumpJEQ), Dst: ax, Off: 1, Imm: 0},                               // if AX == 0 goto zero
				{Op: alu | uint8(ir.ALUMov), Dst: dst},                                               // dst = 0
				{Op: alu | uint8(ir.ALUNeg), Dst: dst},                                               // dst = -dst
				ja(1),
				ins,
			}
			orig = 7
		case !isDiv && signed:
			patch = []ir.Instruction{
				{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ax, Src: src},
				{Op: alu | uint8(ir.ALUAdd), Dst: ax, Imm: 1},
				{Op: jmp | uint8(ir.JumpJGT), Dst: ax, Off: 3, Imm: 1},
				{Op: jmp | uint8(ir.JumpJEQ), Dst: ax, Off: 3, Imm: 1},
				{Op: mov32, Dst: dst},
				ja(1),
				ins,
			}
			if !is64 {
				patch[3].Off = 4
				patch = append(patch, ja(1), ir.Instruction{Op: mov32 | uint8(ir.SourceX), Dst: dst, Src: dst})
			}
			orig = 6
		case isDiv:
			patch = []ir.Instruction{
				{Op: jmp | uint8(ir.JumpJNE), Dst: src, Off: 2},
				{Op: uint8(ir.ClassALU) | uint8(ir.ALUXor) | uint8(ir.SourceX), Dst: dst, Src: dst},
				ja(1),
				ins,
			}
			orig = 3
		default:
			patch = []ir.Instruction{
				{Op: jmp | uint8(ir.JumpJEQ), Dst: src, Off: 1},
				ins,
			}
			if !is64 {
				patch[0].Off = 2
				patch = append(patch, ja(1), ir.Instruction{Op: mov32 | uint8(ir.SourceX), Dst: dst, Src: dst})
			}
			orig = 1
		}
	}
	if orig >= 0 && alreadyGuarded(p, i, patch, orig) {
		return edit{}, false // a second run: the guard is there
	}
	a := p.Aux[i]
	aux := make([]ir.Aux, len(patch))
	for k := range patch {
		if k == orig {
			aux[k] = a
		} else {
			aux[k] = ir.Aux{OrigIndex: -1, Line: a.Line}
			if k == 0 && orig < 0 {
				aux[k].OrigIndex = a.OrigIndex
			}
		}
		_, d := def32(patch[k])
		aux[k].ZextDst = d
	}
	return edit{At: i, Insns: patch, Aux: aux}, true
}

// MayGotoSymbol is the Symbols key of the kernel's arch_bpf_timed_may_goto.
const MayGotoSymbol = "arch_bpf_timed_may_goto"

// maxTimedLoops is BPF_MAX_TIMED_LOOPS, the counter's start value.
const maxTimedLoops = 0xffff

// mayGoto returns the expansion of the may_goto at i, as do_misc_fixups
// makes it on a JIT with timed may_goto.
func (f *Fixups) mayGoto(p *ir.Program, i int, ctx *pipeline.Context) (edit, error) {
	k := ir.FuncOf(p.Funcs, i)
	depth := p.Funcs[k].StackDepth
	base, ok1 := ctx.Symbols[CallBaseSymbol]
	fn, ok2 := ctx.Symbols[MayGotoSymbol]
	if !ok1 || !ok2 {
		return edit{}, &ir.Error{Index: i, Reason: fmt.Sprintf("may_goto: the expansion calls %s: Symbols needs its address and %s", MayGotoSymbol, CallBaseSymbol)}
	}
	d := int64(fn - base)
	if d != int64(int32(d)) {
		return edit{}, &ir.Error{Index: i, Reason: "may_goto: arch_bpf_timed_may_goto out of reach of __bpf_call_base"}
	}
	off := p.Insns[i].Off
	cntOff := -depth - 16
	if !fitsOff(int64(cntOff)) {
		return edit{}, &ir.Error{Index: i, Reason: "may_goto: stack offset out of range"}
	}
	jeq := int64(off) + 5
	if off < 0 {
		jeq = int64(off) - 1
	}
	if !fitsOff(jeq) {
		return edit{}, &ir.Error{Index: i, Reason: "may_goto: jump distance out of range after expansion"}
	}
	ax := ir.RAX
	patch := []ir.Instruction{
		{Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ax, Src: ir.R10, Off: int16(cntOff)}, // AX = *(u64 *)(r10 - cnt)
		{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ax, Off: int16(jeq)},                                    // if AX == 0 goto target
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUSub), Dst: ax, Imm: 1},                                            // AX -= 1
		{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJNE), Dst: ax, Off: 2},                                             // if AX != 0 goto store
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ax, Imm: cntOff},                                       // AX = cnt offset
		{Op: ir.OpCall, Imm: int32(d)},                                                                            // call arch_bpf_timed_may_goto
		{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R10, Src: ax, Off: int16(cntOff)}, // *(u64 *)(r10 - cnt) = AX
	}
	a := p.Aux[i]
	aux := make([]ir.Aux, len(patch))
	for j := range aux {
		aux[j] = ir.Aux{OrigIndex: -1, Line: a.Line}
	}
	aux[0].OrigIndex = a.OrigIndex
	aux[0].PtrType, aux[6].PtrType = ir.PtrStack, ir.PtrStack
	f.mayGotoFuncs[k] = true
	return edit{At: i, Insns: patch, Aux: aux, Targets: map[int]int{1: p.Target(i)}}, nil
}

func fitsOff(v int64) bool { return v == int64(int16(v)) }

// mayGotoPrologues adds, for every function that got may_goto slots, the
// counter's initialisation before its first instruction:
// *(u64 *)(r10 - depth) = BPF_MAX_TIMED_LOOPS and the timestamp slot above
// it = 0, depth being the function's stack depth with the 16 bytes added.
// Jumps to the function's first instruction land after the
// initialisation (the kernel's adjust_jmp_off); calls still reach it. The
// edits are merged into the sorted list.
func (f *Fixups) mayGotoPrologues(p *ir.Program, edits []edit) []edit {
	for k := range p.Funcs {
		if !f.mayGotoFuncs[k] {
			continue
		}
		start := p.Funcs[k].Start
		depth := p.Funcs[k].StackDepth + 16
		st := func(off int32, v int32) ir.Instruction {
			return ir.Instruction{Op: uint8(ir.ClassST) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R10, Off: int16(off), Imm: v}
		}
		init := []ir.Instruction{st(-depth, maxTimedLoops), st(-depth+8, 0)}
		initAux := []ir.Aux{{OrigIndex: -1, PtrType: ir.PtrStack}, {OrigIndex: -1, PtrType: ir.PtrStack}}
		j := sort.Search(len(edits), func(j int) bool { return edits[j].At >= start })
		if j < len(edits) && edits[j].At == start {
			ed := &edits[j]
			ed.Insns = append(init, ed.Insns...)
			ed.Aux = append(initAux, ed.Aux...)
			ed.JumpSkip += 2
			if ed.HasOrig {
				ed.OrigPos += 2
			}
			if ed.Targets != nil {
				moved := make(map[int]int, len(ed.Targets))
				for pos, t := range ed.Targets {
					moved[pos+2] = t
				}
				ed.Targets = moved
			}
			continue
		}
		w := p.SlotLen(start)
		ed := edit{At: start, JumpSkip: 2, HasOrig: true, OrigPos: 2,
			Insns: append(init, p.Insns[start:start+w]...),
			Aux:   append(initAux, p.Aux[start:start+w]...)}
		edits = append(edits, edit{})
		copy(edits[j+1:], edits[j:])
		edits[j] = ed
	}
	return edits
}

// alreadyGuarded reports whether the instructions around i are the guard
// patch would add (the fixups already ran over this program).
func alreadyGuarded(p *ir.Program, i int, patch []ir.Instruction, orig int) bool {
	if i-orig < 0 || i-orig+len(patch) > p.Len() {
		return false
	}
	for k, ins := range patch {
		if p.Insns[i-orig+k] != ins {
			return false
		}
	}
	return true
}

// kval is what the tail-call key tracking knows about a register.
type kval struct {
	state uint8
	v     uint64
	sym   string // for a map pointer: the map's symbol
}

const (
	kvBottom       uint8 = iota // not reached yet
	kvConst                     // this constant on every path
	kvMap                       // this map pointer on every path
	kvNonConst                  // a value the verifier cannot know (or that differs between paths)
	kvUndetermined              // may be a constant the verifier knows (stack fills, read-only maps...)
)

func joinK(a, b kval) kval {
	switch {
	case a.state == kvBottom:
		return b
	case b.state == kvBottom:
		return a
	case a.state == kvUndetermined || b.state == kvUndetermined:
		return kval{state: kvUndetermined}
	case a == b:
		return a
	}
	return kval{state: kvNonConst}
}

type kstate [ir.RAX + 1]kval

// tailCallForms decides the form of every bpf_tail_call: the imm of the
// kernel's tail call instruction (0 indirect, n+1 direct with poke
// descriptor n). The key (r3) and the map (r2) are followed over each
// function's CFG: the verifier takes the direct form when every visit of the
// call sees the same constant key and the same map.
func (f *Fixups) tailCallForms(p *ir.Program) (map[int]int32, error) {
	at, err := callStates(p)
	if err != nil {
		return nil, err
	}
	forms := map[int]int32{}
	pokes := int32(0)
	for i := 0; i < p.Len(); i++ {
		st, ok := at[i]
		if !ok || !p.Insns[i].IsTailCall() {
			continue
		}
		key, m := st[ir.R3], st[ir.R2]
		switch {
		case key.state == kvConst && (m.state == kvMap || m.state == kvConst):
			sym := m.sym
			if m.state == kvConst {
				// An already resolved map address (xlated input).
				sym = fmt.Sprintf("%#x", m.v)
			}
			max, ok := f.Options.mapMaxEntries(sym)
			if !ok {
				return nil, &ir.Error{Index: i, Reason: fmt.Sprintf("tail call with constant key %d: the size of prog array %q is needed (Options.MapMaxEntries) to choose the direct form", key.v, sym)}
			}
			if key.v < uint64(max) {
				pokes++
				forms[i] = pokes
			} else {
				forms[i] = 0
			}
		case key.state == kvNonConst || m.state == kvNonConst:
			forms[i] = 0 // key or map differs between visits: indirect
		default:
			return nil, &ir.Error{Index: i, Reason: "tail call: the key (r3) or the map (r2) may be a constant only the verifier's value tracking knows (a stack fill, a read-only map); the direct or indirect form cannot be told here"}
		}
	}
	return forms, nil
}

// callStates follows the tail-call keys and map pointers over each
// function's CFG and returns the state before every call of a map helper
// (lookup, update, delete) or bpf_tail_call.
func callStates(p *ir.Program) (map[int]kstate, error) {
	funcs, err := funcsOf(p)
	if err != nil {
		return nil, err
	}
	at := make(map[int]kstate)
	var buf []int
	for _, fn := range funcs {
		in := make([]kstate, fn.Len())
		var entry kstate
		for r := range entry {
			entry[r] = kval{state: kvNonConst}
		}
		in[0] = entry
		reached := make([]bool, fn.Len())
		reached[0] = true
		work := []int{fn.Start}
		queued := make([]bool, fn.Len())
		queued[0] = true
		for len(work) > 0 {
			i := work[len(work)-1]
			work = work[:len(work)-1]
			queued[i-fn.Start] = false
			st := in[i-fn.Start]
			ins := p.Insns[i]
			if ins.IsTailCall() || (ins.IsHelperCall() && ins.Imm >= 1 && ins.Imm <= 3) {
				at[i] = st
			}
			stepKey(p, i, &st)
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return nil, err
			}
			for _, s := range buf {
				if s < fn.Start || s >= fn.End {
					return nil, &ir.Error{Index: i, Reason: "control flow leaves the function"}
				}
				r := s - fn.Start
				changed := !reached[r]
				reached[r] = true
				for k := range st {
					if j := joinK(in[r][k], st[k]); j != in[r][k] {
						in[r][k], changed = j, true
					}
				}
				if changed && !queued[r] {
					queued[r] = true
					work = append(work, s)
				}
			}
		}
	}
	return at, nil
}

// stepKey applies instruction i to the key-tracking state.
func stepKey(p *ir.Program, i int, r *kstate) {
	ins := p.Insns[i]
	switch c := ins.Class(); {
	case ins.IsLdImm64():
		switch {
		case ins.Src == ir.PseudoMapFD && p.Aux[i].Symbol != "":
			r[ins.Dst] = kval{state: kvMap, sym: p.Aux[i].Symbol}
		case ins.Src == ir.PseudoMapFD:
			r[ins.Dst] = kval{state: kvMap, sym: fmt.Sprintf("map#%d", ins.Imm)}
		case ins.Src == ir.PseudoNone:
			r[ins.Dst] = kval{state: kvConst, v: ir.Imm64(ins, p.Insns[i+1])}
		default:
			r[ins.Dst] = kval{state: kvUndetermined}
		}
	case c == ir.ClassALU || c == ir.ClassALU64:
		r[ins.Dst] = evalKey(ins, r[ins.Dst], r[ins.Src])
	case c == ir.ClassLDX:
		switch p.Aux[i].PtrType {
		case ir.PtrCtx, ir.PtrArena, ir.PtrMem, ir.PtrPacket:
			r[ins.Dst] = kval{state: kvNonConst}
		default:
			r[ins.Dst] = kval{state: kvUndetermined}
		}
	case c == ir.ClassSTX && ins.IsAtomic():
		if d, ok := atomicDef(ins); ok {
			r[d] = kval{state: kvNonConst}
		}
	case ins.IsCall() || ins.IsCallX() || ins.Op == ir.OpTailCall || c == ir.ClassLD:
		for reg := ir.R0; reg <= ir.R5; reg++ {
			r[reg] = kval{state: kvNonConst}
		}
	}
}

// evalKey follows constants through an ALU instruction, as far as the
// verifier's own tracking would certainly agree.
func evalKey(ins ir.Instruction, d, s kval) kval {
	src := s
	if ins.Source() == ir.SourceK {
		src = kval{state: kvConst, v: uint64(int64(ins.Imm))}
	}
	is32 := ins.Class() == ir.ClassALU
	trunc := func(v uint64) kval {
		if is32 {
			v = uint64(uint32(v))
		}
		return kval{state: kvConst, v: v}
	}
	op := ins.ALUOp()
	undetermined := kval{state: kvUndetermined}
	if op == ir.ALUMov {
		if ins.Off != 0 {
			return undetermined // movsx, casts
		}
		switch {
		case src.state == kvConst:
			return trunc(src.v)
		case src.state == kvNonConst, src.state == kvMap && !is32:
			return src
		}
		return undetermined
	}
	if d.state == kvConst && src.state == kvConst {
		a, b := d.v, src.v
		switch op {
		case ir.ALUAdd:
			return trunc(a + b)
		case ir.ALUSub:
			return trunc(a - b)
		case ir.ALUAnd:
			return trunc(a & b)
		case ir.ALUOr:
			return trunc(a | b)
		case ir.ALUXor:
			return trunc(a ^ b)
		}
		return undetermined
	}
	// An unknown value stays unknown under a mask with more than one
	// possible result, an addition or an xor; anything else is left
	// undetermined.
	if d.state == kvNonConst && src.state == kvConst {
		switch op {
		case ir.ALUAnd:
			if src.v != 0 {
				return kval{state: kvNonConst}
			}
		case ir.ALUAdd, ir.ALUSub, ir.ALUXor:
			return kval{state: kvNonConst}
		}
	}
	return undetermined
}

// TailCalls turns the dumped form of the kernel's tail calls back into the
// tail call instruction for a program given as the kernel's xlated dump
// (FromXlated): the dump shows every BPF_TAIL_CALL as "call 12"
// (bpf_insn_prepare_dump) and so loses whether it was direct; the form is
// decided again as Fixups decides it (Options.MapMaxEntries keyed by map
// symbol, "map#<id>" or the resolved address "%#x" for constant keys).
// Guarantees to the next pass: no helper call 12 is left. Only for xlated
// input; Fixups does this for original programs.
type TailCalls struct {
	Options Options
}

func (TailCalls) Name() string { return "tailcalls" }

func (TailCalls) Describe() string {
	return "xlated input: dumped tail calls (call 12) back to direct/indirect tail call instructions"
}

func (t TailCalls) Run(p *ir.Program, ctx *pipeline.Context) error {
	f := &Fixups{Options: t.Options}
	var tc map[int]int32
	for i := 0; i < p.Len(); i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if ins.IsHelperCall() && ins.Imm == ir.HelperTailCall {
			if tc == nil {
				var err error
				if tc, err = f.tailCallForms(p); err != nil {
					return err
				}
			}
			p.Insns[i] = ir.Instruction{Op: ir.OpTailCall, Imm: tc[i]}
		}
	}
	return nil
}

const (
	helperSMPProcessorID = 8
	helperJiffies64      = 118

	// CPUNumberSymbol and JiffiesSymbol are the Symbols keys of the
	// per-cpu variable cpu_number and of jiffies, which the inlined
	// helpers load.
	CPUNumberSymbol = "cpu_number"
	JiffiesSymbol   = "jiffies"
)

// inlineHelper returns the kernel's inline form of helper call i.
func inlineHelper(p *ir.Program, i int, ctx *pipeline.Context) (edit, error) {
	ins := p.Insns[i]
	var patch []ir.Instruction
	switch ins.Imm {
	case helperSMPProcessorID:
		addr, ok := ctx.Symbols[CPUNumberSymbol]
		if !ok {
			return edit{}, &ir.Error{Index: i, Reason: fmt.Sprintf("bpf_get_smp_processor_id is inlined as a per-cpu load: Symbols needs %q", CPUNumberSymbol)}
		}
		patch = []ir.Instruction{
			{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ir.R0, Imm: int32(uint32(addr))},                              // r0 = (u32)&cpu_number
			{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R0, Off: ir.OffPerCPUAddr}, // r0 = this_cpu_ptr(r0)
			{Op: uint8(ir.ClassLDX) | uint8(ir.SizeW) | uint8(ir.ModeMEM), Dst: ir.R0, Src: ir.R0},                           // w0 = *(u32 *)(r0 + 0)
		}
	case helperJiffies64:
		addr, ok := ctx.Symbols[JiffiesSymbol]
		if !ok {
			return edit{}, &ir.Error{Index: i, Reason: fmt.Sprintf("bpf_jiffies64 is inlined as a load of jiffies: Symbols needs %q", JiffiesSymbol)}
		}
		ld := ir.LdImm64(ir.R0, addr)
		patch = []ir.Instruction{ld[0], ld[1], {Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R0, Src: ir.R0}}
	}
	a := p.Aux[i]
	aux := make([]ir.Aux, len(patch))
	for k := range patch {
		aux[k] = ir.Aux{OrigIndex: -1, Line: a.Line}
		_, aux[k].ZextDst = def32(patch[k])
	}
	aux[0].OrigIndex = a.OrigIndex
	aux[len(patch)-1].PtrType = ir.PtrMem
	return edit{At: i, Insns: patch, Aux: aux}, nil
}

const (
	mapTypeHash        = 1
	mapTypeArray       = 2
	mapTypePercpuHash  = 5
	mapTypePercpuArray = 6
	mapTypeLRUHash     = 9
	bpfFInnerMap       = 1 << 12 // BPF_F_INNER_MAP
)

// mapOps names the kernel functions a map type's lookup, update and delete
// go to (its bpf_map_ops).
var mapOps = map[uint32][3]string{
	mapTypeHash:        {"htab_map_lookup_elem", "htab_map_update_elem", "htab_map_delete_elem"},
	mapTypeArray:       {"array_map_lookup_elem", "array_map_update_elem", "array_map_delete_elem"},
	mapTypePercpuHash:  {"htab_percpu_map_lookup_elem", "htab_percpu_map_update_elem", "htab_map_delete_elem"},
	mapTypePercpuArray: {"percpu_array_map_lookup_elem", "array_map_update_elem", "array_map_delete_elem"},
	mapTypeLRUHash:     {"htab_lru_map_lookup_elem", "htab_lru_map_update_elem", "htab_lru_map_delete_elem"},
}

// What mapHelper did.
const (
	mapGeneric    = iota // handle as a plain helper call
	mapInlined           // the returned edit replaces the call
	mapRedirected        // the call now goes to the map type's function
)

// mapHelper rewrites map helper call i as do_misc_fixups does when the
// map is known.
func (f *Fixups) mapHelper(p *ir.Program, i int, st kstate, ctx *pipeline.Context) (edit, int, error) {
	ins := p.Insns[i]
	m := st[ir.R1]
	switch m.state {
	case kvNonConst:
		return edit{}, mapGeneric, nil // different maps: the generic helper
	case kvMap:
	default:
		return edit{}, mapGeneric, &ir.Error{Index: i, Reason: "map helper: the map (r1) may be one the verifier tracks through the stack; which map function it calls cannot be told here"}
	}
	info, ok := f.Options.Maps[m.sym]
	if !ok {
		return edit{}, mapGeneric, &ir.Error{Index: i, Reason: fmt.Sprintf("map helper on %q: the kernel calls the map type's own functions; Options.Maps needs the map's description", m.sym)}
	}
	funcs, ok := mapOps[info.Type]
	if !ok {
		return edit{}, mapGeneric, &ir.Error{Index: i, Reason: fmt.Sprintf("map helper on %q of type %d: only (per-cpu) array, (per-cpu) hash and LRU hash maps are supported", m.sym, info.Type)}
	}
	sym := func(name string) (uint64, uint64, error) {
		base, ok1 := ctx.Symbols[CallBaseSymbol]
		a, ok2 := ctx.Symbols[name]
		if !ok1 || !ok2 {
			return 0, 0, &ir.Error{Index: i, Reason: fmt.Sprintf("map helper on %q: Symbols needs %q and %s", m.sym, name, CallBaseSymbol)}
		}
		return a, base, nil
	}
	a := p.Aux[i]
	mk := func(patch []ir.Instruction) edit {
		aux := make([]ir.Aux, len(patch))
		for k := range patch {
			aux[k] = ir.Aux{OrigIndex: -1, Line: a.Line}
			_, aux[k].ZextDst = def32(patch[k])
		}
		aux[0].OrigIndex = a.OrigIndex
		return edit{At: i, Insns: patch, Aux: aux}
	}
	alu := func(op ir.ALUOp, dst ir.Register, imm int32) ir.Instruction {
		return ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(op), Dst: dst, Imm: imm}
	}
	percpuMov := ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R0, Off: ir.OffPerCPUAddr}
	ldx := func(sz ir.Size, dst, src ir.Register) ir.Instruction {
		return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(sz) | uint8(ir.ModeMEM), Dst: dst, Src: src}
	}
	if ins.Imm == 1 && info.Type == mapTypePercpuArray && info.Flags&bpfFInnerMap == 0 {
		// percpu_array_map_gen_lookup (root: no index mask).
		valueOff := f.Options.ArrayValueOffset
		if valueOff == 0 {
			valueOff = 312
		}
		return mk([]ir.Instruction{
			alu(ir.ALUAdd, ir.R1, valueOff), // r1 += offsetof(struct bpf_array, pptrs)
			ldx(ir.SizeW, ir.R0, ir.R2),     // w0 = *(u32 *)(r2 + 0)
			{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJGE), Dst: ir.R0, Off: 5, Imm: int32(info.MaxEntries)}, // if r0 >= max_entries goto null
			alu(ir.ALULsh, ir.R0, 3), // r0 <<= 3
			{Op: uint8(ir.ClassALU64) | uint8(ir.ALUAdd) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R1}, // r0 += r1
			ldx(ir.SizeDW, ir.R0, ir.R0), // r0 = *(u64 *)(r0 + 0)
			percpuMov,                    // r0 = this_cpu_ptr(r0)
			{Op: ir.OpJA, Off: 1},        // goto out
			alu(ir.ALUMov, ir.R0, 0),     // null: r0 = 0
		}), mapInlined, nil
	}
	if ins.Imm == 1 && info.Type == mapTypeArray && info.Flags&bpfFInnerMap == 0 {
		// array_map_gen_lookup (root: bypass_spec_v1, no index mask).
		valueOff := f.Options.ArrayValueOffset
		if valueOff == 0 {
			valueOff = 312
		}
		elem := (info.ValueSize + 7) &^ 7
		scale := alu(ir.ALUMul, ir.R0, int32(elem))
		if elem&(elem-1) == 0 {
			sh := int32(0)
			for 1<<sh < elem {
				sh++
			}
			scale = alu(ir.ALULsh, ir.R0, sh)
		}
		return mk([]ir.Instruction{
			alu(ir.ALUAdd, ir.R1, valueOff), // r1 += offsetof(struct bpf_array, value)
			{Op: uint8(ir.ClassLDX) | uint8(ir.SizeW) | uint8(ir.ModeMEM), Dst: ir.R0, Src: ir.R2},        // w0 = *(u32 *)(r2 + 0)
			{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJGE), Dst: ir.R0, Off: 3, Imm: int32(info.MaxEntries)}, // if r0 >= max_entries goto null
			scale, // r0 *= elem_size
			{Op: uint8(ir.ClassALU64) | uint8(ir.ALUAdd) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R1}, // r0 += r1
			{Op: ir.OpJA, Off: 1},    // goto out
			alu(ir.ALUMov, ir.R0, 0), // null: r0 = 0
		}), mapInlined, nil
	}
	if ins.Imm == 1 && (info.Type == mapTypeHash || info.Type == mapTypePercpuHash || info.Type == mapTypeLRUHash) {
		// htab_map_gen_lookup.
		fn, base, err := sym("__htab_map_lookup_elem")
		if err != nil {
			return edit{}, mapGeneric, err
		}
		keyOff := f.Options.HtabKeyOffset
		if keyOff == 0 {
			keyOff = 48
		}
		call := ir.Instruction{Op: ir.OpCall}
		d := int64(fn - base)
		if d != int64(int32(d)) {
			return edit{}, mapGeneric, &ir.Error{Index: i, Reason: "__htab_map_lookup_elem out of reach of __bpf_call_base"}
		}
		call.Imm = int32(d)
		add := alu(ir.ALUAdd, ir.R0, keyOff+int32((info.KeySize+7)&^7)) // r0 += offsetof(key) + round_up(key_size, 8)
		if info.Type == mapTypeLRUHash {
			// htab_lru_map_gen_lookup: also set the element's reference bit.
			ref := f.Options.LRURefOffset
			if ref == 0 {
				ref = 35
			}
			return mk([]ir.Instruction{
				call, // r0 = __htab_map_lookup_elem(r1, r2)
				{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ir.R0, Off: 4},                                        // if r0 == 0 goto out
				{Op: uint8(ir.ClassLDX) | uint8(ir.SizeB) | uint8(ir.ModeMEM), Dst: ir.R1, Src: ir.R0, Off: int16(ref)}, // r1 = lru_node.ref
				{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJNE), Dst: ir.R1, Off: 1},                                        // if r1 != 0 goto add
				{Op: uint8(ir.ClassST) | uint8(ir.SizeB) | uint8(ir.ModeMEM), Dst: ir.R0, Off: int16(ref), Imm: 1},      // lru_node.ref = 1
				add,
			}), mapInlined, nil
		}
		if info.Type == mapTypePercpuHash {
			// htab_percpu_map_gen_lookup.
			return mk([]ir.Instruction{
				call, // r0 = __htab_map_lookup_elem(r1, r2)
				{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ir.R0, Off: 3}, // if r0 == 0 goto out
				add,
				ldx(ir.SizeDW, ir.R0, ir.R0), // r0 = *(u64 *)(r0 + 0): the per-cpu pointer
				percpuMov,                    // r0 = this_cpu_ptr(r0)
			}), mapInlined, nil
		}
		return mk([]ir.Instruction{
			call, // r0 = __htab_map_lookup_elem(r1, r2)
			{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ir.R0, Off: 1}, // if r0 == 0 goto out
			add,
		}), mapInlined, nil
	}
	name := funcs[ins.Imm-1]
	fn, base, err := sym(name)
	if err != nil {
		return edit{}, mapGeneric, err
	}
	if err := setCallImm(p, i, fn, base); err != nil {
		return edit{}, mapGeneric, err
	}
	return edit{}, mapRedirected, nil
}
