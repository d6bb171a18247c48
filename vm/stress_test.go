package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/internal/fuzzgen"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// Programs for the stress test, built as BPF and compiled by Load.

const (
	stressHelper      = 1000 // returns r1*3 + 7, allocating on the Go heap
	stressPanicHelper = 1001 // panics
)

func mov64K(dst ir.Register, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: dst, Imm: imm}
}

// helperCallProgram: r0 = helper(r1) + 1; exit.
func helperCallProgram(id int32) *ir.Program {
	return ir.NewProgram("helper", []ir.Instruction{
		{Op: ir.OpCall, Imm: id},
		alu64K(ir.ALUAdd, ir.R0, 1),
		exitInsn,
	})
}

// foreverProgram: r0 = 0; loop: r0 += 1; goto loop.
func foreverProgram() *ir.Program {
	return ir.NewProgram("forever", []ir.Instruction{
		mov64K(ir.R0, 0),
		alu64K(ir.ALUAdd, ir.R0, 1),
		{Op: ir.OpJA, Off: -2},
		exitInsn,
	})
}

// allocProgram: r0 = bpf_arena_alloc_pages(&arena, NULL, 1, -1, 0); exit.
func allocProgram() *ir.Program {
	m := ir.LdImm64(ir.R1, 0)
	m[0].Src = ir.PseudoMapFD
	p := ir.NewProgram("alloc", []ir.Instruction{
		m[0], m[1],
		mov64K(ir.R2, 0), mov64K(ir.R3, 1), mov64K(ir.R4, -1), mov64K(ir.R5, 0),
		{Op: ir.OpCall, Src: ir.CallKfunc},
		exitInsn,
	})
	p.Aux[0].Symbol, p.Aux[0].SymbolKind = "arena", ir.SymMap
	p.Aux[6].Symbol, p.Aux[6].SymbolKind = helpers.KfuncArenaAllocPages, ir.SymKfunc
	p.UsesArena = true
	return p
}

func stressLoad(t testing.TB, p *ir.Program, o Options) *Program {
	t.Helper()
	prog, err := Load(p, &LoadOptions{Options: o, Context: stressContext()})
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return prog
}

// stressContext gives the map symbol "arena" a (made-up) kernel address.
func stressContext() *pipeline.Context {
	return &pipeline.Context{Symbols: map[string]uint64{"arena": 0xffff888100000000}}
}

// genCase is a generated program with the interpreter's result.
type genCase struct {
	prog *ir.Program
	r0   uint64
	mem  []byte
}

func genCases(t testing.TB, n int) []genCase {
	out := make([]genCase, n)
	for k := range out {
		p := fuzzgen.FromSeed(uint64(50_000+k), fuzzgen.Options{Items: 40})
		mem := make([]byte, fuzzgen.MemSize)
		res, err := interp.Run(p, interp.Options{}, mem)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = genCase{p, res.R0, mem}
	}
	return out
}

// TestStress runs, for at least 30 s (BPFC_STRESS_SECONDS overrides), many
// goroutines over many programs at once: generated programs checked against
// the interpreter, arena faults (loads of unallocated pages read 0, stores
// are skipped), helper calls that allocate, a helper that panics (an error
// for that run only), endless loops stopped by a context deadline and by
// a budget, arena allocation to exhaustion (NULL, as in the kernel) and
// back, while other goroutines force garbage collections and load and
// close programs. Every outcome is checked; any unexpected one fails.
func TestStress(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s stress test; skipped with -short")
	}
	dur := 30 * time.Second
	if s := os.Getenv("BPFC_STRESS_SECONDS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		dur = time.Duration(n) * time.Second
	}
	faultArena, err := arena.New(4, arena.Options{})
	if err != nil {
		t.Skipf("arena: %v", err)
	}
	defer faultArena.Close()
	page := faultArena.AllocPages(0, 1)
	binary.LittleEndian.PutUint64(faultArena.Bytes(page, 8), 99)
	faults := arenaProg(t, faultArena)
	defer faults.Close()

	reg := helpers.Kernel().Clone()
	var helperCalls atomic.Int64
	reg.Register(stressHelper, "stress", func(_ *helpers.Context, r1, _, _, _, _ uint64) uint64 {
		helperCalls.Add(1)
		b := make([]byte, 256) // give the GC work
		return r1*3 + 7 + uint64(len(b)) - 256
	})
	reg.Register(stressPanicHelper, "stress_panic", func(*helpers.Context, uint64, uint64, uint64, uint64, uint64) uint64 {
		panic("stress helper panicked on purpose")
	})
	helperP := stressLoad(t, helperCallProgram(stressHelper), Options{Helpers: reg})
	defer helperP.Close()
	panicP := stressLoad(t, helperCallProgram(stressPanicHelper), Options{Helpers: reg})
	defer panicP.Close()
	forever := stressLoad(t, foreverProgram(), Options{YieldInterval: 256})
	defer forever.Close()

	cases := genCases(t, 48)
	gen := make([]*Program, len(cases))
	for k, c := range cases {
		gen[k] = stressLoad(t, c.prog, Options{})
		defer gen[k].Close()
	}

	var (
		fails    atomic.Int64
		firstErr atomic.Value
		counts   [8]atomic.Int64 // per kind
	)
	fail := func(format string, args ...any) {
		if fails.Add(1) == 1 {
			firstErr.Store(fmt.Sprintf(format, args...))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup

	// Runners.
	workers := 8
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for ctx.Err() == nil {
				kind := r.IntN(6)
				counts[kind].Add(1)
				switch kind {
				case 0: // generated program vs interpreter
					k := r.IntN(len(cases))
					mem := make([]byte, fuzzgen.MemSize)
					got, err := gen[k].RunConfig(context.Background(), &RunConfig{Mem: mem})
					if err != nil || got != cases[k].r0 || !bytes.Equal(mem, cases[k].mem) {
						fail("generated %d: r0 %#x want %#x, err %v, mem equal %v", k, got, cases[k].r0, err, bytes.Equal(mem, cases[k].mem))
					}
				case 1: // arena faults
					u, want := page, uint64(100)
					if r.IntN(2) == 1 {
						u, want = page+2*arena.PageSize, 1 // unallocated: load reads 0
					}
					if got, err := faults.Run(context.Background(), u); err != nil || got != want {
						fail("arena fault: got %d, %v; want %d", got, err, want)
					}
				case 2: // helper call
					x := r.Uint64() >> 4
					if got, err := helperP.Run(context.Background(), x); err != nil || got != x*3+8 {
						fail("helper: got %d, %v; want %d", got, err, x*3+8)
					}
				case 3: // panicking helper: an error for this run only
					_, err := panicP.Run(context.Background())
					if err == nil || !strings.Contains(err.Error(), "panicked") {
						fail("panicking helper: err %v", err)
					}
				case 4: // endless loop stopped by a deadline
					c, cc := context.WithTimeout(context.Background(), time.Duration(1+r.IntN(3))*time.Millisecond)
					start := time.Now()
					_, err := forever.Run(c)
					cc()
					if !errors.Is(err, context.DeadlineExceeded) {
						fail("endless loop with deadline: %v", err)
					} else if d := time.Since(start); d > 5*time.Second {
						fail("endless loop stopped only after %v", d)
					}
				case 5: // endless loop stopped by a budget
					_, err := forever.RunConfig(context.Background(), &RunConfig{Budget: int64(1000 + r.IntN(100_000))})
					if !errors.Is(err, ErrBudget) {
						fail("endless loop with budget: %v", err)
					}
				}
			}
		}(g)
	}

	// Arena allocation to exhaustion and back, on a private arena.
	var exhaustions atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		const pages = 8
		a, err := arena.New(pages, arena.Options{})
		if err != nil {
			fail("arena: %v", err)
			return
		}
		defer a.Close()
		p := stressLoad(t, allocProgram(), Options{Arena: a, Helpers: reg})
		defer p.Close()
		for ctx.Err() == nil {
			seen := map[uint64]bool{}
			for i := 0; i < pages; i++ {
				got, err := p.Run(context.Background())
				if err != nil || got == 0 || seen[got] || !a.PageAllocated(got) {
					fail("alloc %d of %d: %#x, %v", i, pages, got, err)
					return
				}
				seen[got] = true
			}
			if got, err := p.Run(context.Background()); err != nil || got != 0 {
				fail("alloc from a full arena: %#x, %v; want NULL", got, err)
				return
			}
			exhaustions.Add(1)
			a.FreePages(a.UserVMStart(), pages)
		}
	}()

	// Forced garbage collections.
	var gcs atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			runtime.GC()
			if gcs.Add(1)%50 == 0 {
				debug.FreeOSMemory()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// Load/close churn of generated programs.
	var churn atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ctx.Err() == nil; k++ {
			c := cases[k%len(cases)]
			p := stressLoad(t, c.prog, Options{})
			mem := make([]byte, fuzzgen.MemSize)
			if got, err := p.RunConfig(context.Background(), &RunConfig{Mem: mem}); err != nil || got != c.r0 {
				fail("churned program %d: %#x, %v", k, got, err)
			}
			if err := p.Close(); err != nil {
				fail("close: %v", err)
			}
			churn.Add(1)
		}
	}()

	wg.Wait()
	var total int64
	for k := range counts {
		total += counts[k].Load()
	}
	t.Logf("%v: %d runs (generated %d, arena faults %d, helper %d, panicking helper %d, deadline loops %d, budget loops %d), %d helper calls, %d arena exhaustions, %d forced GCs, %d programs loaded and closed; %d failures",
		dur, total, counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load(), counts[4].Load(), counts[5].Load(),
		helperCalls.Load(), exhaustions.Load(), gcs.Load(), churn.Load(), fails.Load())
	if n := fails.Load(); n > 0 {
		t.Fatalf("%d failures; first: %v", n, firstErr.Load())
	}
}
