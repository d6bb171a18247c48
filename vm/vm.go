package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/helpers"
)

// execCtx is the execution context at the base of a private stack region.
// Field offsets are fixed: vm_amd64.s uses them, and the code's yield check
// decrements Budget at rsp & -0x10000.
type execCtx struct {
	budget    int64
	gosp      uintptr
	gobp      uintptr
	bpfsp     uintptr
	exit      uint64
	rax       uint64
	rdi       uint64
	rsi       uint64
	rdx       uint64
	rcx       uint64
	r8        uint64
	r9        uint64
	r10       uint64
	r11       uint64
	rbx       uint64
	rbp       uint64
	r12       uint64
	r13       uint64
	r14       uint64
	r15       uint64
	faultPC   uint64
	faultAddr uint64
	faultSig  uint64
	resumed   uint64 // set by resume: enter's return goes through gosp
	refill    int64  // the budget last set (Go side only)
	// registered: the region is in stackTable (Go side only).
	registered uint64
}

// bpfReg returns BPF register r as saved at an exit.
func (c *execCtx) bpfReg(r int) uint64 {
	switch r {
	case 0:
		return c.rax
	case 1:
		return c.rdi
	case 2:
		return c.rsi
	case 3:
		return c.rdx
	case 4:
		return c.rcx
	case 5:
		return c.r8
	case 6:
		return c.rbx
	case 7:
		return c.r13
	case 8:
		return c.r14
	case 9:
		return c.r15
	case 10:
		return c.rbp
	}
	return 0
}

// Implemented in vm_amd64.s.
func enter(ctx unsafe.Pointer, code uintptr)
func resume(ctx unsafe.Pointer)
func enterAt(ctx unsafe.Pointer, code, sp, r1, r2 uintptr)
func stubAddrs() (exit, fault, sig uintptr)
func rtSigaction(sig uintptr, new, old unsafe.Pointer) int64

// machine is the process-wide state: the code region and the handler.
var machine struct {
	once sync.Once
	err  error
	mem  *codeMem
}

func initMachine() (*codeMem, error) {
	machine.once.Do(func() {
		m, err := newCodeMem()
		if err != nil {
			machine.err = err
			return
		}
		codeLo = m.rx
		codeHi = m.rx + codeRegionSize
		if err := installHandler(); err != nil {
			machine.err = err
			return
		}
		machine.mem = m
	})
	return machine.mem, machine.err
}

// CallBase returns the address helper calls are relative to: a helper call
// `call rel32` lands at CallBase + imm. It initialises the vm.
func CallBase() (uint64, error) {
	m, err := initMachine()
	if err != nil {
		return 0, err
	}
	return uint64(m.rx), nil
}

// HelperImm returns the call imm that makes a helper call reach the stub of
// helper id (relative to CallBase).
func HelperImm(id int32) (int32, error) {
	if id < 0 || id >= maxHelperID {
		return 0, fmt.Errorf("helper id %d out of range [0, %d)", id, maxHelperID)
	}
	return int32(stubOffset(int(id))), nil
}

// KfuncImm returns the call imm of kfunc slot k of a program.
func KfuncImm(k int) (int32, error) {
	if k < 0 || k >= maxKfuncSlots {
		return 0, fmt.Errorf("kfunc slot %d out of range [0, %d)", k, maxKfuncSlots)
	}
	return int32(stubOffset(stubIndexKfunc + k)), nil
}

// CallXImm returns the call imm of the stub that calls the helper whose id
// is in BPF register r (callx).
func CallXImm(r int) int32 { return int32(stubOffset(stubIndexCallX + r)) }

// YieldAddr returns the address of the yield stub (the backend's
// Target.YieldAddr).
func YieldAddr() (uint64, error) {
	b, err := CallBase()
	if err != nil {
		return 0, err
	}
	return b + uint64(stubOffset(stubIndexYield)), nil
}

// Writer writes a program's machine code into rw (len(rw) is the size asked
// for), computing every address as if rw began at exec, where it runs. It
// returns the entry point and the exception table (with Base an exec
// address), or nil when the code has no faulting instructions.
type Writer func(rw []byte, exec uint64) (entry uint64, ext *extable.Table, err error)

// Options configure a Program.
type Options struct {
	// Name is used in errors.
	Name string
	// Helpers resolves helper calls by id (and callx); nil uses
	// helpers.Kernel().
	Helpers *helpers.Registry
	// Kfuncs are the functions of the program's kfunc call slots
	// (KfuncImm(k) calls Kfuncs[k]); Load fills it from the vm-helpers pass.
	Kfuncs []helpers.Helper
	// Arena is the program's arena (helpers and kfuncs see it); the code
	// must have been compiled with its KernVMStart/UserVMStart.
	Arena *arena.Arena
	// Maps are the maps the map helpers reach, by the address an ld_imm64
	// of the map loads (helpers.Context.Maps); their values are memory
	// helpers may access.
	Maps map[uint64]*helpers.Map
	// YieldInterval is how many loop back-edges run between exits to Go
	// (the budget counter's refill); 0 means DefaultYieldInterval.
	YieldInterval int64
}

// DefaultYieldInterval is the number of back-edges between yields.
const DefaultYieldInterval = 1 << 14

// Program is machine code placed in the code region, ready to run from any
// number of goroutines at once.
type Program struct {
	name   string
	off    int // in the code region
	size   int
	entry  uintptr
	execLo uint64
	opts   Options
	image  []*amd64.Func // when compiled by Load
	// helperFns caches the registry's functions by id (Options.Helpers is
	// built once and then only read).
	helperFns []helpers.Func

	// refs counts runs in progress and open Runners; Close sets closing
	// and waits for refs to drop to zero before freeing anything.
	refs    atomic.Int64
	closing atomic.Bool
	mu      sync.Mutex
	cond    *sync.Cond
	closed  bool
	cleanup runtime.Cleanup
}

// progMem is a program's place in the code region.
type progMem struct{ off, size int }

// freeProgram removes a program's fault entries and frees its code.
func freeProgram(m progMem) error {
	err := publishFaults(m.off, nil)
	machine.mem.release(m.off, m.size)
	return err
}

// acquire takes a reference for a run; false once Close has begun.
func (p *Program) acquire() bool {
	p.refs.Add(1)
	if p.closing.Load() {
		p.release()
		return false
	}
	return true
}

func (p *Program) release() {
	if p.refs.Add(-1) == 0 && p.closing.Load() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// LoadWriter places size bytes of code written by w and returns the
// program.
func LoadWriter(size int, w Writer, opts *Options) (*Program, error) {
	m, err := initMachine()
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Helpers == nil {
		o.Helpers = helpers.Kernel()
	}
	if o.YieldInterval <= 0 {
		o.YieldInterval = DefaultYieldInterval
	}
	if len(o.Kfuncs) > maxKfuncSlots {
		return nil, fmt.Errorf("vm: %d kfuncs, at most %d", len(o.Kfuncs), maxKfuncSlots)
	}
	if size <= 0 {
		return nil, fmt.Errorf("vm: program size %d", size)
	}
	off, err := m.alloc(size)
	if err != nil {
		return nil, err
	}
	exec := uint64(m.rx) + uint64(off)
	entry, ext, err := w(m.rw[off:off+size:off+size], exec)
	if err == nil && (entry < exec || entry >= exec+uint64(size)) {
		err = fmt.Errorf("vm: entry %#x outside the image [%#x, %#x)", entry, exec, exec+uint64(size))
	}
	var fes []faultEntry
	if err == nil {
		fes, err = faultEntries(ext)
	}
	if err == nil {
		for _, fe := range fes {
			if fe.pc < exec || fe.pc+uint64(fe.len) > exec+uint64(size) {
				err = fmt.Errorf("vm: exception-table entry for pc %#x outside the image", fe.pc)
				break
			}
		}
	}
	if err != nil {
		m.release(off, size)
		return nil, err
	}
	p := &Program{name: o.Name, off: off, size: size, entry: uintptr(entry), execLo: exec, opts: o}
	p.cond = sync.NewCond(&p.mu)
	// A program dropped without Close is freed when the GC finds it
	// unreachable (no run can hold it then: a run references it).
	p.cleanup = runtime.AddCleanup(p, func(m progMem) { freeProgram(m) }, progMem{off, size})
	for _, h := range o.Helpers.Helpers() {
		if h.ID >= 0 && h.ID < maxHelperID {
			for int(h.ID) >= len(p.helperFns) {
				p.helperFns = append(p.helperFns, nil)
			}
			p.helperFns[h.ID] = h.Fn
		}
	}
	if len(fes) > 0 {
		if err := publishFaults(off, fes); err != nil {
			m.release(off, size)
			return nil, err
		}
	}
	return p, nil
}

// Name returns the program's name.
func (p *Program) Name() string { return p.name }

// Entry returns the address the program starts at.
func (p *Program) Entry() uint64 { return uint64(p.entry) }

// Close waits for running calls of the program to finish and its Runners
// to be closed, then removes its exception-table entries and frees its
// code. Runs after Close has begun fail with ErrClosed. Close must not be
// called from a helper of the program itself (it would wait for itself).
func (p *Program) Close() error {
	p.closing.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.refs.Load() != 0 {
		p.cond.Wait()
	}
	if p.closed {
		return nil
	}
	p.closed = true
	p.cleanup.Stop()
	return freeProgram(progMem{p.off, p.size})
}

// ErrClosed is returned by runs of a closed program.
var ErrClosed = errors.New("vm: program is closed")

// ErrBudget is wrapped by the error of a run that exceeds its budget.
var ErrBudget = errors.New("budget exhausted")

// FaultError is a fault inside compiled code at an instruction without an
// exception-table entry: a memory fault (SIGSEGV/SIGBUS), a division error
// (SIGFPE), an invalid instruction (SIGILL) or an int3 (SIGTRAP).
type FaultError struct {
	PC     uint64 // faulting instruction (for SIGTRAP: after the int3)
	Off    uint64 // its offset in the program's image
	Addr   uint64 // faulting address (siginfo si_addr)
	Signal unix.Signal
}

func (e *FaultError) Error() string {
	switch e.Signal {
	case unix.SIGSEGV, unix.SIGBUS:
		return fmt.Sprintf("memory fault (%v) at image offset %#x (pc %#x) accessing %#x", e.Signal, e.Off, e.PC, e.Addr)
	}
	return fmt.Sprintf("%v in compiled code at image offset %#x (pc %#x)", e.Signal, e.Off, e.PC)
}

// RunConfig is one run's input.
type RunConfig struct {
	// Args are R1..R5. An address passed here must stay valid for the
	// whole run and must not point into a goroutine stack (stacks move
	// while helpers run): use Mem or Regions for Go memory, or off-heap
	// memory (an arena).
	Args [5]uint64
	// Mem, when not empty, is passed as R1 = &Mem[0], R2 = len(Mem) (the
	// conformance convention), overriding Args[0:2].
	Mem []byte
	// Budget, when > 0, limits the run to about this many loop back-edges
	// (checked at yields); over it the run fails wrapping ErrBudget.
	Budget int64
	// Regions are further memory the program is given pointers to (by its
	// arguments or through Mem); helpers may access them (helpers.Memory).
	Regions [][]byte
	// Trace receives bpf_trace_printk output.
	Trace io.Writer
}

// Run runs the program with R1..R5 = args (missing ones are 0) and returns
// R0. The context is checked at each yield (every YieldInterval back-edges).
func (p *Program) Run(ctx context.Context, args ...uint64) (uint64, error) {
	var rc RunConfig
	if len(args) > 5 {
		return 0, fmt.Errorf("vm: %d arguments, at most 5", len(args))
	}
	copy(rc.Args[:], args)
	return p.RunConfig(ctx, &rc)
}

// RunMem runs the program with R1 = &mem[0], R2 = len(mem), the
// conformance suite's convention. The program may read and write mem.
func (p *Program) RunMem(ctx context.Context, mem []byte) (uint64, error) {
	return p.RunConfig(ctx, &RunConfig{Mem: mem})
}

// escapeSink forces memory handed to compiled code onto the heap: Go never
// moves heap objects, while a goroutine stack can move during a helper.
var escapeSink struct {
	on bool
	p  unsafe.Pointer
}

// RunConfig runs the program with the given configuration.
func (p *Program) RunConfig(ctx context.Context, rc *RunConfig) (uint64, error) {
	if !p.acquire() {
		return 0, ErrClosed
	}
	defer p.release()
	st, err := getStack()
	if err != nil {
		return 0, err
	}
	defer putStack(st)
	return p.runOn(ctx, st, rc)
}

// runOn runs the program on stack st.
func (p *Program) runOn(ctx context.Context, st *stack, rc *RunConfig) (r0 uint64, err error) {
	args := rc.Args
	if len(rc.Mem) > 0 {
		ptr := unsafe.Pointer(unsafe.SliceData(rc.Mem))
		if escapeSink.on {
			escapeSink.p = ptr
		}
		args[0], args[1] = uint64(uintptr(ptr)), uint64(len(rc.Mem))
	}
	c := st.ctx()
	if c.registered == 0 {
		registerStack(uintptr(st.base))
		c.registered = 1
	}
	c.rdi, c.rsi, c.rdx, c.rcx, c.r8 = args[0], args[1], args[2], args[3], args[4]
	interval := p.opts.YieldInterval
	if rc.Budget > 0 && rc.Budget < interval {
		interval = rc.Budget
	}
	c.budget, c.refill = interval, interval
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	enter(st.base, p.entry)
	if c.exit == exitReturn {
		r0 = c.rax
	} else {
		r0, err = p.loop(ctx, st, rc)
	}
	runtime.KeepAlive(rc.Mem)
	return r0, err
}

// Runner runs one program repeatedly from one goroutine with a private
// stack of its own: the cheapest way to call a program many times. A Runner
// must not be used concurrently. It holds the program open: Close it to
// return its stack and let Program.Close finish.
type Runner struct {
	p  *Program
	st *stack
	rc RunConfig
}

// NewRunner returns a Runner for p.
func (p *Program) NewRunner() (*Runner, error) {
	if !p.acquire() {
		return nil, ErrClosed
	}
	st, err := getStack()
	if err != nil {
		p.release()
		return nil, err
	}
	return &Runner{p: p, st: st}, nil
}

// Close returns the runner's stack and releases the program.
func (r *Runner) Close() {
	if r.st != nil {
		putStack(r.st)
		r.st = nil
		r.p.release()
	}
}

// RunConfig runs the program with a full configuration (context, memory,
// budget, ...) on the runner's stack.
func (r *Runner) RunConfig(ctx context.Context, rc *RunConfig) (uint64, error) {
	if r.st == nil {
		return 0, ErrClosed
	}
	r0, err := r.p.runOn(ctx, r.st, rc)
	runtime.KeepAlive(r)
	return r0, err
}

// Run runs the program with R1, R2 = r1, r2 and no context.
func (r *Runner) Run(r1, r2 uint64) (uint64, error) {
	p := r.p
	if r.st == nil {
		return 0, ErrClosed
	}
	c := r.st.ctx()
	if c.registered == 0 {
		registerStack(uintptr(r.st.base))
		c.registered = 1
	}
	c.rdi, c.rsi = r1, r2
	c.budget, c.refill = p.opts.YieldInterval, p.opts.YieldInterval
	enter(r.st.base, p.entry)
	if c.exit == exitReturn {
		r0 := c.rax
		// r (and through it the program and the stack) must stay
		// reachable while the code runs: their cleanups free the code
		// and the stack region.
		runtime.KeepAlive(r)
		return r0, nil
	}
	r0, err := p.loop(context.Background(), r.st, &r.rc)
	runtime.KeepAlive(r)
	return r0, err
}

// yieldPoint lets the scheduler run: a pending stop-the-world or
// preemption request is honoured here (a plain leaf call would not do, as
// the compiler omits its stack check).
func yieldPoint() {
	yields.Add(1)
	runtime.Gosched()
}

var yields atomic.Uint64

// runState is what a run needs once it leaves the fast path.
type runState struct {
	hctx helpers.Context
	mem  runMem
}

// loop serves the code's exits (helpers, yields, faults) until it returns.
// A helper's panic ends the run with an error (the code is not resumed).
func (p *Program) loop(ctx context.Context, st *stack, rc *RunConfig) (r0 uint64, err error) {
	return p.serve(ctx, st, rc, false)
}

// stopped carries a helper's Stop out of nested runs (bpf_loop callbacks).
type stopped struct{ r0 uint64 }

func (s *stopped) Error() string { return "stopped" }

// serve is loop; nested marks a bpf_loop callback's run.
func (p *Program) serve(ctx context.Context, st *stack, rc *RunConfig, nested bool) (r0 uint64, err error) {
	c := st.ctx()
	used := int64(0)
	var rs *runState
	id := int64(-1)
	defer func() {
		if v := recover(); v != nil {
			r0, err = 0, fmt.Errorf("helper %d panicked: %v", id, v)
		}
	}()
	for {
		code := c.exit
		switch kind := code &^ 0xffff; {
		case code == exitReturn:
			return c.rax, nil
		case kind == exitHelper || kind == exitCallX || kind == exitKfunc:
			if rs == nil {
				rs = &runState{}
				rs.mem = runMem{mem: rc.Mem, regions: append([][]byte(nil), rc.Regions...), arena: p.opts.Arena,
					stack: unsafe.Slice((*byte)(unsafe.Add(st.base, 2*pageSize)), stackRegion-2*pageSize)}
				for _, m := range p.opts.Maps {
					rs.mem.regions = append(rs.mem.regions, m.Values())
				}
				rs.hctx = helpers.Context{Mem: &rs.mem, Arena: p.opts.Arena, Trace: rc.Trace, Maps: p.opts.Maps}
			}
			id = int64(code & 0xffff)
			var fn helpers.Func
			switch kind {
			case exitHelper:
				if int(id) < len(p.helperFns) {
					fn = p.helperFns[id]
				}
			case exitCallX:
				id = int64(c.bpfReg(int(id)))
				if id == int64(int32(id)) {
					fn = p.opts.Helpers.Func(int32(id))
				}
			case exitKfunc:
				if int(id) < len(p.opts.Kfuncs) {
					fn = p.opts.Kfuncs[id].Fn
				}
			}
			if fn == nil {
				return 0, fmt.Errorf("call of unknown helper %d", id)
			}
			var r0 uint64
			if id == helpers.IDLoop && kind != exitKfunc {
				r0, err = p.bpfLoop(ctx, st, rc, c)
				if s, ok := err.(*stopped); ok && !nested {
					return s.r0, nil // a helper in a callback stopped the program
				}
				if err != nil {
					return 0, err
				}
			} else {
				r0 = fn(&rs.hctx, c.rdi, c.rsi, c.rdx, c.rcx, c.r8)
			}
			if ret, ok := rs.hctx.Stopped(); ok {
				if nested {
					return 0, &stopped{ret}
				}
				return ret, nil
			}
			if err := rs.hctx.Err(); err != nil {
				return 0, err
			}
			c.rax = r0
		case code == exitYield:
			used += c.refill
			if rc.Budget > 0 && used >= rc.Budget {
				return 0, fmt.Errorf("program did not finish: %w (%d back-edges)", ErrBudget, used)
			}
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("program did not finish: %w", err)
			}
			interval := p.opts.YieldInterval
			if rc.Budget > 0 && rc.Budget-used < interval {
				interval = rc.Budget - used
			}
			c.budget, c.refill = interval, interval
			yieldPoint()
		case code == exitMayGoto:
			r, err := timedMayGoto(st, c)
			if err != nil {
				return 0, err
			}
			c.r10 = r
		case code == exitFault:
			return 0, &FaultError{PC: c.faultPC, Off: c.faultPC - p.execLo, Addr: c.faultAddr, Signal: unix.Signal(c.faultSig)}
		default:
			return 0, fmt.Errorf("vm: unknown exit code %#x", code)
		}
		resume(st.base)
	}
}

// maxTimedLoops is BPF_MAX_TIMED_LOOPS.
const maxTimedLoops = 0xffff

var monoStart = time.Now()

// timedMayGoto is arch_bpf_timed_may_goto + bpf_check_timed_may_goto: the
// code passes the stack offset of its {count, timestamp} slots in AX (r10),
// relative to its frame pointer (rbp); the new count goes back in AX, every
// other register is preserved. A loop gets a fresh budget of
// BPF_MAX_TIMED_LOOPS iterations until 250 ms have passed since its first
// refill, then 0 (the loop exits).
func timedMayGoto(st *stack, c *execCtx) (uint64, error) {
	addr := c.rbp + c.r10
	lo := uint64(uintptr(st.base)) + 2*pageSize
	if addr < lo || addr+16 > uint64(uintptr(st.base))+stackRegion {
		return 0, fmt.Errorf("may_goto: counter slot %#x outside the stack", addr)
	}
	ts := (*uint64)(unsafe.Add(st.base, addr+8-uint64(uintptr(st.base))))
	now := uint64(time.Since(monoStart).Nanoseconds()) + 1
	if *ts == 0 {
		*ts = now
		return maxTimedLoops, nil
	}
	if now-*ts >= uint64(time.Second/4) {
		return 0, nil
	}
	return maxTimedLoops, nil
}

// Errors of bpf_loop, negated as the kernel returns them.
const (
	errE2BIG  = 7
	errEINVAL = 22
)

// bpfLoop is bpf_loop(nr_loops, callback_fn, callback_ctx, flags): it calls
// the program's function at callback_fn with (index, callback_ctx) until
// it returns non-zero or nr_loops calls are made, and returns the number of
// calls. Each call is a nested run on the same private stack, below the
// suspended caller, whose saved state is put back afterwards.
func (p *Program) bpfLoop(ctx context.Context, st *stack, rc *RunConfig, c *execCtx) (uint64, error) {
	nr, fnAddr, cbCtx, flags := c.rdi, c.rsi, c.rdx, c.rcx
	if flags != 0 {
		return ^uint64(errEINVAL - 1), nil
	}
	if uint32(nr) > 1<<23 || nr>>32 != 0 {
		return ^uint64(errE2BIG - 1), nil
	}
	ok := false
	for _, f := range p.image {
		if f.ExecAddr == fnAddr && f.Start != 0 {
			ok = true
		}
	}
	if !ok {
		return 0, fmt.Errorf("bpf_loop: callback %#x is not a function of the program", fnAddr)
	}
	outer := *c
	// Below the caller's frame, 16-byte aligned, with room for a red zone.
	sp := (uintptr(outer.bpfsp) - 128) &^ 15
	if sp < uintptr(st.base)+3*pageSize {
		return 0, fmt.Errorf("bpf_loop: no stack left for the callback")
	}
	var i uint64
	for i = 0; i < nr; i++ {
		enterAt(st.base, uintptr(fnAddr), sp, uintptr(i), uintptr(cbCtx))
		r0 := c.rax
		if c.exit != exitReturn {
			var err error
			r0, err = p.serve(ctx, st, rc, true)
			if err != nil {
				return 0, err
			}
		}
		budget := c.budget
		*c = outer
		c.budget = budget
		if r0 != 0 {
			return i + 1, nil
		}
	}
	return i, nil
}
