// Package fuzzgen turns arbitrary bytes into valid, terminating eBPF programs
// for differential testing of the JIT (run in the vm) against the reference
// interpreter, both from `go test -fuzz` and from fixed seeds.
//
// # Design
//
// The generator is driven by a byte stream: every choice (which operation,
// which register, which offset, how far a jump goes) consumes bytes of the
// input, and an exhausted input reads as zeros, so any byte string — including
// what the fuzzer mutates — yields a program, and small mutations of the input
// give small changes of the program. FromSeed fills the stream from a PRNG for
// the fixed-seed corpus.
//
// Programs use the conformance suite's convention: r1 = &mem[0], r2 = len(mem)
// with len(mem) = MemSize. The prologue copies r1 to r9 (the memory base,
// never written again), gives r0..r8 constants from the stream and fills eight
// stack slots; the epilogue stores r0..r8 at mem[ScratchSize:] and exits with
// r0. Every executor must therefore end with the same r0 and the same mem.
//
// The body is a sequence of items:
//
//   - ALU and ALU64 operations of every kind and form (K and X, sdiv/smod,
//     movsx, bswap, le/be, neg, shifts by registers of any value), with
//     division and modulo by a register that is often zero and signed
//     division of INT_MIN by -1;
//   - loads (also sign-extending), stores (ST and STX) of every size to
//     mem[0:ScratchSize] through r9 and to the stack through r10,
//     naturally aligned as the verifier requires;
//   - atomics (add/or/and/xor with and without fetch, xchg, cmpxchg; W and
//     DW) on the stack (the verifier allows no atomics on the context);
//   - ld_imm64 constants;
//   - forward conditional and unconditional jumps (JMP and JMP32, K and X)
//     to a later item of the same block (never into an ld_imm64);
//   - bounded loops: `rC = n; body; rC -= 1; if rC != 0 goto body` with n
//     from 1 to MaxTrips, nested at most two deep, whose counter register
//     (r8, then r7) the body leaves alone;
//   - with Options.Calls, bpf-to-bpf calls (outside loops) of functions
//     placed after main, each with its own frame.
//
// No address reaches the result (r9 and r10 are never copied to another
// register), so the outputs do not depend on where memory lives.
package fuzzgen

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/bpfc/bpfc/ir"
)

const (
	// ScratchSize is the part of mem the body reads and writes.
	ScratchSize = 64
	// MemSize is the whole memory: the scratch area then r0..r8.
	MemSize = ScratchSize + 9*8
	// MaxTrips bounds each loop's iteration count.
	MaxTrips = 6
	// StackSlots is the number of 8-byte stack slots the body uses.
	StackSlots = 8
)

// Options shape the programs.
type Options struct {
	// Items is the number of items of the top-level block (default 32).
	Items int
	// DivImmZero allows division and modulo by an immediate 0 (which the
	// kernel's verifier rejects; RFC 9669 defines the result).
	DivImmZero bool
	// Calls adds Callees functions after main: main (and a callee, of a
	// later callee) calls them with bpf-to-bpf calls; each has its own
	// stack frame, initialises its registers and slots, works on its
	// stack only, and returns r0. After a call the caller re-initialises
	// r1..r5 (which the call clobbers).
	Calls bool
}

// Callees is the number of functions after main when Options.Calls is set.
const Callees = 2

// stream hands out the input's bytes; past the end it reads zeros.
type stream struct {
	b   []byte
	pos int
}

func (s *stream) byte() byte {
	if s.pos >= len(s.b) {
		return 0
	}
	c := s.b[s.pos]
	s.pos++
	return c
}

func (s *stream) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if n <= 256 {
		return int(s.byte()) % n
	}
	return int(uint16(s.byte())|uint16(s.byte())<<8) % n
}

func (s *stream) u64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = s.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

// value returns an interesting 64-bit constant: small, boundary or random.
func (s *stream) value() uint64 {
	switch s.intn(8) {
	case 0:
		return 0
	case 1:
		return uint64(int64(s.intn(33)) - 16)
	case 2:
		return []uint64{1 << 63, 1<<63 - 1, 1 << 31, 1<<31 - 1, 0xffffffff, 0x80000000ffffffff, 1 << 32}[s.intn(7)]
	case 3:
		return uint64(uint32(s.u64()))
	default:
		return s.u64()
	}
}

// FromSeed returns the program of a fixed seed.
func FromSeed(seed uint64, opts Options) *ir.Program {
	r := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1))
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return Generate(b, opts)
}

// Generate returns the program the bytes describe. It never fails.
func Generate(data []byte, opts Options) *ir.Program {
	if opts.Items <= 0 {
		opts.Items = 32
	}
	g := &gen{s: stream{b: data}, opts: opts}
	var out []ir.Instruction
	out = append(out, mov64X(ir.R9, ir.R1))
	for r := ir.R0; r <= ir.R8; r++ {
		l := ir.LdImm64(r, g.s.value())
		out = append(out, l[0], l[1])
	}
	for k := 1; k <= StackSlots; k++ {
		out = append(out, ir.Instruction{Op: stxOp(ir.SizeDW, ir.ModeMEM), Dst: ir.R10, Src: g.reg(nil), Off: int16(-8 * k)})
	}
	out = append(out, g.block(opts.Items, nil)...)
	if opts.Calls {
		// Every function is called at least once (the verifier rejects
		// unreachable code): main calls the first callee here, each
		// callee the next before it returns.
		out = append(out, g.call(1)...)
	}
	for r := ir.R0; r <= ir.R8; r++ {
		out = append(out, ir.Instruction{Op: stxOp(ir.SizeDW, ir.ModeMEM), Dst: ir.R9, Src: r, Off: int16(ScratchSize + 8*int(r))})
	}
	out = append(out, ir.Instruction{Op: ir.OpExit})
	if opts.Calls {
		starts := make([]int, Callees)
		for c := 0; c < Callees; c++ {
			starts[c] = len(out)
			g.callee = c + 1
			for r := ir.R0; r <= ir.R8; r++ {
				if r < ir.R1 || r > ir.R5 {
					l := ir.LdImm64(r, g.s.value())
					out = append(out, l[0], l[1])
				}
			}
			for k := 1; k <= StackSlots; k++ {
				out = append(out, ir.Instruction{Op: stxOp(ir.SizeDW, ir.ModeMEM), Dst: ir.R10, Src: g.src(), Off: int16(-8 * k)})
			}
			out = append(out, g.block(4+g.s.intn(opts.Items), nil)...)
			if c+1 < Callees {
				out = append(out, g.call(c+2)...)
			}
			out = append(out, ir.Instruction{Op: ir.OpExit})
		}
		// The calls' imm holds the callee number until here.
		for i := range out {
			if out[i].IsPseudoCall() {
				out[i].Imm = int32(starts[out[i].Imm-1] - (i + 1))
			}
		}
	}
	return ir.NewProgram("fuzzgen", out)
}

type gen struct {
	s      stream
	opts   Options
	depth  int
	callee int // 0 in main, k in callee k (1-based)
}

// item is a piece of a block; jump, when >= 0, is the index of the item a
// jump at the item's first instruction goes to (len(items) = block end).
type item struct {
	insns  []ir.Instruction
	jump   int
	jumpAt int // index in insns of the jump to resolve
}

var loopCounters = []ir.Register{ir.R8, ir.R7}

// reg picks a register the body may write (r0..r8 minus the live loop
// counters in busy).
func (g *gen) reg(busy []ir.Register) ir.Register {
	for {
		r := ir.Register(g.s.intn(9))
		free := true
		for _, b := range busy {
			if b == r {
				free = false
			}
		}
		if free {
			return r
		}
		// Deterministic fallback so that exhausted input terminates.
		if g.s.pos >= len(g.s.b) {
			for c := ir.R0; c <= ir.R8; c++ {
				if c != busy[0] && (len(busy) < 2 || c != busy[1]) {
					return c
				}
			}
		}
	}
}

// src picks a register the body may read (any of r0..r8).
func (g *gen) src() ir.Register { return ir.Register(g.s.intn(9)) }

func (g *gen) block(n int, busy []ir.Register) []ir.Instruction {
	items := make([]item, 0, n)
	for len(items) < n {
		items = append(items, g.item(len(items), n, busy))
	}
	// Resolve the jumps: slot position of every item start.
	pos := make([]int, len(items)+1)
	for i, it := range items {
		pos[i+1] = pos[i] + len(it.insns)
	}
	var out []ir.Instruction
	for i, it := range items {
		if it.jump >= 0 {
			it.insns[it.jumpAt].Off = int16(pos[it.jump] - pos[i] - it.jumpAt - 1)
		}
		out = append(out, it.insns...)
	}
	return out
}

func (g *gen) item(at, n int, busy []ir.Register) item {
	none := func(insns ...ir.Instruction) item { return item{insns: insns, jump: -1} }
	switch k := g.s.intn(34); {
	case k < 12:
		return none(g.alu(busy)...)
	case k < 16:
		return none(g.load(busy))
	case k < 20:
		return none(g.store())
	case k < 23:
		return none(g.atomic(busy)...)
	case k < 24:
		l := ir.LdImm64(g.reg(busy), g.s.value())
		return none(l[0], l[1])
	case k < 29:
		// Forward jump to a later item of this block (or its end).
		target := at + 1 + g.s.intn(min(n-at, 8))
		j := g.jump(busy)
		if j.Op == ir.OpJA {
			// The code a goto skips must stay reachable (the verifier
			// rejects unreachable instructions): a conditional jump
			// over the goto leads to it.
			c := g.jump(busy)
			if c.Op == ir.OpJA { // (not a loop: exhausted input gives JA forever)
				c = ir.Instruction{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ) | uint8(ir.SourceK), Dst: g.src()}
			}
			c.Off = 1
			return item{insns: []ir.Instruction{c, j}, jump: target, jumpAt: 1}
		}
		return item{insns: []ir.Instruction{j}, jump: target}
	case k < 32:
		if g.depth >= len(loopCounters) || len(busy) > g.depth {
			return none(g.alu(busy)...)
		}
		return none(g.loop(busy)...)
	default:
		if !g.opts.Calls || g.callee >= Callees || g.depth > 0 {
			return none(g.alu(busy)...)
		}
		return none(g.call(g.callee + 1 + g.s.intn(Callees-g.callee))...)
	}
}

// call calls callee c (1-based; the imm holds c until Generate resolves
// it) with r1..r5 set, and sets r1..r5 again after it.
func (g *gen) call(c int) []ir.Instruction {
	var out []ir.Instruction
	for r := ir.R1; r <= ir.R5; r++ {
		out = append(out, ir.Instruction{Op: aluOp(true, ir.ALUMov, ir.SourceK), Dst: r, Imm: int32(g.s.value())})
	}
	out = append(out, ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: int32(c)})
	for r := ir.R1; r <= ir.R5; r++ {
		out = append(out, ir.Instruction{Op: aluOp(true, ir.ALUMov, ir.SourceK), Dst: r, Imm: int32(g.s.value())})
	}
	return out
}

func (g *gen) loop(busy []ir.Register) []ir.Instruction {
	c := loopCounters[g.depth]
	trips := 1 + g.s.intn(MaxTrips)
	inner := append(append([]ir.Register(nil), busy...), c)
	g.depth++
	body := g.block(1+g.s.intn(8), inner)
	g.depth--
	out := []ir.Instruction{{Op: aluOp(true, ir.ALUMov, ir.SourceK), Dst: c, Imm: int32(trips)}}
	out = append(out, body...)
	out = append(out, ir.Instruction{Op: aluOp(true, ir.ALUSub, ir.SourceK), Dst: c, Imm: 1})
	// if c != 0 goto body: from the slot after this jump back to the body's start.
	out = append(out, ir.Instruction{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJNE) | uint8(ir.SourceK), Dst: c, Off: int16(-(len(body) + 2))})
	return out
}

var jumpOps = []ir.JumpOp{ir.JumpJEQ, ir.JumpJGT, ir.JumpJGE, ir.JumpJSET, ir.JumpJNE, ir.JumpJSGT,
	ir.JumpJSGE, ir.JumpJLT, ir.JumpJLE, ir.JumpJSLT, ir.JumpJSLE}

func (g *gen) jump(busy []ir.Register) ir.Instruction {
	k := g.s.intn(16)
	if k == 0 {
		return ir.Instruction{Op: ir.OpJA}
	}
	class := ir.ClassJMP
	if g.s.intn(2) == 1 {
		class = ir.ClassJMP32
	}
	op := jumpOps[g.s.intn(len(jumpOps))]
	if g.s.intn(2) == 0 {
		return ir.Instruction{Op: uint8(class) | uint8(op) | uint8(ir.SourceK), Dst: g.src(), Imm: int32(g.s.value())}
	}
	return ir.Instruction{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: g.src(), Src: g.src()}
}

var aluOps = []ir.ALUOp{ir.ALUAdd, ir.ALUSub, ir.ALUMul, ir.ALUDiv, ir.ALUOr, ir.ALUAnd, ir.ALULsh,
	ir.ALURsh, ir.ALUNeg, ir.ALUMod, ir.ALUXor, ir.ALUMov, ir.ALUArsh, ir.ALUEnd}

func (g *gen) alu(busy []ir.Register) []ir.Instruction {
	is64 := g.s.intn(2) == 1
	op := aluOps[g.s.intn(len(aluOps))]
	dst := g.reg(busy)
	class := ir.ClassALU
	if is64 {
		class = ir.ClassALU64
	}
	switch op {
	case ir.ALUNeg:
		return []ir.Instruction{{Op: uint8(class) | uint8(op), Dst: dst}}
	case ir.ALUEnd:
		width := []int32{16, 32, 64}[g.s.intn(3)]
		switch g.s.intn(3) {
		case 0: // bswap (ALU64 END, cpu v4)
			return []ir.Instruction{{Op: uint8(ir.ClassALU64) | uint8(ir.ALUEnd), Dst: dst, Imm: width}}
		case 1:
			return []ir.Instruction{{Op: uint8(ir.ClassALU) | uint8(ir.ALUEnd) | uint8(ir.EndToLE), Dst: dst, Imm: width}}
		default:
			return []ir.Instruction{{Op: uint8(ir.ClassALU) | uint8(ir.ALUEnd) | uint8(ir.EndToBE), Dst: dst, Imm: width}}
		}
	case ir.ALULsh, ir.ALURsh, ir.ALUArsh:
		if g.s.intn(2) == 0 {
			bits := 32
			if is64 {
				bits = 64
			}
			return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceK), Dst: dst, Imm: int32(g.s.intn(bits))}}
		}
		return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: g.src()}}
	case ir.ALUMov:
		if g.s.intn(3) == 0 {
			// movsx: 8/16 (and 32 for ALU64) bit sign extension.
			widths := []int16{8, 16}
			if is64 {
				widths = append(widths, 32)
			}
			return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: g.src(), Off: widths[g.s.intn(len(widths))]}}
		}
	case ir.ALUDiv, ir.ALUMod:
		var off int16
		if g.s.intn(2) == 1 {
			off = ir.OffSigned
		}
		switch g.s.intn(6) {
		case 0: // divide by a register that is zero
			z := g.reg(busy)
			return []ir.Instruction{
				{Op: uint8(class) | uint8(ir.ALUMov) | uint8(ir.SourceK), Dst: z},
				{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: z, Off: off},
			}
		case 1: // INT_MIN / -1 (signed) or by -1
			m := g.reg(busy)
			if m == dst {
				break
			}
			minv := ir.LdImm64(dst, 1<<63)
			if !is64 {
				minv = ir.LdImm64(dst, 1<<31)
			}
			return []ir.Instruction{minv[0], minv[1],
				{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceK), Dst: m, Imm: -1},
				{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: m, Off: off},
			}
		case 2: // immediate -1
			return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceK), Dst: dst, Imm: -1, Off: off}}
		case 3:
			imm := int32(g.s.value())
			if imm == 0 && !g.opts.DivImmZero {
				imm = 7
			}
			return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceK), Dst: dst, Imm: imm, Off: off}}
		}
		return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: g.src(), Off: off}}
	}
	if g.s.intn(2) == 0 {
		return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceK), Dst: dst, Imm: int32(g.s.value())}}
	}
	return []ir.Instruction{{Op: uint8(class) | uint8(op) | uint8(ir.SourceX), Dst: dst, Src: g.src()}}
}

var sizes = []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW}

// addr picks a base register (r9 = mem or r10 = stack; only the stack in
// a callee) and a naturally aligned offset where an access of size bytes
// fits (the verifier wants context and stack accesses aligned).
func (g *gen) addr(size int, stackOnly bool) (ir.Register, int16) {
	if g.s.intn(2) == 0 && g.callee == 0 && !stackOnly {
		off := g.s.intn(ScratchSize-size+1) &^ (size - 1)
		return ir.R9, int16(off)
	}
	off := size + g.s.intn(8*StackSlots-size+1) // bytes below r10
	off = (off + size - 1) &^ (size - 1)
	return ir.R10, int16(-off)
}

func (g *gen) load(busy []ir.Register) ir.Instruction {
	size := sizes[g.s.intn(4)]
	mode := ir.ModeMEM
	if size != ir.SizeDW && g.s.intn(3) == 0 {
		mode = ir.ModeMEMSX
	}
	base, off := g.addr(size.Bytes(), false)
	return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(size) | uint8(mode), Dst: g.reg(busy), Src: base, Off: off}
}

func (g *gen) store() ir.Instruction {
	size := sizes[g.s.intn(4)]
	base, off := g.addr(size.Bytes(), false)
	if g.s.intn(3) == 0 {
		return ir.Instruction{Op: uint8(ir.ClassST) | uint8(size) | uint8(ir.ModeMEM), Dst: base, Off: off, Imm: int32(g.s.value())}
	}
	return ir.Instruction{Op: stxOp(size, ir.ModeMEM), Dst: base, Src: g.src(), Off: off}
}

var atomicOps = []int32{ir.AtomicAdd, ir.AtomicOr, ir.AtomicAnd, ir.AtomicXor,
	ir.AtomicAdd | ir.AtomicFetch, ir.AtomicOr | ir.AtomicFetch, ir.AtomicAnd | ir.AtomicFetch,
	ir.AtomicXor | ir.AtomicFetch, ir.AtomicXchg, ir.AtomicCmpXchg}

func (g *gen) atomic(busy []ir.Register) []ir.Instruction {
	size := ir.SizeW
	if g.s.intn(2) == 1 {
		size = ir.SizeDW
	}
	op := atomicOps[g.s.intn(len(atomicOps))]
	base, off := g.addr(size.Bytes(), true)
	src := g.src()
	if op&ir.AtomicFetch != 0 {
		// The fetched value lands in src (r0 for cmpxchg): it must be writable.
		src = g.reg(busy)
		if op == ir.AtomicCmpXchg {
			for _, b := range busy {
				if b == ir.R0 {
					return nil
				}
			}
		}
	}
	return []ir.Instruction{{Op: stxOp(size, ir.ModeATOMIC), Dst: base, Src: src, Off: off, Imm: op}}
}

func aluOp(is64 bool, op ir.ALUOp, s ir.Source) uint8 {
	c := ir.ClassALU
	if is64 {
		c = ir.ClassALU64
	}
	return uint8(c) | uint8(op) | uint8(s)
}

func mov64X(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: dst, Src: src}
}

func stxOp(s ir.Size, m ir.Mode) uint8 { return uint8(ir.ClassSTX) | uint8(s) | uint8(m) }
