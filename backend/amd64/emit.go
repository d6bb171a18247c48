package amd64

// Low-level x86-64 encoders, one per instruction shape the kernel's JIT
// emits, with the kernel's register numbering: BPF R0..R10, then AX (the
// verifier's BPF_REG_AX, x86 r10), AUX (x86 r11), r9 and r12 for the JIT's
// own use. The helpers reproduce the kernel's choices byte for byte
// (including redundant REX prefixes and always-present displacements).

const (
	regAX  = 11 // BPF_REG_AX -> r10
	regAUX = 12 // AUX_REG -> r11
	regR9  = 13 // X86_REG_R9 -> r9
	regR12 = 14 // X86_REG_R12 -> r12
	numReg = 15
)

// reg2hex is the low three bits of the x86 register number of each register.
var reg2hex = [16]byte{
	0, // R0 rax
	7, // R1 rdi
	6, // R2 rsi
	2, // R3 rdx
	1, // R4 rcx
	0, // R5 r8
	3, // R6 rbx
	5, // R7 r13
	6, // R8 r14
	7, // R9 r15
	5, // R10 rbp
	2, // AX r10
	3, // AUX r11
	1, // r9
	4, // r12
}

// isEreg: the register is r8..r15 and needs a REX extension bit.
var isEreg = [16]bool{5: true, 7: true, 8: true, 9: true, 11: true, 12: true, 13: true, 14: true}

// isEreg8l: the low byte needs a REX prefix (r8b..r15b, sil, dil, bpl).
func isEreg8l(r byte) bool { return isEreg[r&15] || r == 1 || r == 2 || r == 10 }

// x86 condition codes of the short jcc forms.
const (
	jccJB  = 0x72
	jccJAE = 0x73
	jccJE  = 0x74
	jccJNE = 0x75
	jccJBE = 0x76
	jccJA  = 0x77
	jccJL  = 0x7C
	jccJGE = 0x7D
	jccJLE = 0x7E
	jccJG  = 0x7F
)

// nops are the kernel's x86_nops (P6 NOPs), index = length.
var nops = [12][]byte{
	nil,
	{0x90},
	{0x66, 0x90},
	{0x0f, 0x1f, 0x00},
	{0x0f, 0x1f, 0x40, 0x00},
	{0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
	{0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	{0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	{0x66, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	{0x66, 0x66, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
}

func isImm8(v int64) bool    { return v >= -128 && v <= 127 }
func isImm8Jmp(v int64) bool { return v >= -128 && v <= 123 }
func isSimm32(v int64) bool  { return v == int64(int32(v)) }
func isUimm32(v uint64) bool { return v == uint64(uint32(v)) }
func roundUp8(v int32) int32 { return (v + 7) &^ 7 }
func roundUp4(v int) int     { return (v + 3) &^ 3 }
func le32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// add1mod sets REX.B for an extended register.
func add1mod(b byte, r byte) byte {
	if isEreg[r] {
		b |= 1
	}
	return b
}

// add2mod sets REX.B for r1 (r/m) and REX.R for r2 (reg).
func add2mod(b byte, r1, r2 byte) byte {
	if isEreg[r1] {
		b |= 1
	}
	if isEreg[r2] {
		b |= 4
	}
	return b
}

// add3mod sets REX.B for r1 (base), REX.X for index and REX.R for r2 (reg).
func add3mod(b byte, r1, r2, index byte) byte {
	if isEreg[r1] {
		b |= 1
	}
	if isEreg[index] {
		b |= 2
	}
	if isEreg[r2] {
		b |= 4
	}
	return b
}

func add1reg(b byte, r byte) byte       { return b + reg2hex[r] }
func add2reg(b byte, rm, reg byte) byte { return b + reg2hex[rm] + reg2hex[reg]<<3 }

// simpleALU maps BPF ALU op>>4 to the x86 opcode (reg forms) or /digit
// ModRM base (shifts), as the kernel's simple_alu_opcodes.
var simpleALU = [16]byte{
	0x0: 0x01, // add
	0x1: 0x29, // sub
	0x4: 0x09, // or
	0x5: 0x21, // and
	0x6: 0xE0, // shl /4
	0x7: 0xE8, // shr /5
	0xa: 0x31, // xor
	0xc: 0xF8, // sar /7
}

type emitter struct {
	b []byte
}

func (e *emitter) emit(bs ...byte) { e.b = append(e.b, bs...) }

// Fixed-arity emitters (cheaper than the variadic one on the hot path).
func (e *emitter) emit1(a byte)             { e.b = append(e.b, a) }
func (e *emitter) emit2(a, b byte)          { e.b = append(e.b, a, b) }
func (e *emitter) emit3(a, b, c byte)       { e.b = append(e.b, a, b, c) }
func (e *emitter) emit4(a, b, c, d byte)    { e.b = append(e.b, a, b, c, d) }
func (e *emitter) emit5(a, b, c, d, f byte) { e.b = append(e.b, a, b, c, d, f) }

func (e *emitter) emit32(v uint32) { e.b = le32(e.b, v) }

// maybeMod: REX.W (64-bit) with B/R, or a bare REX only when needed.
func (e *emitter) maybeMod(dst, src byte, is64 bool) {
	if is64 {
		e.b = append(e.b, add2mod(0x48, dst, src))
	} else if isEreg[dst] || isEreg[src] {
		e.b = append(e.b, add2mod(0x40, dst, src))
	}
}

// maybe1Mod is maybeMod for one register.
func (e *emitter) maybe1Mod(r byte, is64 bool) {
	if is64 {
		e.b = append(e.b, add1mod(0x48, r))
	} else if isEreg[r] {
		e.b = append(e.b, add1mod(0x40, r))
	}
}

// movReg: mov dst, src (64-bit: 48 89 /r, omitted when dst == src;
// 32-bit: [REX] 89 /r, always emitted: it zero-extends).
func (e *emitter) movReg(is64 bool, dst, src byte) {
	if is64 {
		if dst != src {
			e.emit3(add2mod(0x48, dst, src), 0x89, add2reg(0xC0, dst, src))
		}
		return
	}
	if isEreg[dst] || isEreg[src] {
		e.emit1(add2mod(0x40, dst, src))
	}
	e.emit2(0x89, add2reg(0xC0, dst, src))
}

// mov64: EMIT_mov, mov dst, src (64-bit, omitted when equal).
func (e *emitter) mov64(dst, src byte) { e.movReg(true, dst, src) }

// movImm32: emit_mov_imm32.
//
//	mov r64, simm32   ; 48 C7 C0+r id   (sign_propagate and imm < 0)
//	xor r32, r32      ; [REX] 31 /r     (imm == 0)
//	mov r32, imm32    ; [REX] B8+r id
func (e *emitter) movImm32(signProp bool, dst byte, imm uint32) {
	switch {
	case signProp && int32(imm) < 0:
		e.emit3(add1mod(0x48, dst), 0xC7, add1reg(0xC0, dst))
		e.emit32(imm)
	case imm == 0:
		if isEreg[dst] {
			e.emit1(add2mod(0x40, dst, dst))
		}
		e.emit2(0x31, add2reg(0xC0, dst, dst))
	default:
		if isEreg[dst] {
			e.emit1(add1mod(0x40, dst))
		}
		e.emit1(add1reg(0xB8, dst))
		e.emit32(imm)
	}
}

// movImm64: emit_mov_imm64: mov32 when the value fits u32, sign-extended
// mov when it fits s32, else movabs r64, imm64 (REX.W B8+r io).
func (e *emitter) movImm64(dst byte, v uint64) {
	switch {
	case isUimm32(v):
		e.movImm32(false, dst, uint32(v))
	case isSimm32(int64(v)):
		e.movImm32(true, dst, uint32(v))
	default:
		e.emit2(add1mod(0x48, dst), add1reg(0xB8, dst))
		e.emit32(uint32(v))
		e.emit32(uint32(v >> 32))
	}
}

// movsxReg: emit_movsx_reg.
//
//	movsx r64, r/m8   ; REX.W 0F BE /r
//	movsx r64, r/m16  ; REX.W 0F BF /r
//	movsxd r64, r/m32 ; REX.W 63 /r
//	movsx r32, r/m8   ; REX 0F BE /r (REX always)
//	movsx r32, r/m16  ; [REX] 0F BF /r
func (e *emitter) movsxReg(bits int, is64 bool, dst, src byte) {
	if is64 {
		switch bits {
		case 8:
			e.emit4(add2mod(0x48, src, dst), 0x0f, 0xbe, add2reg(0xC0, src, dst))
		case 16:
			e.emit4(add2mod(0x48, src, dst), 0x0f, 0xbf, add2reg(0xC0, src, dst))
		case 32:
			e.emit3(add2mod(0x48, src, dst), 0x63, add2reg(0xC0, src, dst))
		}
		return
	}
	switch bits {
	case 8:
		e.emit4(add2mod(0x40, src, dst), 0x0f, 0xbe, add2reg(0xC0, src, dst))
	case 16:
		if isEreg[dst] || isEreg[src] {
			e.emit1(add2mod(0x40, src, dst))
		}
		e.emit3(0x0f, 0xbf, add2reg(0xC0, src, dst))
	}
}

// suffix: emit_insn_suffix, ModRM [ptr + disp8] (40+) or [ptr + disp32]
// (80+); a displacement is always present (so rbp/r13 bases need nothing
// special, and r12 never appears as a plain base).
func (e *emitter) suffix(ptr, val byte, off int32) {
	if isImm8(int64(off)) {
		e.emit2(add2reg(0x40, ptr, val), byte(off))
	} else {
		e.emit1(add2reg(0x80, ptr, val))
		e.emit32(uint32(off))
	}
}

// suffixSIB: emit_insn_suffix_SIB, ModRM 44/84 + SIB [ptr + index*1] +
// disp8/disp32.
func (e *emitter) suffixSIB(ptr, val, index byte, off int32) {
	if isImm8(int64(off)) {
		e.emit3(add2reg(0x44, 0, val), add2reg(0, ptr, index), byte(off))
	} else {
		e.emit2(add2reg(0x84, 0, val), add2reg(0, ptr, index))
		e.emit32(uint32(off))
	}
}

// ldx: emit_ldx.
//
//	movzx r64, byte ptr [src+off]  ; REX.W 0F B6 /r
//	movzx r64, word ptr [src+off]  ; REX.W 0F B7 /r
//	mov r32, dword ptr [src+off]   ; [REX] 8B /r
//	mov r64, qword ptr [src+off]   ; REX.W 8B /r
func (e *emitter) ldx(size int, dst, src byte, off int32) {
	switch size {
	case 1:
		e.emit3(add2mod(0x48, src, dst), 0x0F, 0xB6)
	case 2:
		e.emit3(add2mod(0x48, src, dst), 0x0F, 0xB7)
	case 4:
		if isEreg[dst] || isEreg[src] {
			e.emit2(add2mod(0x40, src, dst), 0x8B)
		} else {
			e.emit1(0x8B)
		}
	case 8:
		e.emit2(add2mod(0x48, src, dst), 0x8B)
	}
	e.suffix(src, dst, off)
}

// ldsx: emit_ldsx.
//
//	movsx r64, byte ptr [src+off]   ; REX.W 0F BE /r
//	movsx r64, word ptr [src+off]   ; REX.W 0F BF /r
//	movsxd r64, dword ptr [src+off] ; REX.W 63 /r
func (e *emitter) ldsx(size int, dst, src byte, off int32) {
	switch size {
	case 1:
		e.emit3(add2mod(0x48, src, dst), 0x0F, 0xBE)
	case 2:
		e.emit3(add2mod(0x48, src, dst), 0x0F, 0xBF)
	case 4:
		e.emit2(add2mod(0x48, src, dst), 0x63)
	}
	e.suffix(src, dst, off)
}

// ldxIndex: emit_ldx_index, loads from [src + index + off] (REX always).
//
//	movzx r32, byte ptr [src+r12+off] ; REX 0F B6 /r (SIB)
//	movzx r32, word ptr [src+r12+off] ; REX 0F B7 /r
//	mov r32, dword ptr [src+r12+off]  ; REX 8B /r
//	mov r64, qword ptr [src+r12+off]  ; REX.W 8B /r
func (e *emitter) ldxIndex(size int, dst, src, index byte, off int32) {
	switch size {
	case 1:
		e.emit3(add3mod(0x40, src, dst, index), 0x0F, 0xB6)
	case 2:
		e.emit3(add3mod(0x40, src, dst, index), 0x0F, 0xB7)
	case 4:
		e.emit2(add3mod(0x40, src, dst, index), 0x8B)
	case 8:
		e.emit2(add3mod(0x48, src, dst, index), 0x8B)
	}
	e.suffixSIB(src, dst, index, off)
}

// ldsxIndex: emit_ldsx_index.
//
//	movsx r64, byte ptr [src+r12+off]   ; REX.W 0F BE /r
//	movsx r64, word ptr [src+r12+off]   ; REX.W 0F BF /r
//	movsxd r64, dword ptr [src+r12+off] ; REX.W 63 /r
func (e *emitter) ldsxIndex(size int, dst, src, index byte, off int32) {
	switch size {
	case 1:
		e.emit3(add3mod(0x48, src, dst, index), 0x0F, 0xBE)
	case 2:
		e.emit3(add3mod(0x48, src, dst, index), 0x0F, 0xBF)
	case 4:
		e.emit2(add3mod(0x48, src, dst, index), 0x63)
	}
	e.suffixSIB(src, dst, index, off)
}

// stx: emit_stx.
//
//	mov byte ptr [dst+off], r8    ; [REX] 88 /r (REX for sil/dil/bpl too)
//	mov word ptr [dst+off], r16   ; 66 [REX] 89 /r
//	mov dword ptr [dst+off], r32  ; [REX] 89 /r
//	mov qword ptr [dst+off], r64  ; REX.W 89 /r
func (e *emitter) stx(size int, dst, src byte, off int32) {
	switch size {
	case 1:
		if isEreg[dst] || isEreg8l(src) {
			e.emit2(add2mod(0x40, dst, src), 0x88)
		} else {
			e.emit1(0x88)
		}
	case 2:
		if isEreg[dst] || isEreg[src] {
			e.emit3(0x66, add2mod(0x40, dst, src), 0x89)
		} else {
			e.emit2(0x66, 0x89)
		}
	case 4:
		if isEreg[dst] || isEreg[src] {
			e.emit2(add2mod(0x40, dst, src), 0x89)
		} else {
			e.emit1(0x89)
		}
	case 8:
		e.emit2(add2mod(0x48, dst, src), 0x89)
	}
	e.suffix(dst, src, off)
}

// stxIndex: emit_stx_index, stores to [dst + index + off] (REX always).
//
//	mov byte ptr [dst+r12+off], r8   ; REX 88 /r
//	mov word ptr [dst+r12+off], r16  ; 66 REX 89 /r
//	mov dword ptr [dst+r12+off], r32 ; REX 89 /r
//	mov qword ptr [dst+r12+off], r64 ; REX.W 89 /r
func (e *emitter) stxIndex(size int, dst, src, index byte, off int32) {
	switch size {
	case 1:
		e.emit2(add3mod(0x40, dst, src, index), 0x88)
	case 2:
		e.emit3(0x66, add3mod(0x40, dst, src, index), 0x89)
	case 4:
		e.emit2(add3mod(0x40, dst, src, index), 0x89)
	case 8:
		e.emit2(add3mod(0x48, dst, src, index), 0x89)
	}
	e.suffixSIB(dst, src, index, off)
}

// immBytes writes the immediate of a store: 1, 2 or 4 bytes (DW: imm32).
func (e *emitter) immBytes(size int, imm int32) {
	switch size {
	case 1:
		e.emit1(byte(imm))
	case 2:
		e.emit2(byte(imm), byte(imm>>8))
	default:
		e.emit32(uint32(imm))
	}
}

// st: ST|MEM, store an immediate.
//
//	mov byte ptr [dst+off], imm8    ; [41] C6 /0 ib
//	mov word ptr [dst+off], imm16   ; 66 [41] C7 /0 iw
//	mov dword ptr [dst+off], imm32  ; [41] C7 /0 id
//	mov qword ptr [dst+off], simm32 ; REX.W C7 /0 id
func (e *emitter) st(size int, dst byte, off, imm int32) {
	switch size {
	case 1:
		if isEreg[dst] {
			e.emit2(0x41, 0xC6)
		} else {
			e.emit1(0xC6)
		}
	case 2:
		if isEreg[dst] {
			e.emit3(0x66, 0x41, 0xC7)
		} else {
			e.emit2(0x66, 0xC7)
		}
	case 4:
		if isEreg[dst] {
			e.emit2(0x41, 0xC7)
		} else {
			e.emit1(0xC7)
		}
	case 8:
		e.emit2(add1mod(0x48, dst), 0xC7)
	}
	if isImm8(int64(off)) {
		e.emit2(add1reg(0x40, dst), byte(off))
	} else {
		e.emit1(add1reg(0x80, dst))
		e.emit32(uint32(off))
	}
	e.immBytes(size, imm)
}

// stIndex: emit_st_index, store an immediate to [dst + index + off].
//
//	mov byte ptr [dst+r12+off], imm8    ; REX C6 /0 ib
//	mov word ptr [dst+r12+off], imm16   ; 66 REX C7 /0 iw
//	mov dword ptr [dst+r12+off], imm32  ; REX C7 /0 id
//	mov qword ptr [dst+r12+off], simm32 ; REX.W C7 /0 id
func (e *emitter) stIndex(size int, dst, index byte, off, imm int32) {
	switch size {
	case 1:
		e.emit2(add3mod(0x40, dst, 0, index), 0xC6)
	case 2:
		e.emit3(0x66, add3mod(0x40, dst, 0, index), 0xC7)
	case 4:
		e.emit2(add3mod(0x40, dst, 0, index), 0xC7)
	case 8:
		e.emit2(add3mod(0x48, dst, 0, index), 0xC7)
	}
	e.suffixSIB(dst, 0, index, off)
	e.immBytes(size, imm)
}

// atomicOpcode emits the opcode of an atomic RMW; false for unknown ops.
//
//	lock add/and/or/xor [m], r ; F0 REX 01/21/09/31 /r
//	lock xadd [m], r           ; F0 REX 0F C1 /r
//	xchg [m], r                ; F0 REX 87 /r
//	lock cmpxchg [m], r        ; F0 REX 0F B1 /r
func (e *emitter) atomicOpcode(op int32) bool {
	switch op {
	case atomicAdd, atomicAnd, atomicOr, atomicXor:
		e.emit1(simpleALU[op>>4])
	case atomicAdd | atomicFetch:
		e.emit2(0x0F, 0xC1)
	case atomicXchg:
		e.emit1(0x87)
	case atomicCmpXchg:
		e.emit2(0x0F, 0xB1)
	default:
		return false
	}
	return true
}

// atomicRMW: emit_atomic_rmw, lock <op> [dst+off], src (W or DW).
func (e *emitter) atomicRMW(op int32, dst, src byte, off int32, size int) bool {
	e.emit1(0xF0)
	e.maybeMod(dst, src, size == 8)
	if !e.atomicOpcode(op) {
		return false
	}
	e.suffix(dst, src, off)
	return true
}

// atomicRMWIndex: emit_atomic_rmw_index, lock <op> [dst+index+off], src.
func (e *emitter) atomicRMWIndex(op int32, size int, dst, src, index byte, off int32) bool {
	e.emit1(0xF0)
	switch size {
	case 4:
		e.emit1(add3mod(0x40, dst, src, index))
	case 8:
		e.emit1(add3mod(0x48, dst, src, index))
	default:
		return false
	}
	if !e.atomicOpcode(op) {
		return false
	}
	e.suffixSIB(dst, src, index, off)
	return true
}

// shiftx: emit_shiftx, BMI2 shlx/shrx/sarx dst, dst, src (VEX.0F38 F7 /r;
// pp = 1 shlx (66), 3 shrx (F2), 2 sarx (F3)).
func (e *emitter) shiftx(dst, src byte, is64 bool, pp byte) {
	r := isEreg[dst]
	b1 := byte(0x02) // map 0F38
	if !r {
		b1 |= 0x80 | 0x20 // ~R, ~B
	}
	b1 |= 0x40 // ~X
	vvvv := reg2hex[src]
	if isEreg[src] {
		vvvv |= 8
	}
	b2 := (^vvvv&0xf)<<3 | pp&3
	if is64 {
		b2 |= 0x80
	}
	e.emit5(0xC4, b1, b2, 0xF7, add2reg(0xC0, dst, dst))
}

// nop emits n bytes of NOPs in pieces of at most max bytes (emit_nops).
func (e *emitter) nops(n, max int) {
	for n > 0 {
		k := n
		if k > max {
			k = max
		}
		e.b = append(e.b, nops[k]...)
		n -= k
	}
}

// pushCallee / popCallee: push/pop rbx, r13, r14, r15 for the used R6..R9.
func (e *emitter) pushCallee(used *[4]bool) {
	if used[0] {
		e.emit1(0x53) // push rbx
	}
	if used[1] {
		e.emit2(0x41, 0x55) // push r13
	}
	if used[2] {
		e.emit2(0x41, 0x56) // push r14
	}
	if used[3] {
		e.emit2(0x41, 0x57) // push r15
	}
}

func (e *emitter) popCallee(used *[4]bool) {
	if used[3] {
		e.emit2(0x41, 0x5F) // pop r15
	}
	if used[2] {
		e.emit2(0x41, 0x5E) // pop r14
	}
	if used[1] {
		e.emit2(0x41, 0x5D) // pop r13
	}
	if used[0] {
		e.emit1(0x5B) // pop rbx
	}
}

// Atomic imm values (mirrors of ir's, as local constants for switches).
const (
	atomicAdd      = 0x00
	atomicOr       = 0x40
	atomicAnd      = 0x50
	atomicXor      = 0xa0
	atomicFetch    = 0x01
	atomicXchg     = 0xe0 | atomicFetch
	atomicCmpXchg  = 0xf0 | atomicFetch
	atomicLoadAcq  = 0x100
	atomicStoreRel = 0x110
)
