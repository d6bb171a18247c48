// Package progen generates random eBPF programs that the Linux verifier
// accepts, for differential testing of the interpreter, the JIT and the live
// kernel.
//
// A program takes a context of CtxSize bytes in r1 (a syscall program's
// ctx), keeps it in r9, initializes r0..r8 with random 64-bit constants and
// eight stack slots, then runs a random body of ALU/ALU64 operations (every
// operation and form, including sdiv/smod, movsx, bswap/le/be, shifts by
// registers), stack loads and stores of every size (sign-extending loads
// too), atomics on stack slots and forward conditional jumps (JMP and JMP32,
// K and X). The epilogue stores r0..r8 and the stack slots into the context
// and returns r0. Nothing depends on addresses, so every executor must
// produce the same context bytes: they are the result to compare.
//
// Programs are verifier-friendly by construction: registers and slots are
// initialized before use, r9/r10 are never clobbered, jumps only go
// forward, immediate divisors are non-zero and immediate shift amounts are in
// range. The same seed always gives the same program (math/rand/v2 PCG).
package progen

import (
	"math/rand/v2"

	"github.com/bpfc/bpfc/ir"
)

// CtxSize is the context the programs read and write: r0..r8 at 0..71,
// stack slots 1..6 at 72..119.
const CtxSize = 128

// Options shape the generated programs.
type Options struct {
	Insns     int  // body length in instructions (default 64)
	NoAtomics bool // leave out atomic operations
	NoJumps   bool // straight-line code only
	NoV4      bool // leave out cpu v4 forms (sdiv/smod, movsx, bswap, ldxs*, gotol)
	// Calls adds two functions that main calls (bpf-to-bpf calls with
	// their own stack frames; r6..r9 and main's stack must survive them).
	Calls bool
	// Arena makes main allocate ArenaAllocPages pages of the arena map
	// named ArenaMap (bpf_arena_alloc_pages, called by name as ir/elf
	// records kfuncs) and keep a 32-bit arena pointer to them in r7; about
	// half of main's memory accesses and atomics then go to the arena, at
	// offsets in allocated pages, in unallocated ones and in the guard
	// region below the arena (faults: loads read 0, stores are skipped).
	// The arena must have at least ArenaMinPages pages and its first
	// pages must be free.
	Arena bool
	// AcquireRelease adds load-acquire and store-release (B/H/W/DW) on
	// stack slots to the atomics.
	AcquireRelease bool
	// Loops (with Calls) turns half of the calls into bpf_loop calls of a
	// callback that adds its index to one of main's stack slots and
	// returns 0 or 1 (stop). The kernel loads such programs only with BTF
	// func_info for the callback.
	Loops bool
}

const (
	ArenaMap        = "arena"
	ArenaAllocPages = 2
	ArenaMinPages   = 4
)

const slots = 8 // stack slots r10-8 .. r10-64

type gen struct {
	r        *rand.Rand
	opts     Options
	insns    []ir.Instruction
	calls    []callFix
	syms     map[int]ir.Aux // aux data of symbol references
	inCallee bool
}

type callFix struct{ at, callee int }

// calleeCount is how many functions a program with Calls has besides main
// (and the bpf_loop callback, function loopCallee).
const (
	calleeCount = 2
	loopCallee  = calleeCount
)

// Generate returns the program for seed.
func Generate(seed uint64, opts Options) *ir.Program {
	if opts.Insns <= 0 {
		opts.Insns = 64
	}
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), opts: opts, syms: map[int]ir.Aux{}}
	g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R9, Src: ir.R1})
	if opts.Arena {
		// r7 = (u32)bpf_arena_alloc_pages(&arena, NULL, 2, NUMA_NO_NODE, 0)
		g.syms[len(g.insns)] = ir.Aux{Symbol: ArenaMap, SymbolKind: ir.SymMap}
		g.emit(ir.Instruction{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapFD}, ir.Instruction{})
		g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R2},
			ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R3, Imm: ArenaAllocPages},
			ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R4, Imm: -1},
			ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R5})
		g.syms[len(g.insns)] = ir.Aux{Symbol: "bpf_arena_alloc_pages", SymbolKind: ir.SymKfunc}
		g.emit(ir.Instruction{Op: ir.OpCall, Src: ir.CallKfunc},
			ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R7, Src: ir.R0, Off: ir.OffAddrSpaceCast, Imm: ir.CastToKernel})
	}
	for r := ir.R0; r <= ir.R8; r++ {
		if opts.Arena && r == ir.R7 {
			continue
		}
		s := ir.LdImm64(r, g.value())
		g.emit(s[0], s[1])
	}
	for k := 1; k <= slots; k++ {
		g.emit(ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R10, Src: g.reg(), Off: int16(-8 * k)})
	}
	g.body(opts.Insns, opts.Calls)
	if opts.Arena {
		// The arena pointer goes to ctx as 0: only data is compared.
		g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R7})
	}
	for r := ir.R0; r <= ir.R8; r++ {
		g.emit(ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R9, Src: r, Off: int16(8 * r)})
	}
	for k := 1; k <= 6; k++ {
		g.emit(ir.Instruction{Op: ldx(ir.SizeDW, ir.ModeMEM), Dst: ir.R1, Src: ir.R10, Off: int16(-8 * k)})
		g.emit(ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R9, Src: ir.R1, Off: int16(72 + 8*(k-1))})
	}
	g.emit(ir.Instruction{Op: ir.OpExit})
	// Emit only the callees main calls: an uncalled function would be
	// unreachable code, which the verifier rejects.
	starts := map[int]int{}
	for c := 0; c < calleeCount; c++ {
		for _, f := range g.calls {
			if f.callee == c {
				starts[c] = len(g.insns)
				g.callee(opts.Insns/2 + 1)
				break
			}
		}
	}
	for _, f := range g.calls {
		if f.callee == loopCallee {
			starts[loopCallee] = len(g.insns)
			g.callback(opts.Insns/2 + 1)
			break
		}
	}
	for _, f := range g.calls {
		g.insns[f.at].Imm = int32(starts[f.callee] - (f.at + 1))
	}
	p := ir.NewProgram("progen", g.insns)
	for i, a := range g.syms {
		p.Aux[i].Symbol, p.Aux[i].SymbolKind = a.Symbol, a.SymbolKind
	}
	return p
}

func (g *gen) emit(ins ...ir.Instruction) { g.insns = append(g.insns, ins...) }

// value returns an interesting 64-bit constant.
func (g *gen) value() uint64 {
	switch g.r.IntN(8) {
	case 0:
		return uint64(g.r.IntN(16))
	case 1:
		return uint64(int64(-g.r.IntN(16)))
	case 2:
		return []uint64{0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 1 << 63, 1<<63 - 1, ^uint64(0)}[g.r.IntN(7)]
	case 3:
		return uint64(g.r.Uint32())
	case 4:
		return uint64(int64(int32(g.r.Uint32())))
	}
	return g.r.Uint64()
}

func (g *gen) imm() int32 {
	switch g.r.IntN(4) {
	case 0:
		return int32(g.r.IntN(16))
	case 1:
		return -int32(g.r.IntN(16))
	case 2:
		return []int32{0x7fffffff, -0x80000000, -1, 0x7fff, -0x8000}[g.r.IntN(5)]
	}
	return int32(g.r.Uint32())
}

// reg picks r0..r8 (without r7, the arena pointer, in arena programs).
func (g *gen) reg() ir.Register {
	if g.opts.Arena {
		return []ir.Register{ir.R0, ir.R1, ir.R2, ir.R3, ir.R4, ir.R5, ir.R6, ir.R8}[g.r.IntN(8)]
	}
	return ir.Register(g.r.IntN(9))
}

// arenaAccess decides whether a memory access goes to the arena.
func (g *gen) arenaAccess() bool {
	return g.opts.Arena && !g.inCallee && g.r.IntN(2) == 0
}

// arenaOff returns an offset from the arena pointer, aligned for size: in
// the allocated pages (mostly), in the unallocated page after them, or in
// the guard region below the arena.
func (g *gen) arenaOff(size ir.Size) int16 {
	n := size.Bytes()
	var lo, span int
	switch k := g.r.IntN(8); {
	case k < 6:
		lo, span = 0, ArenaAllocPages*4096
	case k < 7:
		lo, span = ArenaAllocPages*4096, 4096
	default:
		lo, span = -4096, 4096
	}
	return int16(lo + n*g.r.IntN(span/n))
}

func alu64(op ir.ALUOp, src ir.Source) uint8 { return uint8(ir.ClassALU64) | uint8(op) | uint8(src) }
func alu32(op ir.ALUOp, src ir.Source) uint8 { return uint8(ir.ClassALU) | uint8(op) | uint8(src) }
func stx(s ir.Size) uint8                    { return uint8(ir.ClassSTX) | uint8(s) | uint8(ir.ModeMEM) }
func st(s ir.Size) uint8                     { return uint8(ir.ClassST) | uint8(s) | uint8(ir.ModeMEM) }
func ldx(s ir.Size, m ir.Mode) uint8         { return uint8(ir.ClassLDX) | uint8(s) | uint8(m) }

var aluOps = []ir.ALUOp{ir.ALUAdd, ir.ALUSub, ir.ALUMul, ir.ALUDiv, ir.ALUOr, ir.ALUAnd, ir.ALULsh,
	ir.ALURsh, ir.ALUNeg, ir.ALUMod, ir.ALUXor, ir.ALUMov, ir.ALUArsh, ir.ALUEnd}

var jumpOps = []ir.JumpOp{ir.JumpJEQ, ir.JumpJGT, ir.JumpJGE, ir.JumpJSET, ir.JumpJNE, ir.JumpJSGT,
	ir.JumpJSGE, ir.JumpJLT, ir.JumpJLE, ir.JumpJSLT, ir.JumpJSLE}

var sizes = []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW}

// body emits n steps (one instruction each, or a call block with
// callees); forward jumps land on a step boundary inside the body or just
// after it.
func (g *gen) body(n int, calls bool) {
	type fix struct{ at, step int }
	var fixes []fix
	bounds := make([]int, 0, n+1) // slot where each step starts
	for i := 0; i < n; i++ {
		bounds = append(bounds, len(g.insns))
		k := g.r.IntN(100)
		switch {
		case k < 55:
			g.alu()
		case k < 72:
			g.mem()
		case k < 80 && !g.opts.NoAtomics:
			g.atomic()
		case k < 95 && !g.opts.NoJumps && i+1 < n:
			// Jump forward by 1..8 steps, staying in the body or landing
			// on the epilogue. Unconditional jumps go to the next step:
			// skipping code would leave it unreachable, which the
			// verifier rejects.
			step := i + 1 + g.r.IntN(8)
			if step > n {
				step = n
			}
			at := len(g.insns)
			g.jump()
			if op := g.insns[at].Op; op == ir.OpJA || op == ir.OpGotoL {
				step = i + 1
			}
			fixes = append(fixes, fix{at, step})
		case k < 99 && calls:
			if g.opts.Loops && g.r.IntN(2) == 0 {
				g.loopCall()
			} else {
				g.call()
			}
		default:
			g.alu()
		}
	}
	bounds = append(bounds, len(g.insns))
	for _, f := range fixes {
		ins := &g.insns[f.at]
		d := bounds[f.step] - (f.at + 1)
		if ins.Op == ir.OpGotoL {
			ins.Imm = int32(d)
		} else {
			ins.Off = int16(d)
		}
	}
}

// call emits a bpf-to-bpf call of a random callee and re-initializes the
// argument registers it clobbers (the verifier forbids reading them).
func (g *gen) call() {
	g.calls = append(g.calls, callFix{at: len(g.insns), callee: g.r.IntN(calleeCount)})
	g.emit(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal})
	for r := ir.R1; r <= ir.R5; r++ {
		g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: r, Imm: g.imm()})
	}
}

// loopCall emits bpf_loop(1..8, &callback, r10-8, 0) and re-initializes
// the argument registers.
func (g *gen) loopCall() {
	g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R1, Imm: int32(1 + g.r.IntN(8))})
	g.calls = append(g.calls, callFix{at: len(g.insns), callee: loopCallee})
	g.emit(ir.Instruction{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc}, ir.Instruction{},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R3, Src: ir.R10},
		ir.Instruction{Op: alu64(ir.ALUAdd, ir.SourceK), Dst: ir.R3, Imm: -8},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R4},
		ir.Instruction{Op: ir.OpCall, Imm: 181}) // bpf_loop
	for r := ir.R1; r <= ir.R5; r++ {
		g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: r, Imm: g.imm()})
	}
}

// callback emits the bpf_loop callback (index in r1, ctx = pointer to a
// stack slot of main in r2): *ctx += index, then a random body on scalars
// only, and r0 = 0 or 1.
func (g *gen) callback(n int) {
	g.inCallee = true
	defer func() { g.inCallee = false }()
	g.emit(ir.Instruction{Op: ldx(ir.SizeDW, ir.ModeMEM), Dst: ir.R3, Src: ir.R2},
		ir.Instruction{Op: alu64(ir.ALUAdd, ir.SourceX), Dst: ir.R3, Src: ir.R1},
		ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R2, Src: ir.R3},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R2, Imm: g.imm()},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R0, Src: ir.R1},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R4, Imm: g.imm()},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R5, Imm: g.imm()},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R6, Src: ir.R1},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R7, Src: ir.R3},
		ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceK), Dst: ir.R8, Imm: g.imm()})
	for k := 1; k <= slots; k++ {
		g.emit(ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R10, Src: g.reg(), Off: int16(-8 * k)})
	}
	g.body(n, false)
	g.emit(ir.Instruction{Op: alu64(ir.ALUAnd, ir.SourceK), Dst: ir.R0, Imm: 1},
		ir.Instruction{Op: ir.OpExit})
}

// callee emits one function: it takes r1..r5, initializes the registers
// and stack slots it uses from them, runs a random body and returns r0.
func (g *gen) callee(n int) {
	g.inCallee = true
	defer func() { g.inCallee = false }()
	g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: ir.R0, Src: ir.R1})
	for r := ir.R6; r <= ir.R8; r++ {
		g.emit(ir.Instruction{Op: alu64(ir.ALUMov, ir.SourceX), Dst: r, Src: r - 4})
	}
	for k := 1; k <= slots; k++ {
		g.emit(ir.Instruction{Op: stx(ir.SizeDW), Dst: ir.R10, Src: g.reg(), Off: int16(-8 * k)})
	}
	g.body(n, false)
	g.emit(ir.Instruction{Op: ir.OpExit})
}

func (g *gen) alu() {
	op := aluOps[g.r.IntN(len(aluOps))]
	is64 := g.r.IntN(2) == 0
	dst := g.reg()
	src := ir.SourceK
	if g.r.IntN(2) == 0 {
		src = ir.SourceX
	}
	mk := func(op ir.ALUOp, src ir.Source) uint8 {
		if is64 {
			return alu64(op, src)
		}
		return alu32(op, src)
	}
	ins := ir.Instruction{Op: mk(op, src), Dst: dst}
	if src == ir.SourceX {
		ins.Src = g.reg()
	} else {
		ins.Imm = g.imm()
	}
	bits := int32(32)
	if is64 {
		bits = 64
	}
	switch op {
	case ir.ALUNeg:
		ins = ir.Instruction{Op: mk(op, ir.SourceK), Dst: dst}
	case ir.ALULsh, ir.ALURsh, ir.ALUArsh:
		if src == ir.SourceK {
			ins.Imm = int32(g.r.IntN(int(bits)))
		}
	case ir.ALUDiv, ir.ALUMod:
		if src == ir.SourceK && ins.Imm == 0 {
			ins.Imm = 3
		}
		if !g.opts.NoV4 && g.r.IntN(2) == 0 {
			ins.Off = ir.OffSigned
		}
	case ir.ALUMov:
		if src == ir.SourceX && !g.opts.NoV4 && g.r.IntN(3) == 0 {
			offs := []int16{8, 16}
			if is64 {
				offs = append(offs, 32)
			}
			ins.Off = offs[g.r.IntN(len(offs))]
		}
	case ir.ALUEnd:
		width := []int32{16, 32, 64}[g.r.IntN(3)]
		switch {
		case is64 && !g.opts.NoV4: // bswap
			ins = ir.Instruction{Op: alu64(ir.ALUEnd, ir.EndToLE), Dst: dst, Imm: width}
		default: // le / be
			order := ir.EndToLE
			if g.r.IntN(2) == 0 {
				order = ir.EndToBE
			}
			ins = ir.Instruction{Op: alu32(ir.ALUEnd, order), Dst: dst, Imm: width}
		}
	}
	g.emit(ins)
}

// slotOff returns an offset inside the stack slots aligned for size.
func (g *gen) slotOff(size ir.Size) int16 {
	n := size.Bytes()
	max := slots * 8 / n
	return int16(-n * (1 + g.r.IntN(max)))
}

func (g *gen) mem() {
	size := sizes[g.r.IntN(4)]
	base, off := ir.R10, int16(0)
	if g.arenaAccess() {
		base, off = ir.R7, g.arenaOff(size)
	} else {
		off = g.slotOff(size)
	}
	switch g.r.IntN(3) {
	case 0:
		mode := ir.ModeMEM
		if size != ir.SizeDW && !g.opts.NoV4 && g.r.IntN(2) == 0 {
			mode = ir.ModeMEMSX
		}
		g.emit(ir.Instruction{Op: ldx(size, mode), Dst: g.reg(), Src: base, Off: off})
	case 1:
		g.emit(ir.Instruction{Op: stx(size), Dst: base, Src: g.reg(), Off: off})
	default:
		g.emit(ir.Instruction{Op: st(size), Dst: base, Off: off, Imm: g.imm()})
	}
}

func (g *gen) atomic() {
	if g.opts.AcquireRelease && g.r.IntN(3) == 0 {
		size := sizes[g.r.IntN(4)]
		off := g.slotOff(size)
		op := uint8(ir.ClassSTX) | uint8(size) | uint8(ir.ModeATOMIC)
		if g.r.IntN(2) == 0 { // dst = load_acquire(r10 + off)
			g.emit(ir.Instruction{Op: op, Dst: g.reg(), Src: ir.R10, Off: off, Imm: ir.AtomicLoadAcq})
		} else { // store_release(r10 + off, src)
			g.emit(ir.Instruction{Op: op, Dst: ir.R10, Src: g.reg(), Off: off, Imm: ir.AtomicStoreRel})
		}
		return
	}
	size := ir.SizeDW
	if g.r.IntN(2) == 0 {
		size = ir.SizeW
	}
	ops := []int32{ir.AtomicAdd, ir.AtomicOr, ir.AtomicAnd, ir.AtomicXor,
		ir.AtomicAdd | ir.AtomicFetch, ir.AtomicOr | ir.AtomicFetch, ir.AtomicAnd | ir.AtomicFetch,
		ir.AtomicXor | ir.AtomicFetch, ir.AtomicXchg, ir.AtomicCmpXchg}
	if g.arenaAccess() {
		// The x86 JIT has no and/or/xor with fetch on arena memory.
		ops = []int32{ir.AtomicAdd, ir.AtomicOr, ir.AtomicAnd, ir.AtomicXor,
			ir.AtomicAdd | ir.AtomicFetch, ir.AtomicXchg, ir.AtomicCmpXchg}
		g.emit(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(ir.ModeATOMIC),
			Dst: ir.R7, Src: g.reg(), Off: g.arenaOff(size), Imm: ops[g.r.IntN(len(ops))]})
		return
	}
	g.emit(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(ir.ModeATOMIC),
		Dst: ir.R10, Src: g.reg(), Off: g.slotOff(size), Imm: ops[g.r.IntN(len(ops))]})
}

func (g *gen) jump() {
	if !g.opts.NoV4 && g.r.IntN(12) == 0 {
		g.emit(ir.Instruction{Op: ir.OpGotoL})
		return
	}
	if g.r.IntN(12) == 0 {
		g.emit(ir.Instruction{Op: ir.OpJA})
		return
	}
	cls := ir.ClassJMP
	if g.r.IntN(2) == 0 {
		cls = ir.ClassJMP32
	}
	op := jumpOps[g.r.IntN(len(jumpOps))]
	ins := ir.Instruction{Op: uint8(cls) | uint8(op), Dst: g.reg()}
	if g.r.IntN(2) == 0 {
		ins.Op |= uint8(ir.SourceX)
		ins.Src = g.reg()
	} else {
		ins.Imm = g.imm()
	}
	g.emit(ins)
}
