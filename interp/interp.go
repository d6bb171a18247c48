// Package interp is bpfc's reference interpreter: it runs an ir.Program with
// the semantics of RFC 9669 and the Linux kernel, arena included, and serves
// as the oracle for differential tests of the JIT and the vm.
//
// # Design
//
// Prepare validates a program (ir.Validate with the kernel-internal forms
// accepted) and pre-decodes it into a flat array of 16-byte instructions
// whose immediates are already sign-extended, whose bpf-to-bpf call targets
// are absolute, whose ld_imm64 pseudo forms (maps, map values, arena
// globals, functions) are resolved through Options, and whose helper and
// kfunc calls point at Go functions of a helpers.Registry. Run then executes
// this array in one loop with a switch on the opcode byte (a jump table)
// over a 256-entry register file indexed by the raw register fields (no
// masks, no bounds checks), with inline fast paths for the stack and the
// memory buffer; it allocates nothing per instruction. Machines (register
// file, stack, frames) are pooled between runs.
//
// Memory is real process memory: r10 points into a Go-allocated stack of
// MaxCallDepth frames of StackSize bytes (each bpf-to-bpf call gets its own
// frame; a function can reach its own and its callers' frames, never the
// free ones below), r1/r2 point at the run's memory buffer (the conformance
// suite's "mem"), and further regions (context, map values, supplied
// buffers) can be given. Every access is checked against these regions and
// the arena; an access outside all of them stops the run with an *Error
// naming the instruction, never a Go fault. Arena accesses follow the
// kernel's exception-table semantics: PROBE_MEM32 loads of an unallocated
// page give 0 and stores there are skipped, atomics there leave every
// register unchanged. With an arena, plain loads and stores through 32-bit
// arena pointers (clang's unconverted output, or a kernel xlated dump, which
// shows PROBE_MEM32 as MEM) and through user-view addresses get the same
// semantics. A page freed by another goroutine under a running program
// becomes an error, not a crash.
//
// bpf-to-bpf calls save r6..r9 and r10 in a frame record and restore them
// on exit (the kernel's callee-saved convention); the depth limit is 8 frames
// as in the kernel. Tail calls replace the current frame's program with one
// from Options.TailCalls (at most 33 in a chain). bpf_loop runs its
// callback as a sequence of bpf-to-bpf calls inside the loop, and the
// verifier's timed may_goto call (arch_bpf_timed_may_goto, registered by
// the embedder under its kernel-specific immediate) keeps its own register
// convention. Helper 5 of the conformance helper set ("unwind") can stop a
// program early. An
// instruction budget and a context.Context bound a run; both, and the
// optional per-instruction Step hook, are served by the one countdown the
// loop keeps anyway to count instructions.
//
// Maps (array and hash, helpers.Map) and an object's data sections come
// from ObjectMaps; helpers reach the run's memory, maps and arena through a
// helpers.Context. Package progen generates random verifier-friendly
// programs; the tests compare the interpreter with the live kernel on them,
// on the testdata/arena programs and on the conformance suite.
package interp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
)

const (
	// StackSize is the stack of one frame (MAX_BPF_STACK).
	StackSize = 512
	// MaxCallDepth is the kernel's MAX_CALL_FRAMES.
	MaxCallDepth = 8
	// MaxTailCalls is the kernel's MAX_TAIL_CALL_CNT.
	MaxTailCalls = 33
	// MayGotoLoops is BPF_MAX_LOOPS, the may_goto budget of a frame.
	MayGotoLoops = 8 * 1024 * 1024
	// FuncTag marks the value of a ld_imm64 of a BPF function (PseudoFunc):
	// FuncTag | slot. callx of such a value is a bpf-to-bpf call; callx of
	// any other value calls the helper with that id.
	FuncTag = 0xbf00_0000_0000_0000
)

// ErrBudget is wrapped by the error of a run that exhausted its budget.
var ErrBudget = errors.New("instruction budget exhausted")

// Error is a run-time or preparation problem at one instruction.
type Error struct {
	Program string // program name (the tail-called one, if any)
	Index   int    // slot index
	Reason  string
	Err     error // wrapped cause (ErrBudget, a context error, a helper's error)
}

func (e *Error) Error() string {
	s := fmt.Sprintf("instruction %d: %s", e.Index, e.Reason)
	if e.Program != "" {
		s = "program " + e.Program + ": " + s
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Options configure Prepare.
type Options struct {
	// Helpers resolves helper and kfunc calls; nil means helpers.Kernel().
	Helpers *helpers.Registry
	// Arena is the program's arena (for arena accesses, addr_space_cast
	// and the arena kfuncs); nil if the program has none.
	Arena *arena.Arena
	// Symbols resolves ld_imm64 pseudo forms by the Aux.Symbol the loader
	// recorded: map name -> map address (PseudoMapFD), section/map name ->
	// value base address (PseudoMapValue: base + second imm), arena globals
	// section -> its user address (see arena.LoadGlobals). A PseudoMapValue
	// of kind SymArena without an entry resolves to user_vm_start + offset.
	Symbols map[string]uint64
	// MapFDs resolves pseudo forms without a symbol by their imm (fd or
	// fd_array index).
	MapFDs map[int32]uint64
	// Maps are the program's maps by name (see ObjectMaps): a ld_imm64 of
	// a map loads its Addr, of a map value its ValueAddr(0) + offset; the
	// map helpers find them, and their values are accessible memory.
	Maps map[string]*helpers.Map
	// TailCalls is the prog array used by bpf_tail_call (index in r3).
	TailCalls []*Program
}

// Program is a prepared program, safe to run from many goroutines at once.
type Program struct {
	name     string
	src      *ir.Program
	code     []insn
	fns      []helpers.Func // call targets referenced by insn.k of opCallFn
	fnNames  []string
	opts     Options
	layout   arena.Layout
	arenaOps bool // plain accesses in the 32-bit arena window are arena accesses
	maps     []*helpers.Map
	mapSet   map[uint64]*helpers.Map
}

// Name returns the program's name.
func (p *Program) Name() string { return p.name }

// Source returns the program Prepare was given.
func (p *Program) Source() *ir.Program { return p.src }

// SetTailCalls sets the prog array after preparation (programs may refer to
// each other). Call it before running, not concurrently with runs. A
// tail-called program runs with the caller's memory, arena and maps.
func (p *Program) SetTailCalls(progs []*Program) { p.opts.TailCalls = progs }

// Region is extra memory a program may access.
type Region struct {
	Name     string
	Data     []byte
	ReadOnly bool
}

// RunOptions are the inputs of one run.
type RunOptions struct {
	// Mem is the conformance-style memory: r1 = &Mem[0], r2 = len(Mem)
	// (both 0 when empty).
	Mem []byte
	// Ctx, when non-nil, is the context: r1 = &Ctx[0] (r2 keeps Mem's length).
	Ctx []byte
	// Regions are further accessible memory.
	Regions []Region
	// Packet is the packet of legacy LD_ABS/LD_IND loads (default Mem).
	Packet []byte
	// Budget limits the executed instructions (0: unlimited).
	Budget uint64
	// Context cancels a long run (checked every 65536 instructions).
	Context context.Context
	// Trace receives bpf_trace_printk output.
	Trace io.Writer
	// Rand seeds bpf_get_prandom_u32.
	Rand uint64
	// Clock, when set, replaces the monotonic clock of bpf_ktime_get_ns and
	// of timed may_goto.
	Clock func() uint64
	// Args, when non-nil, overrides the initial r1..r5.
	Args *[5]uint64
	// Step, when set, is called before every instruction with the running
	// program (a tail call changes it), the slot about to execute and
	// r0..r10 (r11 included for xlated programs). It may read but must not
	// keep regs. Runs with Step are much slower; without it the loop pays
	// nothing for the feature.
	Step func(p *Program, pc int, regs []uint64)
}

// Result is the outcome of a run.
type Result struct {
	R0      uint64
	Insns   uint64 // executed instructions
	Stopped bool   // a helper stopped the program (conformance "unwind")
}

// internal opcodes in insn.op that are not BPF opcodes (BPF uses every
// class, so these reuse encodings the validator never lets through).
const (
	opCallFn    = 0x8f // helper or kfunc: fns[imm]
	opCallLocal = 0x9d // bpf-to-bpf call, absolute target in k
	opTailCall  = 0xf5 // tail call (helper 12 or kernel-internal)
	opLdImm64   = 0x18
	opCastUser  = 0xe7 // addr_space_cast to user
	opCastKern  = 0xef // addr_space_cast to kernel
	opMovsx64   = 0xf7 // ALU64 MOV X with off 8/16/32, off in off
	opMovsx32   = 0xe4 // ALU MOV X with off 8/16
	opGotox     = 0x0d
	opTimedMay  = 0xfd // call of arch_bpf_timed_may_goto (AX in, AX out)
	opLoop      = 0xed // bpf_loop: callbacks run as bpf-to-bpf calls
	opNop       = 0xff // nospec, second half of ld_imm64 (never reached)
)

// insn is a pre-decoded instruction of 16 bytes. k is the immediate
// sign-extended to 64 bits (ALU/JMP K operands, store values, byte-swap
// widths, atomic operations, gotol offsets), the 64-bit constant of a
// ld_imm64, the absolute target slot of a bpf-to-bpf call, or the index of a
// helper in Program.fns. Jumps use off relative to the next slot, as BPF.
type insn struct {
	op  uint8
	dst uint8
	src uint8
	_   uint8
	off int16
	_   int16
	k   uint64
}

// Prepare validates and pre-decodes p.
func Prepare(p *ir.Program, opts Options) (*Program, error) {
	if p == nil {
		return nil, &Error{Index: -1, Reason: "nil program"}
	}
	if len(p.Aux) != len(p.Insns) {
		q := ir.NewProgram(p.Name, p.Insns)
		copy(q.Aux, p.Aux)
		p = q
	}
	if err := ir.Validate(p, ir.DecodeOptions{Xlated: true}); err != nil {
		return nil, err
	}
	if opts.Helpers == nil {
		opts.Helpers = helpers.Kernel()
	}
	q := &Program{name: p.Name, src: p, opts: opts}
	names := make([]string, 0, len(opts.Maps))
	for name := range opts.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		q.maps = append(q.maps, opts.Maps[name])
	}
	q.mapSet = helpers.MapSet(q.maps...)
	if opts.Arena != nil {
		q.layout = opts.Arena.Layout()
	}
	q.code = make([]insn, len(p.Insns))
	fnIndex := map[string]int32{}
	addFn := func(name string, f helpers.Func) int32 {
		if i, ok := fnIndex[name]; ok {
			return i
		}
		q.fns = append(q.fns, f)
		q.fnNames = append(q.fnNames, name)
		fnIndex[name] = int32(len(q.fns) - 1)
		return int32(len(q.fns) - 1)
	}
	errAt := func(i int, format string, args ...any) error {
		return &Error{Program: p.Name, Index: i, Reason: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(p.Insns); i++ {
		in := p.Insns[i]
		d := insn{op: in.Op, dst: uint8(in.Dst), src: uint8(in.Src), off: in.Off, k: uint64(int64(in.Imm))}
		cls := in.Class()
		switch {
		case in.Op == ir.OpLdImm64:
			v, err := q.resolveImm64(p, i, opts)
			if err != nil {
				return nil, errAt(i, "%v", err)
			}
			d.k = v
			q.code[i+1] = insn{op: opNop}
			q.code[i] = d
			i++
			continue
		case in.IsAddrSpaceCast():
			if in.Imm == ir.CastToUser {
				d.op = opCastUser
			} else {
				d.op = opCastKern
			}
		case cls == ir.ClassALU64 && in.ALUOp() == ir.ALUMov && in.Source() == ir.SourceX && in.Off != 0:
			if in.Off == ir.OffPerCPUAddr {
				d.off = 0 // no per-cpu data here: a plain move
			} else {
				d.op = opMovsx64
			}
		case cls == ir.ClassALU && in.ALUOp() == ir.ALUMov && in.Source() == ir.SourceX && in.Off != 0:
			d.op = opMovsx32
		case cls.IsJump() && in.IsJumpWithOffset():
			// off (or k for gotol) is already relative to the next slot.
		case in.Op == ir.OpTailCall || (in.IsHelperCall() && in.Imm == ir.HelperTailCall):
			d.op = opTailCall
		case in.IsPseudoCall():
			d.op = opCallLocal
			d.k = uint64(p.Target(i))
		case in.IsHelperCall():
			h, ok := opts.Helpers.Helper(in.Imm)
			if !ok {
				return nil, errAt(i, "unknown helper %d", in.Imm)
			}
			d.op = opCallFn
			d.k = uint64(addFn(fmt.Sprintf("helper %d", in.Imm), h.Fn))
			switch h.Name {
			case helpers.NameTimedMayGoto:
				d.op = opTimedMay
			case helpers.NameLoop:
				d.op = opLoop
			}
		case in.IsKfuncCall():
			h, err := opts.Helpers.ResolveKfunc(p.Aux[i].Symbol, in.Imm)
			if err != nil {
				return nil, errAt(i, "%v", err)
			}
			d.op = opCallFn
			d.k = uint64(addFn("kfunc "+h.Name, h.Fn))
		case in.IsCallX():
			d.dst = uint8(in.Dst) | uint8(in.Imm)
		case in.Op == ir.OpNospec:
			d.op = opNop
		case cls == ir.ClassJMP && in.JumpOp() == ir.JumpJA && in.Source() == ir.SourceX:
			d.op = opGotox
		}
		q.code[i] = d
	}
	// With an arena, plain accesses through 32-bit arena pointers take arena
	// semantics too: in clang's output (not converted) and in the kernel's
	// xlated dumps (which show PROBE_MEM32 as MEM but keep PROBE_ATOMIC)
	// that is what the verifier makes of them. Nothing else lives at
	// addresses below 4 GiB + 32 KiB here. Without an arena every arena
	// access faults (loads read 0).
	q.arenaOps = opts.Arena != nil
	return q, nil
}

func (q *Program) resolveImm64(p *ir.Program, i int, opts Options) (uint64, error) {
	first, second := p.Insns[i], p.Insns[i+1]
	aux := p.Aux[i]
	switch first.Src {
	case ir.PseudoNone:
		return ir.Imm64(first, second), nil
	case ir.PseudoFunc:
		return FuncTag | uint64(p.Target(i)), nil
	case ir.PseudoMapFD, ir.PseudoMapIdx, ir.PseudoMapValue, ir.PseudoMapIdxValue, ir.PseudoBTFID:
		var off uint64
		if first.Src == ir.PseudoMapValue || first.Src == ir.PseudoMapIdxValue {
			off = uint64(uint32(second.Imm))
		}
		if aux.Symbol != "" {
			if base, ok := opts.Symbols[aux.Symbol]; ok {
				return base + off, nil
			}
			if m, ok := opts.Maps[aux.Symbol]; ok {
				if first.Src == ir.PseudoMapValue || first.Src == ir.PseudoMapIdxValue {
					if off >= uint64(m.ValueSize) {
						return 0, fmt.Errorf("ld_imm64 of %s+%d: offset past the %d-byte value", aux.Symbol, off, m.ValueSize)
					}
					return m.ValueAddr(0) + off, nil
				}
				return m.Addr(), nil
			}
			if aux.SymbolKind == ir.SymArena && opts.Arena != nil {
				return opts.Arena.UserVMStart() + off, nil
			}
			return 0, fmt.Errorf("ld_imm64 of %s %q: symbol not given", aux.SymbolKind, aux.Symbol)
		}
		if base, ok := opts.MapFDs[first.Imm]; ok && first.Src != ir.PseudoBTFID {
			return base + off, nil
		}
		return 0, fmt.Errorf("ld_imm64 pseudo source %d with imm %d: no address given", first.Src, first.Imm)
	}
	return 0, fmt.Errorf("ld_imm64 pseudo source %d is not supported", first.Src)
}

// Run prepares p with opts and runs it once with mem as r1/r2: a
// convenience for tests and tools.
func Run(p *ir.Program, opts Options, mem []byte) (Result, error) {
	q, err := Prepare(p, opts)
	if err != nil {
		return Result{}, err
	}
	return q.Run(RunOptions{Mem: mem})
}

var machines = sync.Pool{New: func() any { return new(machine) }}

// Run executes the program once.
func (p *Program) Run(ro RunOptions) (res Result, err error) {
	m := machines.Get().(*machine)
	defer func() {
		m.release()
		machines.Put(m)
	}()
	m.runOpts = ro
	m.setup(p, &m.runOpts)
	if p.opts.Arena != nil {
		// Arena pages are checked before every access, but another
		// goroutine may free one between the check and the access. Turn
		// that fault into an error instead of a crash.
		old := debug.SetPanicOnFault(true)
		defer debug.SetPanicOnFault(old)
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			fault, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			res = Result{}
			err = &Error{Program: m.prog.name, Index: m.arenaPC,
				Reason: fmt.Sprintf("memory fault at %#x: an arena page was freed while the program used it", fault.Addr())}
		}()
	}
	return m.run(p, &m.runOpts)
}
