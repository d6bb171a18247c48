package ir

import "fmt"

// Validate checks every instruction of p the way the kernel checks a program's
// encoding before verification: known opcodes, reserved fields zero,
// registers in range, no writes to r10, well-formed ld_imm64 pairs, jump and
// call targets inside the program and not into the second half of a
// ld_imm64, and a last instruction that is an exit or a jump. It does not
// verify semantics (types, bounds, termination).
func Validate(p *Program, opts DecodeOptions) error {
	n := len(p.Insns)
	if n == 0 {
		return &Error{Index: -1, Reason: "program is empty"}
	}
	if n > MaxInsns {
		return &Error{Index: -1, Reason: fmt.Sprintf("program has %d instructions, more than the limit of %d", n, MaxInsns)}
	}
	if len(p.Aux) != n {
		return &Error{Index: -1, Reason: fmt.Sprintf("program has %d aux entries for %d instructions", len(p.Aux), n)}
	}
	v := validator{opts: opts}
	for i := 0; i < n; i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			if i+1 >= n {
				return errAt(i, "ld_imm64 is missing its second half")
			}
			if err := v.ldImm64(ins, p.Insns[i+1]); err != nil {
				return errAt(i, "%v", err)
			}
			i++
			continue
		}
		if fastValid(ins) {
			continue
		}
		if err := v.insn(ins); err != nil {
			return errAt(i, "%v", err)
		}
	}
	// Targets, in a second sweep so that "into the middle of a ld_imm64" can
	// be told from "out of range".
	second := make([]bool, n)
	for i := 0; i < n; i++ {
		if p.Insns[i].IsLdImm64() {
			second[i+1] = true
			i++
		}
	}
	for i := 0; i < n; i++ {
		ins := p.Insns[i]
		if second[i] {
			continue
		}
		if !(ins.IsJumpWithOffset() || ins.IsPseudoCall() || ins.IsPseudoFunc()) {
			continue
		}
		what := "jump"
		if ins.IsPseudoCall() {
			what = "call"
		} else if ins.IsPseudoFunc() {
			what = "function reference"
		}
		t := p.Target(i)
		if t < 0 || t >= n {
			return errAt(i, "%s target %d (pc%+d) is outside the program of %d instructions", what, t, ins.JumpDelta()+1, n)
		}
		if second[t] {
			return errAt(i, "%s target %d is the second half of a ld_imm64", what, t)
		}
	}
	last := p.Insns[n-1]
	if second[n-1] || !(last.IsExit() || last.Op == OpJA || last.Op == OpGotoL) {
		return errAt(n-1, "last instruction is not an exit or jump")
	}
	return nil
}

type validator struct{ opts DecodeOptions }

func (v validator) reg(r Register, what string) error {
	if r > MaxRegister && !(v.opts.Xlated && r == RAX) {
		return fmt.Errorf("invalid %s register r%d", what, uint8(r))
	}
	return nil
}

func (v validator) regs(ins Instruction) error {
	if err := v.reg(ins.Dst, "destination"); err != nil {
		return err
	}
	return v.reg(ins.Src, "source")
}

func writesR10(Instruction) error {
	return fmt.Errorf("frame pointer r10 is read only")
}

func reserved(field string) error {
	return fmt.Errorf("reserved field %s is set", field)
}

func (v validator) insn(ins Instruction) error {
	switch ins.Class() {
	case ClassALU, ClassALU64:
		return v.alu(ins)
	case ClassJMP, ClassJMP32:
		return v.jump(ins)
	case ClassLD:
		return v.ld(ins)
	case ClassLDX:
		return v.ldx(ins)
	case ClassST:
		return v.st(ins)
	case ClassSTX:
		return v.stx(ins)
	}
	return nil
}

func (v validator) alu(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	is64 := ins.Class() == ClassALU64
	op := ins.ALUOp()
	if op > ALUEnd {
		return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
	}
	if ins.Dst == R10 {
		return writesR10(ins)
	}
	switch op {
	case ALUEnd:
		if is64 && ins.Source() != EndToLE {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Src != 0 {
			return reserved("src_reg")
		}
		if ins.Off != 0 {
			return reserved("off")
		}
		if ins.Imm != 16 && ins.Imm != 32 && ins.Imm != 64 {
			return fmt.Errorf("invalid byte swap width %d", ins.Imm)
		}
		return nil
	case ALUNeg:
		if ins.Source() != SourceK || ins.Src != 0 || ins.Off != 0 || ins.Imm != 0 {
			return reserved("of neg")
		}
		return nil
	case ALUMov:
		if ins.Source() == SourceK {
			if ins.Src != 0 {
				return reserved("src_reg")
			}
			if ins.Off != 0 {
				return reserved("off")
			}
			return nil
		}
		switch {
		case ins.Off == 0:
			if ins.Imm != 0 && !(v.opts.Xlated && !is64 && ins.Imm == 1 && ins.Dst == ins.Src) {
				return reserved("imm")
			}
		case ins.Off == 8 || ins.Off == 16 || (ins.Off == 32 && is64):
			if ins.Imm != 0 {
				return reserved("imm")
			}
		case is64 && ins.Off == OffAddrSpaceCast:
			if ins.Imm != CastToKernel && ins.Imm != CastToUser {
				return fmt.Errorf("invalid addr_space_cast 0x%x", uint32(ins.Imm))
			}
		case is64 && ins.Off == OffPerCPUAddr && v.opts.Xlated:
			if ins.Imm != 0 {
				return reserved("imm")
			}
		default:
			return reserved("off")
		}
		return nil
	case ALUDiv, ALUMod:
		if ins.Off != 0 && ins.Off != OffSigned {
			return reserved("off")
		}
	default:
		if ins.Off != 0 {
			return reserved("off")
		}
	}
	if ins.Source() == SourceK && ins.Src != 0 {
		return reserved("src_reg")
	}
	if ins.Source() == SourceX && ins.Imm != 0 {
		return reserved("imm")
	}
	return nil
}

func (v validator) jump(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	is32 := ins.Class() == ClassJMP32
	op := ins.JumpOp()
	switch {
	case ins.Op == OpTailCall && v.opts.Xlated:
		if ins.Dst != 0 || ins.Src != 0 || ins.Off != 0 {
			return reserved("of tail call")
		}
		return nil
	case op > JumpJCOND:
		return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
	}
	switch op {
	case JumpJA:
		if ins.Source() == SourceX {
			if is32 || ins.Src != 0 || ins.Off != 0 || ins.Imm != 0 {
				return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
			}
			return nil // gotox dst
		}
		if ins.Dst != 0 || ins.Src != 0 {
			return reserved("register")
		}
		if is32 && ins.Off != 0 {
			return reserved("off")
		}
		if !is32 && ins.Imm != 0 {
			return reserved("imm")
		}
		return nil
	case JumpCall:
		if is32 {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Source() == SourceX {
			// callx: target register in dst_reg (older assemblers) or in
			// imm (LLVM's encoding).
			if ins.Src != 0 || ins.Off != 0 {
				return reserved("of callx")
			}
			if ins.Dst != 0 && ins.Imm != 0 {
				return reserved("imm")
			}
			if ins.Imm < 0 || Register(ins.Imm) > MaxRegister {
				return fmt.Errorf("invalid callx register r%d", ins.Imm)
			}
			return nil
		}
		if ins.Dst != 0 {
			return reserved("dst_reg")
		}
		switch ins.Src {
		case CallHelper, CallLocal:
			// The kernel's xlated dump keeps the callee's relative
			// offset in off of a bpf-to-bpf call.
			if ins.Off != 0 && !(v.opts.Xlated && ins.Src == CallLocal) {
				return reserved("off")
			}
		case CallKfunc:
			// off selects the module BTF (fd_array index); any value.
		default:
			return fmt.Errorf("invalid call source %d", ins.Src)
		}
		return nil
	case JumpExit:
		if is32 || ins.Source() == SourceX {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Dst != 0 || ins.Src != 0 || ins.Off != 0 || ins.Imm != 0 {
			return reserved("of exit")
		}
		return nil
	case JumpJCOND:
		if is32 || ins.Source() == SourceX {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Dst != 0 || ins.Src != 0 || ins.Imm != 0 {
			return reserved("of may_goto")
		}
		return nil
	}
	if ins.Source() == SourceK && ins.Src != 0 {
		return reserved("src_reg")
	}
	if ins.Source() == SourceX && ins.Imm != 0 {
		return reserved("imm")
	}
	return nil
}

func (v validator) ldImm64(first, second Instruction) error {
	if err := v.regs(first); err != nil {
		return err
	}
	if first.Dst == R10 {
		return writesR10(first)
	}
	if first.Off != 0 {
		return reserved("off")
	}
	if first.Src > PseudoMapIdxValue {
		return fmt.Errorf("invalid ld_imm64 pseudo source %d", first.Src)
	}
	if second.Op != 0 || second.Dst != 0 || second.Src != 0 || second.Off != 0 {
		return fmt.Errorf("malformed second half of ld_imm64")
	}
	switch first.Src {
	case PseudoMapFD, PseudoBTFID, PseudoFunc, PseudoMapIdx:
		if second.Imm != 0 && !v.opts.Xlated {
			return fmt.Errorf("ld_imm64 pseudo source %d uses reserved second imm", first.Src)
		}
	}
	return nil
}

func (v validator) ld(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	switch ins.Mode() {
	case ModeIMM:
		if ins.Size() == SizeDW {
			return fmt.Errorf("ld_imm64 is missing its second half")
		}
	case ModeABS, ModeIND:
		if ins.Size() == SizeDW {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Dst != 0 || ins.Off != 0 || (ins.Mode() == ModeABS && ins.Src != 0) {
			return reserved("of legacy packet load")
		}
		return nil
	}
	return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
}

func (v validator) ldx(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	switch ins.Mode() {
	case ModeMEM:
	case ModeMEMSX:
		if ins.Size() == SizeDW {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
	case ModeProbeMem, ModeProbeMem32:
		if !v.opts.Xlated {
			return fmt.Errorf("unknown opcode 0x%02x (kernel-internal mode)", ins.Op)
		}
	case ModeProbeMemSX, ModeProbeMem32SX:
		if !v.opts.Xlated || ins.Size() == SizeDW {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
	default:
		return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
	}
	if ins.Imm != 0 {
		return reserved("imm")
	}
	if ins.Dst == R10 {
		return writesR10(ins)
	}
	return nil
}

func (v validator) st(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	switch ins.Mode() {
	case ModeMEM:
	case ModeProbeMem32:
		if !v.opts.Xlated {
			return fmt.Errorf("unknown opcode 0x%02x (kernel-internal mode)", ins.Op)
		}
	case ModeNOSPEC:
		if !v.opts.Xlated || ins.Size() != SizeW {
			return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
		}
		if ins.Dst != 0 || ins.Src != 0 || ins.Off != 0 || ins.Imm != 0 {
			return reserved("of nospec")
		}
		return nil
	default:
		return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
	}
	if ins.Src != 0 {
		return reserved("src_reg")
	}
	return nil
}

func (v validator) stx(ins Instruction) error {
	if err := v.regs(ins); err != nil {
		return err
	}
	switch ins.Mode() {
	case ModeMEM:
		if ins.Imm != 0 {
			return reserved("imm")
		}
		return nil
	case ModeProbeMem32:
		if !v.opts.Xlated {
			return fmt.Errorf("unknown opcode 0x%02x (kernel-internal mode)", ins.Op)
		}
		if ins.Imm != 0 {
			return reserved("imm")
		}
		return nil
	case ModeATOMIC:
	case ModeProbeAtomic:
		if !v.opts.Xlated {
			return fmt.Errorf("unknown opcode 0x%02x (kernel-internal mode)", ins.Op)
		}
	default:
		return fmt.Errorf("unknown opcode 0x%02x", ins.Op)
	}
	size := ins.Size()
	switch ins.Imm {
	case AtomicAdd, AtomicOr, AtomicAnd, AtomicXor,
		AtomicAdd | AtomicFetch, AtomicOr | AtomicFetch, AtomicAnd | AtomicFetch, AtomicXor | AtomicFetch,
		AtomicXchg, AtomicCmpXchg:
		if size != SizeW && size != SizeDW {
			return fmt.Errorf("invalid atomic operand size %d", size.Bytes())
		}
		if ins.Imm&AtomicFetch != 0 && ins.Src == R10 {
			return writesR10(ins)
		}
	case AtomicLoadAcq:
		if ins.Dst == R10 {
			return writesR10(ins)
		}
	case AtomicStoreRel:
	default:
		return fmt.Errorf("invalid atomic operation 0x%x", uint32(ins.Imm))
	}
	return nil
}

// fastValid accepts, without the full checks, the forms most instructions
// take (and that the full checks accept whatever the options): ALU
// operations other than div/mod/neg/end, movs, and plain loads and stores,
// with in-range registers and zero reserved fields. Anything else returns
// false and goes through validator.insn (TestFastValid checks the subset
// over every opcode).
func fastValid(ins Instruction) bool {
	switch ins.Class() {
	case ClassALU, ClassALU64:
		if ins.Dst >= R10 || ins.Off != 0 {
			return false
		}
		switch ins.ALUOp() {
		case ALUAdd, ALUSub, ALUMul, ALUOr, ALUAnd, ALULsh, ALURsh, ALUXor, ALUArsh, ALUMov:
			if ins.Source() == SourceK {
				return ins.Src == 0
			}
			return ins.Imm == 0 && ins.Src <= R10
		}
	case ClassLDX:
		return ins.Mode() == ModeMEM && ins.Dst < R10 && ins.Src <= R10 && ins.Imm == 0
	case ClassSTX:
		return ins.Mode() == ModeMEM && ins.Dst <= R10 && ins.Src <= R10 && ins.Imm == 0
	case ClassST:
		return ins.Mode() == ModeMEM && ins.Dst <= R10 && ins.Src == 0
	}
	return false
}
