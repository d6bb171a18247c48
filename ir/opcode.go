package ir

// Opcode byte layout (RFC 9669 §3): the low three bits are the class; the rest
// depends on it. ALU/JMP classes: op(4) | source(1) | class(3). Load/store
// classes: mode(3) | size(2) | class(3).

// Class is the instruction class, opcode & 0x07.
type Class uint8

const (
	ClassLD    Class = 0x00
	ClassLDX   Class = 0x01
	ClassST    Class = 0x02
	ClassSTX   Class = 0x03
	ClassALU   Class = 0x04
	ClassJMP   Class = 0x05
	ClassJMP32 Class = 0x06
	ClassALU64 Class = 0x07
)

// IsALU reports ALU or ALU64.
func (c Class) IsALU() bool { return c == ClassALU || c == ClassALU64 }

// IsJump reports JMP or JMP32.
func (c Class) IsJump() bool { return c == ClassJMP || c == ClassJMP32 }

// IsLoadStore reports LD, LDX, ST or STX.
func (c Class) IsLoadStore() bool { return c <= ClassSTX }

func (c Class) String() string {
	return [...]string{"ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64"}[c&7]
}

// Size is the access size of a load/store, opcode & 0x18.
type Size uint8

const (
	SizeW  Size = 0x00
	SizeH  Size = 0x08
	SizeB  Size = 0x10
	SizeDW Size = 0x18
)

// Bytes is the number of bytes the size accesses.
func (s Size) Bytes() int {
	switch s {
	case SizeB:
		return 1
	case SizeH:
		return 2
	case SizeW:
		return 4
	}
	return 8
}

// SizeOf returns the Size for 1, 2, 4 or 8 bytes.
func SizeOf(bytes int) Size {
	switch bytes {
	case 1:
		return SizeB
	case 2:
		return SizeH
	case 4:
		return SizeW
	}
	return SizeDW
}

// Type is the C type name the verifier log uses for the size (u8...u64).
func (s Size) Type() string {
	return [...]string{"u32", "u16", "u8", "u64"}[s>>3]
}

// Mode is the addressing mode of a load/store, opcode & 0xe0. Some values mean
// different things in different classes (the kernel reuses them for its
// internal PROBE_* modes, which never appear in programs given to the kernel).
type Mode uint8

const (
	ModeIMM    Mode = 0x00 // LD: ld_imm64 (with SizeDW)
	ModeABS    Mode = 0x20 // LD: legacy packet load, absolute offset
	ModeIND    Mode = 0x40 // LD: legacy packet load, indirect
	ModeMEM    Mode = 0x60 // LDX/ST/STX: ordinary memory access
	ModeMEMSX  Mode = 0x80 // LDX: sign-extending load
	ModeATOMIC Mode = 0xc0 // STX: atomic operation, kind in imm
	ModeNOSPEC Mode = 0xc0 // ST: speculation barrier (kernel internal)

	// Kernel-internal modes set by the verifier (convert_ctx_accesses).
	ModeProbeMem     Mode = 0x20 // LDX: BTF pointer load with exception entry
	ModeProbeMemSX   Mode = 0x40 // LDX: sign-extending PROBE_MEM
	ModeProbeMem32   Mode = 0xa0 // LDX/ST/STX: arena access [reg + r12 + off]
	ModeProbeMem32SX Mode = 0xc0 // LDX: sign-extending arena load
	ModeProbeAtomic  Mode = 0xe0 // STX: atomic on arena memory
)

// Source selects the second operand of ALU and JMP instructions, opcode & 0x08.
type Source uint8

const (
	SourceK Source = 0x00 // immediate
	SourceX Source = 0x08 // register
)

// ALUOp is the operation of an ALU/ALU64 instruction, opcode & 0xf0.
type ALUOp uint8

const (
	ALUAdd  ALUOp = 0x00
	ALUSub  ALUOp = 0x10
	ALUMul  ALUOp = 0x20
	ALUDiv  ALUOp = 0x30
	ALUOr   ALUOp = 0x40
	ALUAnd  ALUOp = 0x50
	ALULsh  ALUOp = 0x60
	ALURsh  ALUOp = 0x70
	ALUNeg  ALUOp = 0x80
	ALUMod  ALUOp = 0x90
	ALUXor  ALUOp = 0xa0
	ALUMov  ALUOp = 0xb0
	ALUArsh ALUOp = 0xc0
	ALUEnd  ALUOp = 0xd0
)

// JumpOp is the operation of a JMP/JMP32 instruction, opcode & 0xf0.
type JumpOp uint8

const (
	JumpJA    JumpOp = 0x00
	JumpJEQ   JumpOp = 0x10
	JumpJGT   JumpOp = 0x20
	JumpJGE   JumpOp = 0x30
	JumpJSET  JumpOp = 0x40
	JumpJNE   JumpOp = 0x50
	JumpJSGT  JumpOp = 0x60
	JumpJSGE  JumpOp = 0x70
	JumpCall  JumpOp = 0x80
	JumpExit  JumpOp = 0x90
	JumpJLT   JumpOp = 0xa0
	JumpJLE   JumpOp = 0xb0
	JumpJSLT  JumpOp = 0xc0
	JumpJSLE  JumpOp = 0xd0
	JumpJCOND JumpOp = 0xe0 // may_goto (src_reg = 0)
)

// IsConditional reports the comparison jumps (everything but JA, CALL, EXIT, JCOND).
func (op JumpOp) IsConditional() bool {
	switch op {
	case JumpJA, JumpCall, JumpExit, JumpJCOND:
		return false
	}
	return op <= JumpJSLE
}

// Byte-order conversions (ALU END): the source bit selects the target order.
const (
	EndToLE Source = 0x00
	EndToBE Source = 0x08
)

// Atomic operations, in the imm field of STX ATOMIC / PROBE_ATOMIC.
const (
	AtomicAdd      int32 = 0x00
	AtomicOr       int32 = 0x40
	AtomicAnd      int32 = 0x50
	AtomicXor      int32 = 0xa0
	AtomicFetch    int32 = 0x01
	AtomicXchg     int32 = 0xe0 | AtomicFetch
	AtomicCmpXchg  int32 = 0xf0 | AtomicFetch
	AtomicLoadAcq  int32 = 0x100
	AtomicStoreRel int32 = 0x110
)

// Pseudo sources of ld_imm64 (src_reg).
const (
	PseudoNone        Register = 0 // plain 64-bit constant
	PseudoMapFD       Register = 1 // imm = map fd
	PseudoMapValue    Register = 2 // imm = map fd, second imm = offset into value
	PseudoBTFID       Register = 3 // imm = BTF id of a kernel variable
	PseudoFunc        Register = 4 // imm = relative instruction offset of a function
	PseudoMapIdx      Register = 5 // imm = index into fd_array
	PseudoMapIdxValue Register = 6 // imm = index into fd_array, second imm = offset
)

// Call sources (src_reg of JMP CALL).
const (
	CallHelper Register = 0 // imm = helper id (or, after fixup, func - __bpf_call_base)
	CallLocal  Register = 1 // bpf-to-bpf: imm = relative instruction offset of the callee
	CallKfunc  Register = 2 // imm = BTF id of the kernel function
)

// Special ALU offsets.
const (
	OffSigned        int16 = 1  // sdiv/smod
	OffAddrSpaceCast int16 = 1  // ALU64 MOV X: addr_space_cast, imm = dst_as<<16 | src_as
	OffPerCPUAddr    int16 = -1 // ALU64 MOV X: dst = src + this_cpu_off (kernel internal)
)

// Address spaces used by addr_space_cast.
const (
	AddrSpaceKernel = 0
	AddrSpaceArena  = 1
	CastToKernel    = AddrSpaceArena       // imm: 0<<16 | 1
	CastToUser      = AddrSpaceArena << 16 // imm: 1<<16 | 0
)

// Well-known complete opcodes.
const (
	OpLdImm64 uint8 = uint8(ClassLD) | uint8(SizeDW) | uint8(ModeIMM) // 0x18
	OpCall    uint8 = uint8(ClassJMP) | uint8(JumpCall)               // 0x85
	OpCallX   uint8 = uint8(ClassJMP) | uint8(JumpCall) | uint8(SourceX)
	OpExit    uint8 = uint8(ClassJMP) | uint8(JumpExit) // 0x95
	OpJA      uint8 = uint8(ClassJMP) | uint8(JumpJA)   // 0x05
	OpGotoL   uint8 = uint8(ClassJMP32) | uint8(JumpJA) // 0x06
	OpMayGoto uint8 = uint8(ClassJMP) | uint8(JumpJCOND)
	OpNospec  uint8 = uint8(ClassST) | uint8(ModeNOSPEC)
	// OpTailCall is the kernel-internal tail call (BPF_JMP|BPF_TAIL_CALL, 0xf0).
	OpTailCall uint8 = uint8(ClassJMP) | 0xf0
)

// HelperTailCall is the helper id of bpf_tail_call; the verifier rewrites a
// call to it into OpTailCall.
const HelperTailCall = 12
