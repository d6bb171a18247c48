package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
)

func ldx(size ir.Size, mode ir.Mode, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(size) | uint8(mode), Dst: dst, Src: src, Off: off}
}

func stx(size ir.Size, mode ir.Mode, dst, src ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(mode), Dst: dst, Src: src, Off: off}
}

func alu64K(op ir.ALUOp, dst ir.Register, imm int32) ir.Instruction {
	return ir.Instruction{Op: aluOp(true, op, ir.SourceK), Dst: dst, Imm: imm}
}

var exitInsn = ir.Instruction{Op: ir.OpExit}

// arenaProg: w1 = w1 (the lowered cast to kernel); r0 = *(u64 *)(r1 + 0)
// and *(u64 *)(r1 + 8) = r0 as PROBE_MEM32; r0 += 1; exit.
func arenaProg(t testing.TB, a *arena.Arena) *Program {
	p := ir.NewProgram("arena", []ir.Instruction{
		mov32Reg(ir.R1),
		ldx(ir.SizeDW, ir.ModeProbeMem32, ir.R0, ir.R1, 0),
		stx(ir.SizeDW, ir.ModeProbeMem32, ir.R1, ir.R0, 8),
		alu64K(ir.ALUAdd, ir.R0, 1),
		exitInsn,
	})
	p.UsesArena = true
	prog, err := Load(p, &LoadOptions{Options: Options{Arena: a}, Xlated: true})
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func TestArenaFaults(t *testing.T) {
	a, err := arena.New(4, arena.Options{})
	if err != nil {
		t.Skipf("arena: %v", err)
	}
	defer a.Close()
	page := a.AllocPages(0, 1)
	if page == 0 {
		t.Fatal("AllocPages failed")
	}
	b := a.Bytes(page, 16)
	binary.LittleEndian.PutUint64(b, 41)
	p := arenaProg(t, a)
	defer p.Close()
	if n := len(p.Image()[0].Extable); n != 2 {
		t.Fatalf("%d extable entries, want 2", n)
	}
	got, err := p.Run(context.Background(), page)
	if err != nil || got != 42 {
		t.Fatalf("allocated page: %d, %v", got, err)
	}
	if v := binary.LittleEndian.Uint64(b[8:]); v != 41 {
		t.Errorf("store through the arena wrote %d", v)
	}
	// An unallocated page: the load faults (r0 cleared), the store faults
	// (skipped); both are fixed up by the handler.
	for _, u := range []uint64{page + 2*arena.PageSize, page + 3*arena.PageSize + 4000, page + 1<<31} {
		got, err := p.Run(context.Background(), u)
		if err != nil || got != 1 {
			t.Errorf("unallocated %#x: %d, %v; want 1", u, got, err)
		}
	}
	a.FreePages(page, 1)
	if got, err := p.Run(context.Background(), page); err != nil || got != 1 {
		t.Errorf("freed page: %d, %v; want 1", got, err)
	}
}

// TestConcurrent runs programs with faults, helpers and yields from many
// goroutines while others load and close programs (republishing the fault
// table) and the GC runs.
func TestConcurrent(t *testing.T) {
	a, err := arena.New(4, arena.Options{})
	if err != nil {
		t.Skipf("arena: %v", err)
	}
	defer a.Close()
	page := a.AllocPages(0, 1)
	binary.LittleEndian.PutUint64(a.Bytes(page, 8), 99)
	ap := arenaProg(t, a)
	defer ap.Close()

	hs := helpers.NewRegistry()
	var calls atomic.Int64
	hs.Register(1, "one", func(_ *helpers.Context, r1, r2, _, _, _ uint64) uint64 {
		calls.Add(1)
		s := make([]byte, 64) // allocate: give the GC work
		return r1*2 + r2 + uint64(len(s)) - 64
	})
	hp := helperProg(t, &Options{Helpers: hs}, 1)
	lp := loopProg(t, &Options{YieldInterval: 100})

	n := 3000
	if testing.Short() {
		n = 300
	}
	stop := make(chan struct{})
	var churned atomic.Int64
	var churn sync.WaitGroup
	churn.Add(1)
	go func() { // load/close churn
		defer churn.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := arenaProg(t, a)
			p.Close()
			churned.Add(1)
			runtime.GC()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				var got, want uint64
				var err error
				switch (g + i) % 3 {
				case 0:
					u := page
					want = 100
					if i%2 == 1 {
						u, want = page+2*arena.PageSize, 1
					}
					got, err = ap.Run(context.Background(), u)
				case 1:
					got, err = hp.Run(context.Background(), uint64(i), 1)
					want = uint64(i)*2 + 1 + 1000
				case 2:
					got, err = lp.Run(context.Background(), uint64(1000+i))
					want = uint64(1000 + i)
				}
				if err == nil && got != want {
					err = fmt.Errorf("goroutine %d run %d: got %d, want %d", g, i, got, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("8 goroutines x %d runs; %d helper calls; %d programs loaded and closed meanwhile", n, calls.Load(), churned.Load())
}

// TestCloseWaits: Close of a running program returns only after the run
// ends, and later runs fail with ErrClosed.
func TestCloseWaits(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	hs := helpers.NewRegistry()
	hs.Register(1, "block", func(_ *helpers.Context, r1, _, _, _, _ uint64) uint64 {
		close(started)
		<-release
		return 5
	})
	h := &hand{}
	imm, _ := HelperImm(1)
	h.callStub("call", imm)
	h.ins("ret", 0xc3)
	p := h.load(t, &Options{Helpers: hs})
	done := make(chan uint64)
	go func() {
		r0, _ := p.Run(context.Background())
		done <- r0
	}()
	<-started
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while the program was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r0 := <-done; r0 != 5 {
		t.Errorf("run returned %d", r0)
	}
	<-closed
	if _, err := p.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("run after Close: %v", err)
	}
}

// TestStackOverflow: unbounded recursion (which the verifier would reject)
// runs into the guard page and ends the run with a FaultError instead of
// corrupting the context or crashing the process.
func TestStackOverflow(t *testing.T) {
	p, err := Load(mustAsm(t, `
call local f
exit
f:
stxdw [%r10-8], %r1
call local f
exit`), &LoadOptions{Pipeline: FallbackPipeline()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 3; i++ {
		_, err = p.Run(context.Background())
		var fe *FaultError
		if !errors.As(err, &fe) {
			t.Fatalf("run %d: %v, want a FaultError", i, err)
		}
	}
	t.Logf("%v", err)
	// the stacks still work
	q := mustLoad(t, trivialAsm, nil)
	if r0, err := q.Run(context.Background()); r0 != 1 || err != nil {
		t.Fatalf("trivial after overflow: %d, %v", r0, err)
	}
}

// TestWX: the code region is mapped twice from one memfd: writable but not
// executable where the backend writes, executable but not writable where
// the code runs.
func TestWX(t *testing.T) {
	m, err := initMachine()
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	rw := uint64(uintptr(unsafe.Pointer(&m.rw[0])))
	perms := map[uint64]string{}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
			continue
		}
		for _, a := range []uint64{rw, uint64(m.rx)} {
			if a >= lo && a < hi {
				perms[a] = f[1]
			}
		}
	}
	if perms[rw] != "rw-s" || perms[uint64(m.rx)] != "r-xs" {
		t.Errorf("rw view %#x: %q, rx view %#x: %q; want rw-s and r-xs", rw, perms[rw], m.rx, perms[uint64(m.rx)])
	}
	if rw == uint64(m.rx) {
		t.Error("one mapping for both views")
	}
}

// TestHelperMemory: helpers reach the stack, the run's memory and regions
// through helpers.Context.Mem, and nothing else.
func TestHelperMemory(t *testing.T) {
	hs := helpers.Kernel()
	hs.Register(200, "sum4", func(c *helpers.Context, r1, _, _, _, _ uint64) uint64 {
		b := c.Mem.Bytes(r1, 4, false)
		if b == nil {
			return ^uint64(0)
		}
		return uint64(b[0]) + uint64(b[1]) + uint64(b[2]) + uint64(b[3])
	})
	// bpf_trace_printk("x=%d\n", 6, 42) with the format on the stack.
	fmtStr := []byte("x=%d\n\x00\x00\x00")
	var trace strings.Builder
	region := []byte{1, 2, 3, 4}
	q := mustLoad(t, fmt.Sprintf(`
mov %%r6, %%r1
lddw %%r1, %#x
stxdw [%%r10-8], %%r1
mov %%r1, %%r10
add %%r1, -8
mov %%r2, 6
mov %%r3, 42
call 6
mov %%r1, %%r6
call 200
exit`, binary.LittleEndian.Uint64(fmtStr)), &Options{Helpers: hs})
	for _, tc := range []struct {
		name string
		r1   uint64
		want uint64
	}{
		{"region", uint64(uintptr(unsafe.Pointer(&region[0]))), 10},
		{"wild pointer", 0x1000, ^uint64(0)},
	} {
		trace.Reset()
		got, err := q.RunConfig(context.Background(), &RunConfig{Args: [5]uint64{tc.r1}, Regions: [][]byte{region}, Trace: &trace})
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
		if trace.String() != "x=42\n" {
			t.Errorf("%s: trace %q", tc.name, trace.String())
		}
	}
	runtime.KeepAlive(region)
	// An unknown helper is a load error naming the instruction.
	_, err := Load(mustAsm(t, "mov %r0, 0\ncall 77\nexit"), &LoadOptions{Options: Options{Helpers: hs}})
	if err == nil || !strings.Contains(err.Error(), "instruction 1: call of helper 77") {
		t.Errorf("unknown helper: %v", err)
	}
}

// TestDroppedProgramIsFreed: a program dropped without Close gives its code
// and fault entries back once the GC finds it unreachable.
func TestDroppedProgramIsFreed(t *testing.T) {
	a, err := arena.New(1, arena.Options{})
	if err != nil {
		t.Skip(err)
	}
	defer a.Close()
	m, _ := initMachine()
	free := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		n := 0
		for _, s := range m.free {
			n += s.size
		}
		return n
	}
	before := free()
	for i := 0; i < 50; i++ {
		p := arenaProg(t, a)
		if _, err := p.Run(context.Background(), a.UserVMStart()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20 && free() < before; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := free(); got < before {
		t.Errorf("free code bytes %d after dropping 50 programs, %d before", got, before)
	}
	faults.mu.Lock()
	n := len(faults.byProg)
	faults.mu.Unlock()
	t.Logf("%d programs with fault entries still loaded", n)
}

func TestRunOnce(t *testing.T) {
	mem := []byte{3, 0, 0, 0, 4, 0, 0, 0}
	p := mustAsm(t, "ldxw %r0, [%r1]\nldxw %r2, [%r1+4]\nmul %r0, %r2\nstxw [%r1], %r0\nexit")
	r0, err := RunOnce(context.Background(), p, nil, &RunConfig{Mem: mem})
	if err != nil || r0 != 12 || mem[0] != 12 {
		t.Errorf("RunOnce: %d, %v, mem %v", r0, err, mem)
	}
	if _, err := RunOnce(context.Background(), mustAsm(t, "mov %r0, 0\nexit"), nil, nil); err != nil {
		t.Error(err)
	}
	if _, err := RunOnce(context.Background(), &ir.Program{}, nil, nil); err == nil {
		t.Error("empty program: no error")
	}
}

// TestStrayReturn: a program (unverified) that overwrites its return
// address returns into garbage; the fault outside the code region still
// ends the run with a FaultError because it happens on a vm stack.
func TestStrayReturn(t *testing.T) {
	p, err := Load(mustAsm(t, `
lddw %r1, 0xdead0000
stxdw [%r10+8], %r1
mov %r0, 1
exit`), &LoadOptions{Pipeline: FallbackPipeline()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 3; i++ {
		_, err := p.Run(context.Background())
		var fe *FaultError
		if !errors.As(err, &fe) || fe.PC != 0xdead0000 {
			t.Fatalf("run %d: %v, want a FaultError at pc 0xdead0000", i, err)
		}
	}
	// Go's own faults are still Go's.
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("nil dereference did not panic")
			}
		}()
		var q *int
		_ = *q
	}()
}

// loopProgram: acc = 0; n = bpf_loop(r1, cb, &acc, 0); return acc | n<<32,
// where cb(i, ctx) does *ctx = *ctx*3 + i and stops after index 6.
func loopProgram() *ir.Program {
	fn := ir.LdImm64(ir.R2, 0)
	fn[0].Src = ir.PseudoFunc
	insns := []ir.Instruction{
		{Op: uint8(ir.ClassST) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R10, Off: -8}, // 0: *(u64 *)(r10-8) = 0
		fn[0], fn[1], // 1-2: r2 = cb
		{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: ir.R3, Src: ir.R10}, // 3
		alu64K(ir.ALUAdd, ir.R3, -8),                                      // 4
		mov64K(ir.R4, 0),                                                  // 5
		{Op: ir.OpCall, Imm: 181},                                         // 6: bpf_loop
		alu64K(ir.ALULsh, ir.R0, 32),                                      // 7
		ldx(ir.SizeDW, ir.ModeMEM, ir.R1, ir.R10, -8),                     // 8
		{Op: aluOp(true, ir.ALUOr, ir.SourceX), Dst: ir.R0, Src: ir.R1},   // 9
		exitInsn, // 10
		// cb at 11
		ldx(ir.SizeDW, ir.ModeMEM, ir.R3, ir.R2, 0),                      // 11
		alu64K(ir.ALUMul, ir.R3, 3),                                      // 12
		{Op: aluOp(true, ir.ALUAdd, ir.SourceX), Dst: ir.R3, Src: ir.R1}, // 13
		stx(ir.SizeDW, ir.ModeMEM, ir.R2, ir.R3, 0),                      // 14
		mov64K(ir.R0, 0), // 15
		{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJNE), Dst: ir.R1, Off: 1, Imm: 6}, // 16
		mov64K(ir.R0, 1), // 17
		exitInsn,         // 18
	}
	insns[1].Imm = 11 - 2 // target = 1 + 1 + imm
	return ir.NewProgram("loop", insns)
}

func TestBPFLoop(t *testing.T) {
	var acc uint64
	for i := uint64(0); i <= 6; i++ {
		acc = acc*3 + i
	}
	for _, tc := range []struct {
		nr   uint64
		want uint64
	}{
		{100, acc | 7<<32},
		{3, (0*9 + 0*3 + 1*3 + 2) | 3<<32},
		{0, 0},
	} {
		p, err := Load(loopProgram(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Run(context.Background(), tc.nr)
		p.Close()
		if err != nil || got != tc.want {
			t.Errorf("bpf_loop(%d): %#x, %v; want %#x", tc.nr, got, err, tc.want)
		}
	}
	// the interpreter agrees (r1 = nr through Args)
	q, err := interp.Prepare(loopProgram(), interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	args := [5]uint64{100}
	res, err := q.Run(interp.RunOptions{Args: &args})
	if err != nil || res.R0 != acc|7<<32 {
		t.Errorf("interpreter: %#x, %v", res.R0, err)
	}
}

// TestBPFLoopStop: a helper that stops the program inside a bpf_loop
// callback stops the whole program.
func TestBPFLoopStop(t *testing.T) {
	hs := helpers.Kernel()
	hs.Register(5, "unwind", helpers.Unwind)
	prog := loopProgram()
	// cb: call unwind(r1) first: index 0 stops the program with r0 = 0.
	cb := 11
	if err := prog.Insert(cb, []ir.Instruction{
		{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: ir.R6, Src: ir.R2},
		{Op: ir.OpCall, Imm: 5},
		{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: ir.R2, Src: ir.R6},
	}); err != nil {
		t.Fatal(err)
	}
	p, err := Load(prog, &LoadOptions{Options: Options{Helpers: hs}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, err := p.Run(context.Background(), 100)
	if err != nil || got != 0 {
		t.Errorf("stopped in a callback: %#x, %v; want 0", got, err)
	}
}
