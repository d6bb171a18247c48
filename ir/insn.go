package ir

import "encoding/binary"

// InsnSize is the size of one encoded instruction slot.
const InsnSize = 8

// MaxInsns is the kernel's limit on program length (BPF_COMPLEXITY_LIMIT_INSNS).
const MaxInsns = 1_000_000

// Instruction is one 8-byte slot, exactly the kernel's struct bpf_insn. A
// ld_imm64 occupies two slots: the first holds the opcode and the low 32 bits
// of the constant, the second has opcode 0 and the high 32 bits in Imm.
type Instruction struct {
	Op  uint8
	Dst Register
	Src Register
	Off int16
	Imm int32
}

// Class returns the instruction class.
func (i Instruction) Class() Class { return Class(i.Op & 0x07) }

// Size returns the access size of a load/store.
func (i Instruction) Size() Size { return Size(i.Op & 0x18) }

// Mode returns the addressing mode of a load/store.
func (i Instruction) Mode() Mode { return Mode(i.Op & 0xe0) }

// Source returns the K/X bit of an ALU or jump instruction.
func (i Instruction) Source() Source { return Source(i.Op & 0x08) }

// ALUOp returns the operation of an ALU/ALU64 instruction.
func (i Instruction) ALUOp() ALUOp { return ALUOp(i.Op & 0xf0) }

// JumpOp returns the operation of a JMP/JMP32 instruction.
func (i Instruction) JumpOp() JumpOp { return JumpOp(i.Op & 0xf0) }

// IsLdImm64 reports the first slot of a 16-byte ld_imm64.
func (i Instruction) IsLdImm64() bool { return i.Op == OpLdImm64 }

// IsExit reports BPF_EXIT.
func (i Instruction) IsExit() bool { return i.Op == OpExit }

// IsCall reports a helper, kfunc or bpf-to-bpf call (not callx, not tail call).
func (i Instruction) IsCall() bool { return i.Op == OpCall }

// IsCallX reports an indirect call through a register.
func (i Instruction) IsCallX() bool { return i.Op == OpCallX }

// IsPseudoCall reports a bpf-to-bpf call.
func (i Instruction) IsPseudoCall() bool { return i.Op == OpCall && i.Src == CallLocal }

// IsKfuncCall reports a call of a kernel function by BTF id.
func (i Instruction) IsKfuncCall() bool { return i.Op == OpCall && i.Src == CallKfunc }

// IsHelperCall reports a call of a helper by id.
func (i Instruction) IsHelperCall() bool { return i.Op == OpCall && i.Src == CallHelper }

// IsTailCall reports the kernel-internal tail call instruction, or a call of
// the bpf_tail_call helper before the verifier rewrote it.
func (i Instruction) IsTailCall() bool {
	return i.Op == OpTailCall || (i.IsHelperCall() && i.Imm == HelperTailCall)
}

// IsPseudoFunc reports a ld_imm64 that loads the address of a BPF function.
func (i Instruction) IsPseudoFunc() bool { return i.Op == OpLdImm64 && i.Src == PseudoFunc }

// IsAddrSpaceCast reports addr_space_cast (ALU64 MOV X with off 1).
func (i Instruction) IsAddrSpaceCast() bool {
	return i.Op == uint8(ClassALU64)|uint8(ALUMov)|uint8(SourceX) && i.Off == OffAddrSpaceCast
}

// IsCastToUser reports addr_space_cast from the arena to user space (imm 1<<16).
func (i Instruction) IsCastToUser() bool { return i.IsAddrSpaceCast() && i.Imm == CastToUser }

// IsCastToKernel reports addr_space_cast from user space into the arena (imm 1).
func (i Instruction) IsCastToKernel() bool { return i.IsAddrSpaceCast() && i.Imm == CastToKernel }

// IsPerCPUAddr reports the kernel-internal per-cpu address move (ALU64 MOV X, off -1).
func (i Instruction) IsPerCPUAddr() bool {
	return i.Op == uint8(ClassALU64)|uint8(ALUMov)|uint8(SourceX) && i.Off == OffPerCPUAddr
}

// IsZextReg reports the verifier's explicit zero-extension BPF_ZEXT_REG
// (ALU MOV X, dst == src, imm 1).
func (i Instruction) IsZextReg() bool {
	return i.Op == uint8(ClassALU)|uint8(ALUMov)|uint8(SourceX) && i.Dst == i.Src && i.Imm == 1
}

// IsAtomic reports STX ATOMIC or PROBE_ATOMIC.
func (i Instruction) IsAtomic() bool {
	return i.Class() == ClassSTX && (i.Mode() == ModeATOMIC || i.Mode() == ModeProbeAtomic)
}

// IsJumpWithOffset reports a jump whose target is pc+off+1 (JA, conditionals,
// may_goto) or, for gotol, pc+imm+1. Calls and exits are excluded.
func (i Instruction) IsJumpWithOffset() bool {
	c := i.Class()
	if !c.IsJump() {
		return false
	}
	op := i.JumpOp()
	switch {
	case op == JumpCall || op == JumpExit:
		return false
	case i.Op == OpTailCall:
		return false
	case op == JumpJA && i.Source() == SourceX:
		return false // gotox: indirect jump through a register
	}
	return true
}

// JumpDelta returns the relative jump distance of a jump (off, or imm for
// gotol) or of a bpf-to-bpf call / pseudo-func load (imm).
func (i Instruction) JumpDelta() int64 {
	if i.Op == OpGotoL || i.IsPseudoCall() || i.IsPseudoFunc() {
		return int64(i.Imm)
	}
	return int64(i.Off)
}

// UsesImmDelta reports whether JumpDelta lives in Imm rather than Off.
func (i Instruction) UsesImmDelta() bool {
	return i.Op == OpGotoL || i.IsPseudoCall() || i.IsPseudoFunc()
}

// Is32 reports an ALU (32-bit) or JMP32 instruction.
func (i Instruction) Is32() bool { return i.Class() == ClassALU || i.Class() == ClassJMP32 }

// AppendBinary appends the little-endian encoding of one slot.
func (i Instruction) AppendBinary(b []byte) []byte {
	return append(b, i.Op, uint8(i.Dst&0xf)|uint8(i.Src&0xf)<<4,
		byte(i.Off), byte(uint16(i.Off)>>8),
		byte(i.Imm), byte(uint32(i.Imm)>>8), byte(uint32(i.Imm)>>16), byte(uint32(i.Imm)>>24))
}

// decodeSlot reads one slot without validation.
func decodeSlot(b []byte) Instruction {
	return Instruction{
		Op:  b[0],
		Dst: Register(b[1] & 0xf),
		Src: Register(b[1] >> 4),
		Off: int16(binary.LittleEndian.Uint16(b[2:])),
		Imm: int32(binary.LittleEndian.Uint32(b[4:])),
	}
}

// Imm64 returns the 64-bit constant of a ld_imm64 given its second slot.
func Imm64(first, second Instruction) uint64 {
	return uint64(uint32(first.Imm)) | uint64(uint32(second.Imm))<<32
}

// LdImm64 returns the two slots of a plain ld_imm64 dst = v.
func LdImm64(dst Register, v uint64) [2]Instruction {
	return [2]Instruction{
		{Op: OpLdImm64, Dst: dst, Imm: int32(uint32(v))},
		{Imm: int32(uint32(v >> 32))},
	}
}
