package vm

import (
	"context"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

// The programs of peers.md come from internal/gen, the generators bpfc
// bench runs too.
const (
	loopAsm    = gen.LoopAsm
	memsumAsm  = gen.MemsumAsm
	callsAsm   = gen.CallsAsm
	trivialAsm = gen.EmptyAsm
	// helperLoopAsm calls helper 1 r1 times.
	helperLoopAsm = `
mov %r6, %r1
mov %r7, 0
loop:
mov %r1, %r6
call 1
add %r7, %r0
sub %r6, 1
jne %r6, 0, loop
mov %r0, %r7
exit`
)

func mustAsm(tb testing.TB, text string) *ir.Program {
	p, err := asm.Assemble(text)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func mustLoad(tb testing.TB, text string, opts *Options) *Program {
	var lo LoadOptions
	if opts != nil {
		lo.Options = *opts
	}
	p, err := Load(mustAsm(tb, text), &lo)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func benchHelpers() *helpers.Registry {
	hs := helpers.NewRegistry()
	hs.Register(1, "inc", func(_ *helpers.Context, r1, _, _, _, _ uint64) uint64 { return r1 + 1 })
	return hs
}

// TestBenchPrograms checks the benchmark programs compute the right thing
// on the JIT and agree with the interpreter.
func TestBenchPrograms(t *testing.T) {
	mem := make([]byte, 64<<10)
	var want uint64
	for i := range mem {
		mem[i] = byte(i * 7)
	}
	for i := 0; i < len(mem); i += 8 {
		want += uint64(mem[i]) | uint64(mem[i+1])<<8 | uint64(mem[i+2])<<16 | uint64(mem[i+3])<<24 |
			uint64(mem[i+4])<<32 | uint64(mem[i+5])<<40 | uint64(mem[i+6])<<48 | uint64(mem[i+7])<<56
	}
	var loopWant uint64
	for r1 := uint64(0); r1 < 10000000; r1++ {
		loopWant += r1
		loopWant ^= 0x55
		loopWant += loopWant >> 3
		loopWant &= 0xffffff
		loopWant--
		loopWant *= 3
	}
	for _, tc := range []struct {
		name string
		text string
		mem  []byte
		want uint64
	}{
		{"memsum", memsumAsm, mem, want},
		{"calls", callsAsm, nil, 10000000 * 10000001 / 2},
		{"loop", loopAsm, nil, loopWant},
		{"helpers", helperLoopAsm, nil, 0},
	} {
		p := mustLoad(t, tc.text, &Options{Helpers: benchHelpers()})
		rc := &RunConfig{Mem: tc.mem}
		if tc.name == "helpers" {
			rc.Args[0] = 1000
			tc.want = 1000*1001/2 + 1000
		}
		got, err := p.RunConfig(context.Background(), rc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.name == "calls" || tc.name == "loop" {
			if got != tc.want {
				t.Errorf("%s: jit %d, want %d", tc.name, got, tc.want)
			}
			continue // the interpreter takes seconds for these (see the benchmarks)
		}
		q, err := interp.Prepare(mustAsm(t, tc.text), interp.Options{Helpers: benchHelpers()})
		if err != nil {
			t.Fatal(err)
		}
		ro := interp.RunOptions{Mem: tc.mem}
		if tc.mem == nil {
			ro.Args = &rc.Args
		}
		ires, err := q.Run(ro)
		if err != nil {
			t.Fatalf("%s interp: %v", tc.name, err)
		}
		if got != ires.R0 || (tc.want != 0 && got != tc.want) {
			t.Errorf("%s: jit %d, interp %d, want %d", tc.name, got, ires.R0, tc.want)
		}
	}
}

// threadCPU returns the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMetric locks the goroutine to its thread and, at the end of the
// benchmark, reports the thread's CPU time per op ("cpu-ns/op"): on a
// loaded machine the wall-clock ns/op includes time other processes ran.
func cpuMetric(b *testing.B, per float64, unit string) func() {
	runtime.LockOSThread()
	start := threadCPU()
	return func() {
		d := threadCPU() - start
		runtime.UnlockOSThread()
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		if per > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N)/per, "cpu-ns/"+unit)
		}
	}
}

// BenchmarkRunTrivial: the cost of one run of `r0 = 1; exit`.
func BenchmarkRunTrivial(b *testing.B) {
	p := mustLoad(b, trivialAsm, nil)
	b.Run("Runner", func(b *testing.B) {
		r, err := p.NewRunner()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		defer cpuMetric(b, 0, "")()
		for b.Loop() {
			r.Run(0, 0)
		}
	})
	b.Run("Program.Run", func(b *testing.B) {
		ctx := context.Background()
		defer cpuMetric(b, 0, "")()
		for b.Loop() {
			p.Run(ctx)
		}
	})
}

// BenchmarkHelperCall: ns per helper call (exit to Go, call, resume), from
// a loop of 1000 calls.
func BenchmarkHelperCall(b *testing.B) {
	p := mustLoad(b, helperLoopAsm, &Options{Helpers: benchHelpers()})
	r, err := p.NewRunner()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	defer cpuMetric(b, 1000, "call")()
	for b.Loop() {
		r.Run(1000, 0)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/call")
}

// BenchmarkFaultFixup: one run whose arena load and store both fault on an
// unallocated page and are fixed up by the signal handler (2 faults).
func BenchmarkFaultFixup(b *testing.B) {
	a, err := arena.New(4, arena.Options{})
	if err != nil {
		b.Skip(err)
	}
	defer a.Close()
	p := arenaProg(b, a)
	defer p.Close()
	u := a.UserVMStart() + 2*arena.PageSize
	r, _ := p.NewRunner()
	defer r.Close()
	defer cpuMetric(b, 2, "fault")()
	for b.Loop() {
		r.Run(u, 0)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2), "ns/fault")
}

func benchProgram(b *testing.B, text string, mem []byte, insns float64) {
	for _, noYield := range []bool{false, true} {
		name := "jit"
		if noYield {
			name = "jit-noyield"
		}
		b.Run(name, func(b *testing.B) {
			p, err := Load(mustAsm(b, text), &LoadOptions{NoYieldCheck: noYield})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			defer cpuMetric(b, insns, "insn")()
			for b.Loop() {
				if _, err := p.RunMem(ctx, mem); err != nil {
					b.Fatal(err)
				}
			}
			if insns > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/insns, "ns/insn")
			}
		})
	}
	b.Run("interp", func(b *testing.B) {
		q, err := interp.Prepare(mustAsm(b, text), interp.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer cpuMetric(b, insns, "insn")()
		for b.Loop() {
			if _, err := q.Run(interp.RunOptions{Mem: mem}); err != nil {
				b.Fatal(err)
			}
		}
		if insns > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/insns, "ns/insn")
		}
	})
}

// BenchmarkLoop: 10M iterations, 120M instructions (peers.md "loop").
func BenchmarkLoop(b *testing.B) { benchProgram(b, loopAsm, nil, 120e6) }

// BenchmarkMemsum: sum of a 64 KiB buffer as 8-byte words (peers.md
// "memsum"; multiply by 1000 for the table's figure).
func BenchmarkMemsum(b *testing.B) { benchProgram(b, memsumAsm, make([]byte, 64<<10), 4*8192) }

// BenchmarkCalls: 10M bpf-to-bpf calls (peers.md "calls").
func BenchmarkCalls(b *testing.B) { benchProgram(b, callsAsm, nil, 0) }

// BenchmarkLoad: compile and place a program, then free it.
func BenchmarkLoad(b *testing.B) {
	p := mustAsm(b, loopAsm)
	defer cpuMetric(b, 0, "")()
	for b.Loop() {
		q, err := Load(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		q.Close()
	}
}

//go:noinline
func goTrivial(r1, r2 uint64) (uint64, error) { return 1, nil }

// BenchmarkGoCall is the baseline for BenchmarkRunTrivial: a plain
// non-inlined Go call on the same machine at the same time.
func BenchmarkGoCall(b *testing.B) {
	defer cpuMetric(b, 0, "")()
	for b.Loop() {
		goTrivial(0, 0)
	}
}
