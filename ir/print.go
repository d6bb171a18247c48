package ir

import (
	"fmt"
	"strings"
)

// The printer renders instructions in the kernel's verifier-log syntax,
// exactly as print_bpf_insn in kernel/bpf/disasm.c (Linux 6.18) does, and
// programs as `bpftool prog dump xlated` lists them. The kernel's hooks are
// kept: a call-name callback (cb_call) and a ld_imm64 value callback
// (cb_imm). With no options the printer behaves like bpftool's xlated dumper
// without kernel symbols: helper calls by id are named from the kernel's
// helper table, ld_imm64 of maps print as map[id:N], map[id:N][0]+off,
// map[idx:N]+off, functions as subprog[+N], and everything else as the
// kernel prints it. Where the kernel has no text of its own (it prints
// BUG_... for its internal PROBE_* modes: bpf_insn_prepare_dump turns
// PROBE_MEM and PROBE_MEM32 back into plain loads and stores for a dump, but
// PROBE_MEMSX, PROBE_MEM32SX and PROBE_ATOMIC show, as BUG_ldx_c1 or BUG_fb;
// and "if r0 (null) ..." for the internal tail-call opcode, which a dump
// shows as a call of bpf_tail_call) this printer prints the plain form with
// a "probe_mem"/"probe_mem32sx"/... annotation, or "tail_call", unless
// PrintOptions.KernelInternal asks for the kernel's text.

// PrintOptions are the printer's hooks; nil fields use the defaults.
type PrintOptions struct {
	// CallName names the callee of the call at slot i, as the kernel's
	// cb_call: "" falls back to the kernel's own text ("unknown" for a
	// helper it cannot name, "%+d" for a bpf-to-bpf call,
	// "kernel-function" for a kfunc). Helper calls whose imm is a known
	// helper id never reach it, as in the kernel.
	CallName func(p *Program, i int) string
	// ImmText renders the 64-bit value of the ld_imm64 at slot i, as the
	// kernel's cb_imm. "" falls back to the default (bpftool's print_imm).
	ImmText func(p *Program, i int, v uint64) string
	// KernelImm prints every ld_imm64 as 0x%llx (the kernel's text when no
	// cb_imm is installed, e.g. in the verifier log) instead of bpftool's
	// map[...] forms.
	KernelImm bool
	// HidePointers prints ld_imm64 of maps and BTF ids as 0, as the kernel
	// does when the reader may not see kernel pointers.
	HidePointers bool
	// KernelInternal prints the kernel-internal opcodes exactly as the
	// kernel's printer does (BUG_ldx_c1, BUG_fb, "if r0 (null) ..." for
	// the tail call) instead of the annotated readable forms.
	KernelInternal bool
}

// HelperName returns the kernel's name for a helper id ("bpf_" + the
// BPF_FUNC_ name) and whether the id is known.
func HelperName(id int32) (string, bool) {
	if id >= 0 && int(id) < len(helperNames) && helperNames[id] != "" {
		return helperNames[id], true
	}
	return "", false
}

// Format returns the text of instruction i in the kernel's verifier-log
// syntax, without the "(op) " column, e.g. "r0 = *(u32 *)(r1 +4)". For the
// second slot of a ld_imm64, which the kernel never prints, it returns
// "(ld_imm64 second half)".
func (p *Program) Format(i int) string { return p.FormatWith(i, nil) }

// FormatWith is Format with printer options.
func (p *Program) FormatWith(i int, o *PrintOptions) string {
	if i > 0 && p.isSecondHalf(i) {
		return "(ld_imm64 second half)"
	}
	s := p.KernelText(i, o)
	if len(s) > 5 && s[0] == '(' && s[3] == ')' && s[4] == ' ' {
		return s[5:]
	}
	return s
}

// String lists the program as `bpftool prog dump xlated` does: "%4d: " and
// the kernel's text per instruction, the second slot of a ld_imm64 skipped.
func (p *Program) String() string { return p.StringWith(nil) }

// StringWith is String with printer options.
func (p *Program) StringWith(o *PrintOptions) string {
	var b strings.Builder
	for i := 0; i < len(p.Insns); i++ {
		fmt.Fprintf(&b, "% 4d: %s\n", i, p.KernelText(i, o))
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	return b.String()
}

// Lines returns one string per printed instruction (the second slot of a
// ld_imm64 has none) with its slot index, as String would print them.
func (p *Program) Lines(o *PrintOptions) (index []int, text []string) {
	for i := 0; i < len(p.Insns); i++ {
		index = append(index, i)
		text = append(text, p.KernelText(i, o))
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	return index, text
}

var aluString = [16]string{
	"+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=", "endian", "", "",
}

var aluSignString = [16]string{3: "s/=", 9: "s%="}

var movsxString = [4]string{0: "(s8)", 1: "(s16)", 3: "(s32)"}

var atomicALUString = [16]string{0: "add", 5: "and", 4: "or", 10: "xor"}

var ldsxString = [4]string{0: "s32", 1: "s16", 2: "s8"}

var jmpString = [16]string{
	0x0: "jmp", 0x1: "==", 0x2: ">", 0xa: "<", 0x3: ">=", 0xb: "<=", 0x4: "&", 0x5: "!=",
	0x6: "s>", 0xc: "s<", 0x7: "s>=", 0xd: "s<=", 0x8: "call", 0x9: "exit",
}

// cstr is what printk prints for a string table entry: "(null)" for a hole.
func cstr(s string) string {
	if s == "" {
		return "(null)"
	}
	return s
}

// KernelText returns the kernel's full text of instruction i, including the
// "(op) " column (the kernel's BUG_... texts have none).
func (p *Program) KernelText(i int, o *PrintOptions) string {
	if o == nil {
		o = &PrintOptions{}
	}
	ins := p.Insns[i]
	class := ins.Class()
	code := ins.Op
	wr := func(c Class) byte {
		if c == ClassALU || c == ClassJMP32 {
			return 'w'
		}
		return 'r'
	}

	switch class {
	case ClassALU, ClassALU64:
		w := wr(class)
		op := ins.ALUOp()
		switch {
		case op == ALUEnd && class == ClassALU64:
			// print_bpf_bswap_insn
			return fmt.Sprintf("(%02x) r%d = bswap%d r%d", code, ins.Dst, ins.Imm, ins.Dst)
		case op == ALUEnd:
			// print_bpf_end_insn
			order := "le"
			if ins.Source() == EndToBE {
				order = "be"
			}
			return fmt.Sprintf("(%02x) r%d = %s%d r%d", code, ins.Dst, order, ins.Imm, ins.Dst)
		case op == ALUNeg:
			return fmt.Sprintf("(%02x) %c%d = -%c%d", code, w, ins.Dst, w, ins.Dst)
		case ins.IsAddrSpaceCast():
			return fmt.Sprintf("(%02x) r%d = addr_space_cast(r%d, %d, %d)", code, ins.Dst, ins.Src, uint32(ins.Imm)>>16, uint16(ins.Imm))
		case ins.IsPerCPUAddr():
			return fmt.Sprintf("(%02x) r%d = &(void __percpu *)(r%d)", code, ins.Dst, ins.Src)
		}
		opText := aluString[op>>4]
		if (op == ALUDiv || op == ALUMod) && ins.Off == OffSigned {
			opText = aluSignString[op>>4]
		}
		opText = cstr(opText)
		if ins.Source() == SourceX {
			movsx := ""
			if op == ALUMov && (ins.Off == 8 || ins.Off == 16 || ins.Off == 32) {
				movsx = movsxString[(ins.Off>>3)-1]
			}
			return fmt.Sprintf("(%02x) %c%d %s %s%c%d", code, w, ins.Dst, opText, movsx, w, ins.Src)
		}
		return fmt.Sprintf("(%02x) %c%d %s %d", code, w, ins.Dst, opText, ins.Imm)

	case ClassSTX:
		size := ins.Size().Type()
		mode := ins.Mode()
		suffix := ""
		switch mode {
		case ModeMEM:
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = r%d", code, size, ins.Dst, ins.Off, ins.Src)
		case ModeProbeMem32:
			if o.KernelInternal {
				return fmt.Sprintf("BUG_%02x", code)
			}
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = r%d probe_mem32", code, size, ins.Dst, ins.Off, ins.Src)
		case ModeATOMIC:
		case ModeProbeAtomic:
			if o.KernelInternal {
				return fmt.Sprintf("BUG_%02x", code)
			}
			suffix = " probe_atomic"
		default:
			return fmt.Sprintf("BUG_%02x", code)
		}
		a64 := ""
		if ins.Size() == SizeDW {
			a64 = "64"
		}
		switch ins.Imm {
		case AtomicAdd, AtomicAnd, AtomicOr, AtomicXor:
			return fmt.Sprintf("(%02x) lock *(%s *)(r%d %+d) %s r%d%s", code, size, ins.Dst, ins.Off, aluString[ins.Imm>>4], ins.Src, suffix)
		case AtomicAdd | AtomicFetch, AtomicAnd | AtomicFetch, AtomicOr | AtomicFetch, AtomicXor | AtomicFetch:
			return fmt.Sprintf("(%02x) r%d = atomic%s_fetch_%s((%s *)(r%d %+d), r%d)%s", code, ins.Src, a64,
				atomicALUString[(ins.Imm&0xf0)>>4], size, ins.Dst, ins.Off, ins.Src, suffix)
		case AtomicCmpXchg:
			return fmt.Sprintf("(%02x) r0 = atomic%s_cmpxchg((%s *)(r%d %+d), r0, r%d)%s", code, a64, size, ins.Dst, ins.Off, ins.Src, suffix)
		case AtomicXchg:
			return fmt.Sprintf("(%02x) r%d = atomic%s_xchg((%s *)(r%d %+d), r%d)%s", code, ins.Src, a64, size, ins.Dst, ins.Off, ins.Src, suffix)
		case AtomicLoadAcq:
			return fmt.Sprintf("(%02x) r%d = load_acquire((%s *)(r%d %+d))%s", code, ins.Dst, size, ins.Src, ins.Off, suffix)
		case AtomicStoreRel:
			return fmt.Sprintf("(%02x) store_release((%s *)(r%d %+d), r%d)%s", code, size, ins.Dst, ins.Off, ins.Src, suffix)
		}
		return fmt.Sprintf("BUG_%02x", code)

	case ClassST:
		switch ins.Mode() {
		case ModeMEM:
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = %d", code, ins.Size().Type(), ins.Dst, ins.Off, ins.Imm)
		case ModeProbeMem32:
			if o.KernelInternal {
				return fmt.Sprintf("BUG_st_%02x", code)
			}
			return fmt.Sprintf("(%02x) *(%s *)(r%d %+d) = %d probe_mem32", code, ins.Size().Type(), ins.Dst, ins.Off, ins.Imm)
		case ModeNOSPEC:
			return fmt.Sprintf("(%02x) nospec", code)
		}
		return fmt.Sprintf("BUG_st_%02x", code)

	case ClassLDX:
		typ := ins.Size().Type()
		note := ""
		switch ins.Mode() {
		case ModeMEM:
		case ModeMEMSX:
			typ = cstr(ldsxString[ins.Size()>>3])
		case ModeProbeMem:
			note = " probe_mem"
		case ModeProbeMemSX:
			typ, note = cstr(ldsxString[ins.Size()>>3]), " probe_memsx"
		case ModeProbeMem32:
			note = " probe_mem32"
		case ModeProbeMem32SX:
			typ, note = cstr(ldsxString[ins.Size()>>3]), " probe_mem32sx"
		default:
			return fmt.Sprintf("BUG_ldx_%02x", code)
		}
		if note != "" && o.KernelInternal {
			return fmt.Sprintf("BUG_ldx_%02x", code)
		}
		return fmt.Sprintf("(%02x) r%d = *(%s *)(r%d %+d)%s", code, ins.Dst, typ, ins.Src, ins.Off, note)

	case ClassLD:
		switch {
		case ins.Mode() == ModeABS:
			return fmt.Sprintf("(%02x) r0 = *(%s *)skb[%d]", code, ins.Size().Type(), ins.Imm)
		case ins.Mode() == ModeIND:
			return fmt.Sprintf("(%02x) r0 = *(%s *)skb[r%d + %d]", code, ins.Size().Type(), ins.Src, ins.Imm)
		case ins.Mode() == ModeIMM && ins.Size() == SizeDW:
			var next Instruction
			if i+1 < len(p.Insns) {
				next = p.Insns[i+1]
			}
			return fmt.Sprintf("(%02x) r%d = %s", code, ins.Dst, p.immText(i, ins, next, o))
		}
		return fmt.Sprintf("BUG_ld_%02x", code)
	}

	// JMP, JMP32.
	op := ins.JumpOp()
	w := wr(class)
	switch {
	case op == JumpCall:
		if ins.Src == CallLocal {
			return fmt.Sprintf("(%02x) call pc%s", code, p.callName(i, ins, o))
		}
		return fmt.Sprintf("(%02x) call %s#%d", code, p.callName(i, ins, o), ins.Imm)
	case code == OpJA:
		return fmt.Sprintf("(%02x) goto pc%+d", code, ins.Off)
	case code == OpJA|uint8(SourceX):
		return fmt.Sprintf("(%02x) gotox r%d", code, ins.Dst)
	case code == OpMayGoto && ins.Src == 0:
		return fmt.Sprintf("(%02x) may_goto pc%+d", code, ins.Off)
	case code == OpGotoL:
		return fmt.Sprintf("(%02x) gotol pc%+d", code, ins.Imm)
	case code == OpExit:
		return fmt.Sprintf("(%02x) exit", code)
	case code == OpTailCall && !o.KernelInternal:
		return fmt.Sprintf("(%02x) tail_call", code)
	case ins.Source() == SourceX:
		return fmt.Sprintf("(%02x) if %c%d %s %c%d goto pc%+d", code, w, ins.Dst, cstr(jmpString[op>>4]), w, ins.Src, ins.Off)
	}
	return fmt.Sprintf("(%02x) if %c%d %s 0x%x goto pc%+d", code, w, ins.Dst, cstr(jmpString[op>>4]), uint32(ins.Imm), ins.Off)
}

// callName is the kernel's __func_get_name.
func (p *Program) callName(i int, ins Instruction, o *PrintOptions) string {
	if ins.Src == 0 {
		if name, ok := HelperName(ins.Imm); ok {
			return name
		}
	}
	if o.CallName != nil {
		if s := o.CallName(p, i); s != "" {
			return s
		}
	}
	switch ins.Src {
	case CallLocal:
		return fmt.Sprintf("%+d", ins.Imm)
	case CallKfunc:
		return "kernel-function"
	case CallHelper:
		return "unknown"
	}
	return "" // the kernel's tmp buffer, left empty for other sources
}

// immText is the kernel's __func_imm_name with bpftool's print_imm as the
// default callback.
func (p *Program) immText(i int, ins, next Instruction, o *PrintOptions) string {
	v := Imm64(ins, next)
	switch ins.Src {
	case PseudoMapFD, PseudoMapValue, PseudoMapIdx, PseudoMapIdxValue, PseudoBTFID:
		if o.HidePointers {
			v = 0
		}
	}
	if o.ImmText != nil {
		if s := o.ImmText(p, i, v); s != "" {
			return s
		}
	}
	if o.KernelImm {
		return fmt.Sprintf("0x%x", v)
	}
	switch ins.Src {
	case PseudoMapFD:
		return fmt.Sprintf("map[id:%d]", uint32(ins.Imm))
	case PseudoMapValue:
		return fmt.Sprintf("map[id:%d][0]+%d", uint32(ins.Imm), uint32(next.Imm))
	case PseudoMapIdxValue:
		return fmt.Sprintf("map[idx:%d]+%d", uint32(ins.Imm), uint32(next.Imm))
	case PseudoFunc:
		return fmt.Sprintf("subprog[%+d]", ins.Imm)
	}
	return fmt.Sprintf("0x%x", v)
}

// BpftoolCalls returns a CallName hook that names calls as bpftool's
// print_call does for a program read back from the kernel: callBase is the
// address of __bpf_call_base, ksyms the program's jited_ksyms (one address
// per function; nil for an interpreted program), and sym resolves an exact
// kernel address to its symbol ("" when there is none).
func BpftoolCalls(callBase uint64, ksyms []uint64, sym func(addr uint64) string) func(p *Program, i int) string {
	return func(p *Program, i int) string {
		ins := p.Insns[i]
		addr := callBase + uint64(int64(ins.Imm))
		if ins.Src == CallLocal && ksyms != nil && uint32(ins.Imm) < uint32(len(ksyms)) {
			addr = ksyms[ins.Imm]
		}
		name := sym(addr)
		if ins.Src == CallLocal {
			switch {
			case len(ksyms) == 0:
				return fmt.Sprintf("%+d", ins.Off)
			case name != "":
				return fmt.Sprintf("%+d#%s", ins.Off, name)
			}
			return fmt.Sprintf("%+d#0x%x", ins.Off, addr)
		}
		if name != "" {
			return name
		}
		return fmt.Sprintf("0x%x", addr)
	}
}
