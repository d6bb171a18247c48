package amd64

import (
	"fmt"

	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/ir"
)

// varKind is the kind of a variable-size instruction.
type varKind uint8

const (
	vCond varKind = iota // conditional jump: jcc rel8 / 0F 8x rel32
	vJA                  // JA / gotol: jmp rel8 / jmp rel32 / nothing
	vExit                // EXIT after the first: jmp to the epilogue
)

// varInsn is an instruction whose size depends on the layout: a jump. Its
// fixed prefix (cmp/test, budget check) is in the function's code buffer.
type varInsn struct {
	j      int32 // instruction index in the function
	kind   varKind
	cc     byte  // short jcc opcode (vCond)
	minus2 bool  // JA with offset -1: always `jmp -2`
	prefix uint8 // fixed bytes before the jump opcode (< 128)
	pre    int32 // fixed bytes of the segment before this instruction
	tidx   int32 // target instruction index (vCond, vJA)
	tseg   int32 // segment holding the target
	toff   int32 // target's offset from its segment's start
}

// relocKind says how a final-pass patch is computed.
type relocKind uint8

const (
	rAbs     relocKind = iota // rel32 to the absolute address val
	rFunc                     // rel32 to the start of function val
	rImm64Fn                  // ld_imm64 of the address of function val into reg
)

// reloc is a patch applied in the final pass at start(j) + off.
type reloc struct {
	j    int32
	off  int32
	kind relocKind
	reg  byte
	size int32 // rImm64Fn: encoded length with the placeholder
	val  uint64
}

// exEntry is an exception-table entry; the insn delta is computed when the
// code is placed.
type exEntry struct {
	j     int32
	off   int32 // offset of the faulting x86 instruction within insn j's bytes
	fixup uint32
	data  uint32
}

// funcCode is one function after instruction selection: every fixed byte
// emitted once, plus what the layout and the final pass need.
type funcCode struct {
	index    int
	start, n int // slot range in the program
	name     string

	stackDepth int32
	callee     [4]bool
	tailCall   bool
	isSub      bool
	arena      bool

	code     []byte  // prologue, then each instruction's fixed bytes
	fixOff   []int32 // n+1 offsets into code: fixed bytes of insn j are code[fixOff[j]:fixOff[j+1]]
	vars     []varInsn
	relocs   []reloc
	ex       []exEntry
	prologue int32

	second []uint64 // bitset of ld_imm64 second halves (nil if none)

	firstExit    int32 // index of the first EXIT, or -1
	feSeg, feOff int32

	// Layout state.
	segEnd []int32 // end offset of each variable instruction
	form   []uint8 // per variable instruction: formShort/formNear/formZero | nops<<2
	size   int32   // code length
	passes int
}

const (
	formShort = 0
	formNear  = 1
	formZero  = 2
)

type selector struct {
	p    *ir.Program
	t    *Target
	f    *funcCode
	e    emitter
	fn   []ir.Func
	seen bool // an EXIT was emitted (the epilogue)
}

func insnErr(i int, format string, args ...any) error {
	return &ir.Error{Index: i, Reason: fmt.Sprintf(format, args...)}
}

// buildFunc runs instruction selection over function k.
func buildFunc(p *ir.Program, funcs []ir.Func, k int, t *Target, buf []byte) (*funcCode, error) {
	fn := funcs[k]
	n := fn.End - fn.Start
	f := &funcCode{
		index:      k,
		start:      fn.Start,
		n:          n,
		name:       fn.Name,
		stackDepth: fn.StackDepth,
		tailCall:   fn.TailCallReachable,
		isSub:      k > 0,
		arena:      p.UsesArena,
		fixOff:     make([]int32, n+1),
		firstExit:  -1,
	}
	if fn.StackDepth < 0 || fn.StackDepth > 1<<20 {
		return nil, insnErr(fn.Start, "function %d: invalid stack depth %d", k, fn.StackDepth)
	}
	for r := ir.R6; r <= ir.R9; r++ {
		f.callee[r-ir.R6] = fn.CalleeSaved.Has(r)
	}
	nj := 0
	for _, ins := range p.Insns[fn.Start:fn.End] {
		if c := ins.Class(); c == ir.ClassJMP || c == ir.ClassJMP32 {
			nj++
		}
	}
	f.vars = make([]varInsn, 0, nj)
	f.relocs = make([]reloc, 0, nj/2+2)
	s := &selector{p: p, t: t, f: f, fn: funcs}
	s.e.b = buf[:0]
	s.prologue()
	f.prologue = int32(len(s.e.b))
	for j := 0; j < n; j++ {
		f.fixOff[j] = int32(len(s.e.b))
		wide, err := s.insn(j)
		if err != nil {
			return nil, err
		}
		if l := len(s.e.b) - int(f.fixOff[j]); l > 128 {
			return nil, insnErr(fn.Start+j, "x86 code of %d bytes exceeds the JIT's 128-byte limit", l)
		}
		if wide {
			if f.second == nil {
				f.second = make([]uint64, (n+63)/64)
			}
			j++
			if j < n {
				f.second[j>>6] |= 1 << (j & 63)
			}
			if j < n {
				f.fixOff[j] = int32(len(s.e.b))
			}
		}
	}
	f.fixOff[n] = int32(len(s.e.b))
	f.code = s.e.b
	if err := f.resolve(p); err != nil {
		return nil, err
	}
	return f, nil
}

// segFirst is the first instruction of segment s.
func (f *funcCode) segFirst(s int) int32 {
	if s == 0 {
		return 0
	}
	return f.vars[s-1].j + 1
}

// segOf returns the segment holding instruction t and t's offset in it.
// The search gallops from variable instruction `from` (jumps mostly go
// near), then bisects.
func (f *funcCode) segOf(t int32, from int) (int32, int32) {
	vars := f.vars
	// Find the first m with vars[m].j >= t, in [lo, hi].
	lo, hi := 0, len(vars)
	if from >= 0 && from < len(vars) {
		if vars[from].j < t {
			lo = from + 1
			step := 1
			for lo+step-1 < len(vars) && vars[lo+step-1].j < t {
				lo += step
				step *= 2
			}
			hi = min(lo+step-1, len(vars))
		} else {
			hi = from
			step := 1
			for hi-step >= 0 && vars[hi-step].j >= t {
				hi -= step
				step *= 2
			}
			lo = max(hi-step+1, 0)
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if vars[m].j < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return int32(lo), f.fixOff[t] - f.fixOff[f.segFirst(lo)]
}

// resolve fills in the segment data of variable instructions and targets.
func (f *funcCode) resolve(p *ir.Program) error {
	for s := range f.vars {
		v := &f.vars[s]
		v.pre = f.fixOff[v.j] - f.fixOff[f.segFirst(s)]
		if v.kind == vExit || v.minus2 {
			continue
		}
		if v.tidx < 0 || int(v.tidx) >= f.n {
			return insnErr(f.start+int(v.j), "jump target %d is outside the function", f.start+int(v.tidx))
		}
		if f.second != nil && f.second[v.tidx>>6]&(1<<(v.tidx&63)) != 0 {
			return insnErr(f.start+int(v.j), "jump into the middle of ld_imm64 at %d", f.start+int(v.tidx)-1)
		}
		v.tseg, v.toff = f.segOf(v.tidx, s)
	}
	if f.firstExit >= 0 {
		f.feSeg, f.feOff = f.segOf(f.firstExit, -1)
	}
	f.segEnd = make([]int32, len(f.vars))
	f.form = make([]uint8, len(f.vars))
	return nil
}

// prologue emits emit_prologue plus do_jit's pushes.
//
//	nop5                       ; 0F 1F 44 00 00
//	xor rax, rax | nop3        ; 48 31 C0 | 0F 1F 00
//	push rbp                   ; 55
//	mov rbp, rsp               ; 48 89 E5
//	sub rsp, depth             ; 48 81 EC id
//	(tail-call counter block)
//	push r12                   ; 41 54 (arena)
//	push rbx/r13/r14/r15       ; 53 / 41 55 / 41 56 / 41 57
//	movabs r12, kern_vm_start  ; 49 BC io (arena)
func (s *selector) prologue() {
	f, e := s.f, &s.e
	e.emit(nops[5]...)
	if f.tailCall && !f.isSub {
		e.emit3(0x48, 0x31, 0xC0) // xor rax, rax
	} else {
		e.emit(nops[3]...)
	}
	e.emit1(0x55)             // push rbp
	e.emit3(0x48, 0x89, 0xE5) // mov rbp, rsp
	if f.stackDepth != 0 {
		e.emit3(0x48, 0x81, 0xEC) // sub rsp, imm32
		e.emit32(uint32(roundUp8(f.stackDepth)))
	}
	if f.tailCall {
		if !f.isSub {
			e.emit4(0x48, 0x83, 0xF8, s.t.maxTailCalls()) // cmp rax, MAX_TAIL_CALL_CNT
			e.emit2(0x77, 0x06)                           // ja +6
			e.emit1(0x50)                                 // push rax
			e.emit3(0x48, 0x89, 0xE0)                     // mov rax, rsp
			e.emit2(0xEB, 0x01)                           // jmp +1
			e.emit1(0x50)                                 // push rax
			e.emit1(0x50)                                 // push rax
		} else {
			e.emit2(0x50, 0x50) // push rax; push rax
		}
	}
	if f.arena {
		e.emit2(0x41, 0x54) // push r12
	}
	e.pushCallee(&f.callee)
	if f.arena {
		e.movImm64(regR12, s.t.KernVMStart)
	}
}

func (t *Target) maxTailCalls() byte {
	if t.MaxTailCallCnt == 0 {
		return 33
	}
	return t.MaxTailCallCnt
}

// tccPtrOff is BPF_TAIL_CALL_CNT_PTR_STACK_OFF: rbp-relative slot of the
// tail-call counter pointer.
func (f *funcCode) tccPtrOff() uint32 { return uint32(-16 - roundUp8(f.stackDepth)) }

// epilogue: pops, pop r12 (arena), leave, return.
//
//	pop r15/r14/r13/rbx ; 41 5F / 41 5E / 41 5D / 5B
//	pop r12             ; 41 5C
//	leave               ; C9
//	ret | jmp thunk     ; C3 [CC] | E9 rel32
func (s *selector) epilogue(j int) {
	e := &s.e
	e.popCallee(&s.f.callee)
	if s.f.arena {
		e.emit2(0x41, 0x5C) // pop r12
	}
	e.emit1(0xC9) // leave
	s.ret(j)
}

func (s *selector) ret(j int) {
	e := &s.e
	if s.t.ReturnThunk != 0 {
		e.emit1(0xE9)
		s.reloc(j, rAbs, s.t.ReturnThunk)
		e.emit32(0)
		return
	}
	e.emit1(0xC3) // ret
	if s.t.SLS {
		e.emit1(0xCC) // int3
	}
}

// reloc records a rel32 patch at the current position of instruction j.
func (s *selector) reloc(j int, kind relocKind, val uint64) {
	s.f.relocs = append(s.f.relocs, reloc{j: int32(j), off: int32(len(s.e.b)) - s.f.fixOff[j], kind: kind, val: val})
}

// extable records an exception-table entry for the x86 instruction that
// starts at byte `at` of the code buffer and ends at the current position.
func (s *selector) extable(j, at int, clear uint8, arena bool, arenaReg uint8, off int16) {
	en := extable.NewEntry(0, len(s.e.b)-at, clear, arena, arenaReg, off)
	s.f.ex = append(s.f.ex, exEntry{j: int32(j), off: int32(at) - s.f.fixOff[j], fixup: en.Fixup, data: en.Data})
}

// addVar records a variable-size instruction whose prefix ends here.
func (s *selector) addVar(j int, kind varKind, cc byte, target int, minus2 bool) {
	s.f.vars = append(s.f.vars, varInsn{
		j: int32(j), kind: kind, cc: cc, minus2: minus2,
		prefix: uint8(int32(len(s.e.b)) - s.f.fixOff[j]), tidx: int32(target),
	})
}

// yieldCheck emits the vm's budget check before a backward jump.
//
//	mov r11, rsp            ; 49 89 E3
//	and r11, -0x10000       ; 49 81 E3 00 00 FF FF
//	sub qword ptr [r11], 1  ; 49 83 2B 01
//	jnz +5                  ; 75 05
//	call YieldAddr          ; E8 rel32
func (s *selector) yieldCheck(j int) {
	e := &s.e
	e.emit3(0x49, 0x89, 0xE3)
	e.emit(0x49, 0x81, 0xE3, 0x00, 0x00, 0xFF, 0xFF)
	e.emit4(0x49, 0x83, 0x2B, 0x01)
	e.emit2(0x75, 0x05)
	e.emit1(0xE8)
	s.reloc(j, rAbs, s.t.YieldAddr)
	e.emit32(0)
}

// insn selects instruction j of the function; wide reports a ld_imm64.
func (s *selector) insn(j int) (wide bool, err error) {
	gi := s.f.start + j
	ins := s.p.Insns[gi]
	if ins.Dst > ir.RAX || ins.Src > ir.RAX {
		return false, insnErr(gi, "invalid register (dst r%d, src r%d)", ins.Dst, ins.Src)
	}
	switch ins.Class() {
	case ir.ClassALU, ir.ClassALU64:
		return false, s.alu(gi, ins)
	case ir.ClassLD:
		if ins.Op != ir.OpLdImm64 {
			return false, insnErr(gi, "opcode 0x%02x (legacy packet access) is rewritten by the verifier and not supported by the JIT", ins.Op)
		}
		if j+1 >= s.f.n {
			return false, insnErr(gi, "ld_imm64 without its second half")
		}
		v := ir.Imm64(ins, s.p.Insns[gi+1])
		if ins.Src == ir.PseudoFunc {
			k := ir.FuncOf(s.fn, s.p.Target(gi))
			if s.p.Target(gi) < 0 || k >= len(s.fn) || s.fn[k].Start != s.p.Target(gi) {
				return false, insnErr(gi, "ld_imm64 of a function: %d is not a function start", s.p.Target(gi))
			}
			at := len(s.e.b)
			s.e.movImm64(byte(ins.Dst), s.t.PseudoFuncAddr)
			s.f.relocs = append(s.f.relocs, reloc{j: int32(j), off: int32(at) - s.f.fixOff[j], kind: rImm64Fn,
				reg: byte(ins.Dst), size: int32(len(s.e.b) - at), val: uint64(k)})
			return true, nil
		}
		s.e.movImm64(byte(ins.Dst), v)
		return true, nil
	case ir.ClassLDX:
		return false, s.ldx(gi, j, ins)
	case ir.ClassST:
		return false, s.st(gi, j, ins)
	case ir.ClassSTX:
		return false, s.stx(gi, j, ins)
	}
	return false, s.jmp(gi, j, ins)
}

func (s *selector) alu(gi int, ins ir.Instruction) error {
	e := &s.e
	is64 := ins.Class() == ir.ClassALU64
	dst, src := byte(ins.Dst), byte(ins.Src)
	x := ins.Source() == ir.SourceX
	imm := ins.Imm
	op := ins.ALUOp()
	switch op {
	case ir.ALUAdd, ir.ALUSub, ir.ALUAnd, ir.ALUOr, ir.ALUXor:
		if x {
			// add/sub/and/or/xor dst, src ; [REX] 01/29/21/09/31 /r
			e.maybeMod(dst, src, is64)
			e.emit2(simpleALU[op>>4], add2reg(0xC0, dst, src))
			return nil
		}
		// op dst, imm8 ; [REX] 83 /n ib
		// op eax/rax, imm32 ; [REX.W] 05/2D/25/0D/35 id
		// op dst, imm32 ; [REX] 81 /n id
		e.maybe1Mod(dst, is64)
		var b3, b2 byte
		switch op {
		case ir.ALUAdd:
			b3, b2 = 0xC0, 0x05
		case ir.ALUSub:
			b3, b2 = 0xE8, 0x2D
		case ir.ALUAnd:
			b3, b2 = 0xE0, 0x25
		case ir.ALUOr:
			b3, b2 = 0xC8, 0x0D
		case ir.ALUXor:
			b3, b2 = 0xF0, 0x35
		}
		switch {
		case isImm8(int64(imm)):
			e.emit3(0x83, add1reg(b3, dst), byte(imm))
		case dst == 0:
			e.emit1(b2)
			e.emit32(uint32(imm))
		default:
			e.emit2(0x81, add1reg(b3, dst))
			e.emit32(uint32(imm))
		}
		return nil
	case ir.ALUMov:
		if !x {
			e.movImm32(is64, dst, uint32(imm))
			return nil
		}
		if is64 && ins.Off == ir.OffAddrSpaceCast {
			if ins.Imm != ir.CastToUser {
				return insnErr(gi, "addr_space_cast 0x%x must be lowered before the JIT (cast to kernel is a 32-bit mov)", uint32(ins.Imm))
			}
			s.castUser(dst, src)
			return nil
		}
		if is64 && ins.Off == ir.OffPerCPUAddr {
			// mov dst, src ; add dst, gs:[this_cpu_off] (65 REX.W 03 04 25 id)
			e.mov64(dst, src)
			e.emit5(0x65, add1mod(0x48, dst), 0x03, add2reg(0x04, 0, dst), 0x25)
			e.emit32(s.t.ThisCPUOff)
			return nil
		}
		switch {
		case ins.Off == 0:
			e.movReg(is64, dst, src)
		case ins.Off == 8 || ins.Off == 16 || (ins.Off == 32 && is64):
			e.movsxReg(int(ins.Off), is64, dst, src)
		default:
			return insnErr(gi, "invalid offset %d of mov", ins.Off)
		}
		return nil
	case ir.ALUNeg:
		if x {
			return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
		}
		// neg dst ; [REX] F7 /3
		e.maybe1Mod(dst, is64)
		e.emit2(0xF7, add1reg(0xD8, dst))
		return nil
	case ir.ALUDiv, ir.ALUMod:
		if ins.Off != 0 && ins.Off != ir.OffSigned {
			return insnErr(gi, "invalid offset %d of div/mod", ins.Off)
		}
		s.divmod(ins, is64)
		return nil
	case ir.ALUMul:
		if x {
			// imul dst, src ; [REX] 0F AF /r
			e.maybeMod(src, dst, is64)
			e.emit3(0x0F, 0xAF, add2reg(0xC0, src, dst))
			return nil
		}
		// imul dst, dst, imm8/imm32 ; [REX] 6B /r ib | 69 /r id
		e.maybeMod(dst, dst, is64)
		if isImm8(int64(imm)) {
			e.emit3(0x6B, add2reg(0xC0, dst, dst), byte(imm))
		} else {
			e.emit2(0x69, add2reg(0xC0, dst, dst))
			e.emit32(uint32(imm))
		}
		return nil
	case ir.ALULsh, ir.ALURsh, ir.ALUArsh:
		b3 := simpleALU[op>>4]
		if !x {
			// shl/shr/sar dst, 1 ; [REX] D1 /n
			// shl/shr/sar dst, imm8 ; [REX] C1 /n ib
			e.maybe1Mod(dst, is64)
			if imm == 1 {
				e.emit2(0xD1, add1reg(b3, dst))
			} else {
				e.emit3(0xC1, add1reg(b3, dst), byte(imm))
			}
			return nil
		}
		if s.t.BMI2 && src != 4 {
			pp := byte(1) // shlx: 66
			switch op {
			case ir.ALURsh:
				pp = 3 // shrx: F2
			case ir.ALUArsh:
				pp = 2 // sarx: F3
			}
			e.shiftx(dst, src, is64, pp)
			return nil
		}
		// push rcx; mov rcx, src; shl/shr/sar dst, cl (D3 /n); pop rcx
		d := dst
		if src != 4 {
			if dst == 4 {
				e.mov64(regAUX, dst) // mov r11, rcx
				d = regAUX
			} else {
				e.emit1(0x51) // push rcx
			}
			e.mov64(4, src)
		}
		e.maybe1Mod(d, is64)
		e.emit2(0xD3, add1reg(b3, d))
		if src != 4 {
			if dst == 4 {
				e.mov64(4, regAUX) // mov rcx, r11
			} else {
				e.emit1(0x59) // pop rcx
			}
		}
		return nil
	case ir.ALUEnd:
		if imm != 16 && imm != 32 && imm != 64 {
			return insnErr(gi, "invalid byte swap width %d", imm)
		}
		swap := ins.Op == uint8(ir.ClassALU)|uint8(ir.ALUEnd)|uint8(ir.EndToBE) ||
			ins.Op == uint8(ir.ClassALU64)|uint8(ir.ALUEnd)|uint8(ir.EndToLE)
		if !swap && is64 {
			return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
		}
		if swap {
			switch imm {
			case 16:
				// ror dst16, 8 ; 66 [41] C1 /1 08
				// movzx dst32, dst16 ; [45] 0F B7 /r
				e.emit1(0x66)
				if isEreg[dst] {
					e.emit1(0x41)
				}
				e.emit3(0xC1, add1reg(0xC8, dst), 8)
				if isEreg[dst] {
					e.emit1(0x45)
				}
				e.emit3(0x0F, 0xB7, add2reg(0xC0, dst, dst))
			case 32:
				// bswap dst32 ; [41] 0F C8+r
				if isEreg[dst] {
					e.emit1(0x41)
				}
				e.emit2(0x0F, add1reg(0xC8, dst))
			case 64:
				// bswap dst64 ; REX.W 0F C8+r
				e.emit3(add1mod(0x48, dst), 0x0F, add1reg(0xC8, dst))
			}
			return nil
		}
		switch imm {
		case 16:
			// movzx dst32, dst16 ; [45] 0F B7 /r
			if isEreg[dst] {
				e.emit1(0x45)
			}
			e.emit3(0x0F, 0xB7, add2reg(0xC0, dst, dst))
		case 32:
			// mov dst32, dst32 ; [45] 89 /r
			if isEreg[dst] {
				e.emit1(0x45)
			}
			e.emit2(0x89, add2reg(0xC0, dst, dst))
		}
		return nil
	}
	return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
}

// castUser emits addr_space_cast to user space (branchless):
//
//	mov dst32, src32          ; [REX] 89 /r (if dst != src)
//	shl dst, 32               ; REX.W C1 /4 20
//	or dst, user_vm_start>>32 ; REX.W 0D id | REX.W 81 /1 id
//	rol dst, 32               ; REX.W C1 /0 20
//	xor r11, r11              ; 4D 31 DB
//	test dst32, dst32         ; [REX] 85 /r
//	cmove dst, r11            ; REX.W 0F 44 /r
func (s *selector) castUser(dst, src byte) {
	e := &s.e
	if dst != src {
		e.movReg(false, dst, src)
	}
	e.maybe1Mod(dst, true)
	e.emit3(0xC1, add1reg(0xE0, dst), 32)
	e.maybe1Mod(dst, true)
	if dst == 0 {
		e.emit1(0x0D)
	} else {
		e.emit2(0x81, add1reg(0xC8, dst))
	}
	e.emit32(uint32(s.t.UserVMStart >> 32))
	e.maybe1Mod(dst, true)
	e.emit3(0xC1, add1reg(0xC0, dst), 32)
	e.emit3(0x4D, 0x31, 0xDB)
	e.maybeMod(dst, dst, false)
	e.emit2(0x85, add2reg(0xC0, dst, dst))
	e.maybeMod(regAUX, dst, true)
	e.emit3(0x0F, 0x44, add2reg(0xC0, regAUX, dst))
}

// divmod emits div/mod/sdiv/smod through rax/rdx:
//
//	push rax; push rdx          ; 50 / 52 (unless dst is that register)
//	mov r11, src | mov r11, imm ; (src in rax/rdx) 4C 89 .. | 49 C7 C3 id
//	mov rax, dst
//	xor edx, edx; div src       ; 31 D2; F7 /6   (unsigned)
//	cdq/cqo; idiv src           ; 99 / 48 99; F7 /7 (signed)
//	mov dst, rdx | mov dst, rax
//	pop rdx; pop rax
func (s *selector) divmod(ins ir.Instruction, is64 bool) {
	e := &s.e
	dst, src := byte(ins.Dst), byte(ins.Src)
	if dst != 0 {
		e.emit1(0x50)
	}
	if dst != 3 {
		e.emit1(0x52)
	}
	if ins.Source() == ir.SourceX {
		if src == 0 || src == 3 {
			e.mov64(regAUX, src)
			src = regAUX
		}
	} else {
		e.emit3(0x49, 0xC7, 0xC3)
		e.emit32(uint32(ins.Imm))
		src = regAUX
	}
	if dst != 0 {
		e.movReg(is64, 0, dst)
	}
	if ins.Off == 0 {
		e.emit2(0x31, 0xD2)
		e.maybe1Mod(src, is64)
		e.emit2(0xF7, add1reg(0xF0, src))
	} else {
		if is64 {
			e.emit2(0x48, 0x99)
		} else {
			e.emit1(0x99)
		}
		e.maybe1Mod(src, is64)
		e.emit2(0xF7, add1reg(0xF8, src))
	}
	if ins.ALUOp() == ir.ALUMod && dst != 3 {
		e.movReg(is64, dst, 3)
	} else if ins.ALUOp() == ir.ALUDiv && dst != 0 {
		e.movReg(is64, dst, 0)
	}
	if dst != 3 {
		e.emit1(0x5A)
	}
	if dst != 0 {
		e.emit1(0x58)
	}
}

func ptRegs(gi int, r byte) (uint8, error) {
	if r > 9 {
		return 0, insnErr(gi, "register r%d cannot be named in an exception-table entry", r)
	}
	return extable.PtRegsOffset(r), nil
}

func (s *selector) ldx(gi, j int, ins ir.Instruction) error {
	e := &s.e
	dst, src := byte(ins.Dst), byte(ins.Src)
	size := ins.Size().Bytes()
	off := int32(ins.Off)
	mode := ins.Mode()
	switch mode {
	case ir.ModeMEM:
		e.ldx(size, dst, src, off)
		return nil
	case ir.ModeMEMSX, ir.ModeProbeMemSX, ir.ModeProbeMem:
		if mode != ir.ModeProbeMem && size == 8 {
			return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
		}
		if mode == ir.ModeMEMSX {
			e.ldsx(size, dst, src, off)
			return nil
		}
		clear, err := ptRegs(gi, dst)
		if err != nil {
			return err
		}
		// movabs r10, VSYSCALL_ADDR ; mov r11, src ; [add r11, off]
		// sub r11, r10 ; movabs r10, limit ; cmp r11, r10 ; ja load
		// xor dst32, dst32 ; jmp over ; load:
		e.movImm64(regAX, s.t.VsyscallAddr)
		e.mov64(regAUX, src)
		if off != 0 {
			e.maybe1Mod(regAUX, true)
			e.emit2(0x81, add1reg(0xC0, regAUX))
			e.emit32(uint32(off))
		}
		e.maybeMod(regAUX, regAX, true)
		e.emit2(0x29, add2reg(0xC0, regAUX, regAX))
		e.movImm64(regAX, s.t.probeLimit())
		e.maybeMod(regAUX, regAX, true)
		e.emit2(0x39, add2reg(0xC0, regAUX, regAX))
		e.emit2(jccJA, 0)
		endJmp := len(e.b)
		e.movImm32(false, dst, 0)
		e.emit2(0xEB, 0)
		at := len(e.b)
		e.b[endJmp-1] = byte(at - endJmp)
		if mode == ir.ModeProbeMemSX {
			e.ldsx(size, dst, src, off)
		} else {
			e.ldx(size, dst, src, off)
		}
		e.b[at-1] = byte(len(e.b) - at)
		s.extable(j, at, clear, false, 0, 0)
		return nil
	case ir.ModeProbeMem32, ir.ModeProbeMem32SX:
		if mode == ir.ModeProbeMem32SX && size == 8 {
			return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
		}
		clear, err := ptRegs(gi, dst)
		if err != nil {
			return err
		}
		areg, err := ptRegs(gi, src)
		if err != nil {
			return err
		}
		at := len(e.b)
		if mode == ir.ModeProbeMem32SX {
			e.ldsxIndex(size, dst, src, regR12, off)
		} else {
			e.ldxIndex(size, dst, src, regR12, off)
		}
		s.extable(j, at, clear, true, areg, ins.Off)
		return nil
	}
	return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
}

func (s *selector) st(gi, j int, ins ir.Instruction) error {
	e := &s.e
	dst := byte(ins.Dst)
	size := ins.Size().Bytes()
	switch ins.Mode() {
	case ir.ModeMEM:
		e.st(size, dst, int32(ins.Off), ins.Imm)
		return nil
	case ir.ModeNOSPEC:
		if ins.Size() != ir.SizeW {
			break
		}
		e.emit3(0x0F, 0xAE, 0xE8) // lfence
		return nil
	case ir.ModeProbeMem32:
		areg, err := ptRegs(gi, dst)
		if err != nil {
			return err
		}
		at := len(e.b)
		e.stIndex(size, dst, regR12, int32(ins.Off), ins.Imm)
		s.extable(j, at, extable.DontClear, true, areg, ins.Off)
		return nil
	}
	return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
}

func (s *selector) stx(gi, j int, ins ir.Instruction) error {
	e := &s.e
	dst, src := byte(ins.Dst), byte(ins.Src)
	size := ins.Size().Bytes()
	off := int32(ins.Off)
	imm := ins.Imm
	loadStore := imm == atomicLoadAcq || imm == atomicStoreRel
	switch ins.Mode() {
	case ir.ModeMEM:
		e.stx(size, dst, src, off)
		return nil
	case ir.ModeProbeMem32:
		areg, err := ptRegs(gi, dst)
		if err != nil {
			return err
		}
		at := len(e.b)
		e.stxIndex(size, dst, src, regR12, off)
		s.extable(j, at, extable.DontClear, true, areg, ins.Off)
		return nil
	case ir.ModeATOMIC:
		if size < 4 && !loadStore {
			return insnErr(gi, "1- and 2-byte read-modify-write atomics are not supported by the JIT")
		}
		switch imm {
		case atomicAnd | atomicFetch, atomicOr | atomicFetch, atomicXor | atomicFetch:
			// mov r10, rax ; loop: mov rax, [dst+off] ; mov r11, rax ;
			// op r11, src ; lock cmpxchg [dst+off], r11 ; jne loop ;
			// mov src, rax ; mov rax, r10
			is64 := size == 8
			realSrc, realDst := src, dst
			e.movReg(true, regAX, 0)
			if src == 0 {
				realSrc = regAX
			}
			if dst == 0 {
				realDst = regAX
			}
			branch := len(e.b)
			e.ldx(size, 0, realDst, off)
			e.movReg(is64, regAUX, 0)
			e.maybeMod(regAUX, realSrc, is64)
			e.emit2(simpleALU[(imm&0xf0)>>4], add2reg(0xC0, regAUX, realSrc))
			e.atomicRMW(atomicCmpXchg, realDst, regAUX, off, size)
			e.emit2(jccJNE, byte(-(len(e.b)-branch)-2))
			e.movReg(is64, realSrc, 0)
			e.movReg(true, 0, regAX)
			return nil
		case atomicLoadAcq:
			e.ldx(size, dst, src, off)
			return nil
		case atomicStoreRel:
			e.stx(size, dst, src, off)
			return nil
		}
		if !e.atomicRMW(imm, dst, src, off, size) {
			return insnErr(gi, "unknown atomic operation 0x%x", uint32(imm))
		}
		return nil
	case ir.ModeProbeAtomic:
		if size < 4 && !loadStore {
			return insnErr(gi, "1- and 2-byte read-modify-write atomics are not supported by the JIT")
		}
		areg, err := ptRegs(gi, dst)
		if err != nil {
			return err
		}
		at := len(e.b)
		switch imm {
		case atomicLoadAcq:
			e.ldxIndex(size, dst, src, regR12, off)
		case atomicStoreRel:
			e.stxIndex(size, dst, src, regR12, off)
		default:
			if !e.atomicRMWIndex(imm, size, dst, src, regR12, off) {
				return insnErr(gi, "atomic operation 0x%x is not supported on arena memory", uint32(imm))
			}
		}
		s.extable(j, at, extable.DontClear, true, areg, ins.Off)
		return nil
	}
	return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
}

// condCC maps a conditional BPF jump op (>>4) to its short jcc opcode.
var condCC = [16]byte{
	ir.JumpJEQ >> 4: jccJE, ir.JumpJSET >> 4: jccJNE, ir.JumpJNE >> 4: jccJNE,
	ir.JumpJGT >> 4: jccJA, ir.JumpJLT >> 4: jccJB, ir.JumpJGE >> 4: jccJAE, ir.JumpJLE >> 4: jccJBE,
	ir.JumpJSGT >> 4: jccJG, ir.JumpJSLT >> 4: jccJL, ir.JumpJSGE >> 4: jccJGE, ir.JumpJSLE >> 4: jccJLE,
}

func (s *selector) jmp(gi, j int, ins ir.Instruction) error {
	e := &s.e
	is64 := ins.Class() == ir.ClassJMP
	dst, src := byte(ins.Dst), byte(ins.Src)
	op := ins.JumpOp()
	x := ins.Source() == ir.SourceX
	switch {
	case ins.Op == ir.OpTailCall:
		s.tailCall(j, ins.Imm)
		return nil
	case op == ir.JumpJA:
		if x {
			return insnErr(gi, "indirect jump (gotox) is not supported by the 6.18 JIT")
		}
		off := int(ins.Off)
		if !is64 {
			off = int(ins.Imm)
		}
		t := j + 1 + off
		if s.t.YieldCheck && t <= j {
			s.yieldCheck(j)
		}
		s.addVar(j, vJA, 0, t, off == -1)
		return nil
	case op == ir.JumpCall && is64 && !x:
		return s.call(gi, j, ins)
	case op == ir.JumpExit && is64 && !x:
		if !s.seen {
			s.seen = true
			s.f.firstExit = int32(j)
			s.epilogue(j)
			return nil
		}
		s.addVar(j, vExit, 0, 0, false)
		return nil
	}
	cc := condCC[op>>4]
	if cc == 0 {
		if op == ir.JumpJCOND {
			return insnErr(gi, "may_goto is expanded by the verifier and not supported by the JIT")
		}
		return insnErr(gi, "unknown opcode 0x%02x", ins.Op)
	}
	t := j + 1 + int(ins.Off)
	if s.t.YieldCheck && t <= j {
		s.yieldCheck(j)
	}
	switch {
	case x && op == ir.JumpJSET:
		// test dst, src ; [REX] 85 /r
		e.maybeMod(dst, src, is64)
		e.emit2(0x85, add2reg(0xC0, dst, src))
	case x:
		// cmp dst, src ; [REX] 39 /r
		e.maybeMod(dst, src, is64)
		e.emit2(0x39, add2reg(0xC0, dst, src))
	case op == ir.JumpJSET:
		// test dst, imm32 ; [REX] F7 /0 id
		e.maybe1Mod(dst, is64)
		e.emit2(0xF7, add1reg(0xC0, dst))
		e.emit32(uint32(ins.Imm))
	case ins.Imm == 0:
		// test dst, dst ; [REX] 85 /r
		e.maybeMod(dst, dst, is64)
		e.emit2(0x85, add2reg(0xC0, dst, dst))
	default:
		// cmp dst, imm8 ; [REX] 83 /7 ib   |   cmp dst, imm32 ; [REX] 81 /7 id
		e.maybe1Mod(dst, is64)
		if isImm8(int64(ins.Imm)) {
			e.emit3(0x83, add1reg(0xF8, dst), byte(ins.Imm))
		} else {
			e.emit2(0x81, add1reg(0xF8, dst))
			e.emit32(uint32(ins.Imm))
		}
	}
	s.addVar(j, vCond, cc, t, false)
	return nil
}

// call emits a helper/kfunc/bpf-to-bpf call.
//
//	mov rax, [rbp - 16 - depth] ; 48 8B 85 id (bpf-to-bpf, tail-call reachable)
//	call target                 ; E8 rel32
func (s *selector) call(gi, j int, ins ir.Instruction) error {
	e := &s.e
	if ins.Src == ir.CallLocal {
		t := s.p.Target(gi)
		k := ir.FuncOf(s.fn, t)
		if t < 0 || k >= len(s.fn) || s.fn[k].Start != t {
			return insnErr(gi, "call target %d is not the start of a function", t)
		}
		if s.f.tailCall {
			e.emit3(0x48, 0x8B, 0x85)
			e.emit32(s.f.tccPtrOff())
		}
		e.emit1(0xE8)
		s.reloc(j, rFunc, uint64(k))
		e.emit32(0)
		return nil
	}
	if ins.Src != ir.CallHelper && ins.Src != ir.CallKfunc {
		return insnErr(gi, "invalid call source %d", ins.Src)
	}
	e.emit1(0xE8)
	s.reloc(j, rAbs, s.t.CallBase+uint64(int64(ins.Imm)))
	e.emit32(0)
	return nil
}

// tailCall emits emit_bpf_tail_call_indirect (imm 0) or
// emit_bpf_tail_call_direct (imm = poke descriptor + 1).
func (s *selector) tailCall(j int, imm int32) {
	e, f, t := &s.e, s.f, s.t
	var patches []int // positions of rel8 bytes jumping to the end
	if imm == 0 {
		e.emit2(0x89, 0xD2)                         // mov edx, edx
		e.emit3(0x39, 0x56, t.ArrayMaxEntriesOff)   // cmp dword ptr [rsi + max_entries], edx
		e.emit2(jccJBE, 0)                          // jbe out
		patches = append(patches, len(e.b))         //
		e.emit3(0x48, 0x8B, 0x85)                   // mov rax, qword ptr [rbp + tcc_ptr_off]
		e.emit32(f.tccPtrOff())                     //
		e.emit4(0x48, 0x83, 0x38, t.maxTailCalls()) // cmp qword ptr [rax], MAX_TAIL_CALL_CNT
		e.emit2(jccJAE, 0)                          // jae out
		patches = append(patches, len(e.b))         //
		e.emit4(0x48, 0x8B, 0x8C, 0xD6)             // mov rcx, [rsi + rdx*8 + ptrs]
		e.emit32(t.ArrayPtrsOff)                    //
		e.emit3(0x48, 0x85, 0xC9)                   // test rcx, rcx
		e.emit2(jccJE, 0)                           // je out
		patches = append(patches, len(e.b))         //
		e.emit4(0x48, 0x83, 0x00, 0x01)             // add qword ptr [rax], 1
		s.tailPops()                                //
		e.emit4(0x48, 0x8B, 0x49, t.ProgBPFFuncOff) // mov rcx, qword ptr [rcx + bpf_func]
		e.emit4(0x48, 0x83, 0xC1, 12)               // add rcx, X86_TAIL_CALL_OFFSET
		if t.IndirectThunkRCX != 0 {
			e.emit1(0xE9) // jmp __x86_indirect_thunk_rcx
			s.reloc(j, rAbs, t.IndirectThunkRCX)
			e.emit32(0)
		} else {
			e.emit2(0xFF, 0xE1) // jmp rcx
			if t.IndirectInt3 || t.SLS {
				e.emit1(0xCC)
			}
		}
	} else {
		e.emit3(0x48, 0x8B, 0x85)                   // mov rax, qword ptr [rbp + tcc_ptr_off]
		e.emit32(f.tccPtrOff())                     //
		e.emit4(0x48, 0x83, 0x38, t.maxTailCalls()) // cmp qword ptr [rax], MAX_TAIL_CALL_CNT
		e.emit2(jccJAE, 0)                          // jae out
		patches = append(patches, len(e.b))         //
		e.emit1(0xE9)                               // jmp out (bypass, patched when the slot fills)
		e.emit32(0)                                 //
		patches = append(patches, -len(e.b))        //
		e.emit4(0x48, 0x83, 0x00, 0x01)             // add qword ptr [rax], 1
		s.tailPops()                                //
		e.emit(nops[5]...)                          // nop5: patched into jmp target
	}
	end := len(e.b)
	for _, p := range patches {
		if p < 0 {
			p = -p
			putLE32(e.b[p-4:], uint32(end-p))
			continue
		}
		e.b[p-1] = byte(end - p)
	}
}

// tailPops undoes the frame before a tail call: callee-saved pops, r12,
// the two tail-call slots, the stack.
func (s *selector) tailPops() {
	e, f := &s.e, s.f
	e.popCallee(&f.callee)
	if f.arena {
		e.emit2(0x41, 0x5C) // pop r12
	}
	e.emit1(0x58) // pop rax
	e.emit1(0x58) // pop rax
	if f.stackDepth != 0 {
		e.emit3(0x48, 0x81, 0xC4) // add rsp, imm32
		e.emit32(uint32(roundUp8(f.stackDepth)))
	}
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
