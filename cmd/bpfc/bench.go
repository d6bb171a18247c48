package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/vm"
)

type benchFlags struct {
	inputFlags
	gens      []string
	count     int
	minTime   time.Duration
	run       bool
	useInterp bool
	mem       string
	batch     int
	cpu       bool
	noYield   bool
}

func newBench(g *globals) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench [flags] [INPUT...]",
		Short: "Measure compile throughput (or, with --run, execution speed)",
		Long: `Bench compiles the inputs (objects, raw bytecode, conformance assembly, or programs
made by --gen) many times in-process through the whole path: loading and decoding
(with validation), the pass pipeline, the layout passes and the final pass. It prints
per-stage figures and, as its last line,

  compile: N insns, X ns/insn, Y B/insn, Z allocs/insn, P layout passes

where N is the instructions compiled per iteration, X the wall time per instruction
(--cpu: the process's CPU time, which is steadier on a loaded machine), Y and Z the
heap bytes and allocations per instruction (the output image included) and P the
layout passes the backend took (the most over the programs).

--gen makes programs: straight:N (straight-line ALU, forward jumps, ld_imm64, stack
stores and loads; N slots up to 1,000,000), loop, memsum, calls, empty.
--batch N also compiles N programs (the inputs repeated) with compiler.CompileBatch on
one worker and on all cores and prints the speedup.

--run measures execution instead: the program is loaded into the in-process JIT (vm)
once and run many times (--interp: the reference interpreter); the last line is

  run: R runs, X ns/run, Y ns/insn, E insns/run (jit|interp)`,
		Example: `  bpfc bench --gen straight:65535
  bpfc bench --gen straight:1000000 --count 3
  bpfc bench --gen straight:4000 --batch 64
  bpfc bench --run --gen loop
  bpfc bench --run --interp --gen memsum`,
		RunE: func(cmd *cobra.Command, args []string) error { return f.bench(g, args) },
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&f.gens, "gen", nil, "generated program: "+strings.Join(gen.Shapes, ", ")+" (repeatable)")
	fl.IntVar(&f.count, "count", 0, "iterations to measure (0: as many as fit in --time, at least one)")
	fl.DurationVar(&f.minTime, "time", time.Second, "minimum measuring time when --count is 0")
	fl.BoolVar(&f.run, "run", false, "measure execution in the in-process JIT instead of compilation")
	fl.BoolVar(&f.useInterp, "interp", false, "with --run: the reference interpreter instead of the JIT")
	fl.StringVar(&f.mem, "mem", "", "with --run: memory as hex bytes (default: the file's, or 64 KiB for memsum)")
	fl.IntVar(&f.batch, "batch", 0, "also compile this many programs concurrently (CompileBatch, all cores) and report the speedup over one worker")
	fl.BoolVar(&f.cpu, "cpu", false, "report CPU time instead of wall time on the last line")
	fl.BoolVar(&f.noYield, "no-yield-check", false, "with --run: load without the vm's budget check before backward jumps (vm.LoadOptions.NoYieldCheck: the kernel's exact loop code)")
	return cmd
}

// benchSource is one input before loading: its bytes are decoded again on
// every iteration.
type benchSource struct {
	name  string
	data  []byte
	kind  compiler.Kind
	shape string // --gen shape name ("" for files)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the first field of /proc/loadavg ("?" when unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func (f *benchFlags) sources(g *globals, paths []string) ([]benchSource, error) {
	if len(paths) == 0 && len(f.gens) == 0 {
		return nil, usagef("bench needs an INPUT or --gen")
	}
	kind, err := compiler.ParseKind(f.inputFormat)
	if err != nil {
		return nil, usageError{err}
	}
	var out []benchSource
	for _, s := range f.gens {
		p, err := gen.Parse(s)
		if err != nil {
			return nil, usageError{err}
		}
		name, _, _ := strings.Cut(s, ":")
		out = append(out, benchSource{name: "gen:" + s, data: ir.Encode(p), kind: compiler.KindRaw, shape: name})
	}
	stdinUsed := false
	for _, path := range paths {
		var data []byte
		if path == "-" {
			if stdinUsed {
				return nil, usagef("standard input (-) given more than once")
			}
			stdinUsed = true
			data, err = io.ReadAll(g.stdin)
		} else {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, err
		}
		k := kind
		if k == compiler.KindAuto {
			k = compiler.Detect(path, data)
		}
		out = append(out, benchSource{name: path, data: data, kind: k})
	}
	return out, nil
}

// loadAll decodes every source (the first stage of the whole path).
func (f *benchFlags) loadAll(srcs []benchSource) ([]*compiler.Input, error) {
	eo, err := f.elfOptions()
	if err != nil {
		return nil, err
	}
	var all []*compiler.Input
	for _, s := range srcs {
		ins, err := compiler.LoadBytes(s.name, s.data, compiler.LoadOptions{Kind: s.kind, Prog: f.prog, FromXlated: f.fromXlated, ELF: eo})
		if err != nil {
			return nil, err
		}
		all = append(all, ins...)
	}
	return all, nil
}

func (f *benchFlags) bench(g *globals, args []string) error {
	if f.count < 0 {
		return usagef("--count %d: must not be negative", f.count)
	}
	if f.useInterp && !f.run {
		return usagef("--interp needs --run")
	}
	if f.batch < 0 {
		return usagef("--batch %d: must not be negative", f.batch)
	}
	srcs, err := f.sources(g, args)
	if err != nil {
		return err
	}
	if f.run {
		return f.benchRun(g, srcs)
	}
	return f.benchCompile(g, srcs)
}

// stage accumulates one stage's wall and CPU time.
type stage struct {
	name      string
	wall, cpu time.Duration
}

func (s *stage) timeIt(fn func() error) error {
	t0, c0 := time.Now(), cpuTime()
	err := fn()
	s.wall += time.Since(t0)
	s.cpu += cpuTime() - c0
	return err
}

func (f *benchFlags) benchCompile(g *globals, srcs []benchSource) error {
	t := amd64.Linux618()
	var base []uint64
	if t.PseudoFuncAddr != 0 {
		base = []uint64{t.PseudoFuncAddr}
	}
	stages := []*stage{{name: "decode"}, {name: "passes"}, {name: "backend"}}
	var insns, layoutPasses, image int
	once := func() error {
		var ins []*compiler.Input
		var err error
		if err := stages[0].timeIt(func() error { ins, err = f.loadAll(srcs); return err }); err != nil {
			return err
		}
		n, lp, img := 0, 0, 0
		for _, in := range ins {
			n += in.Prog.Len()
			var res *compiler.Result
			err := stages[1].timeIt(func() error {
				res, err = compiler.Compile(in, compiler.Options{Target: t, FromXlated: f.fromXlated, NoBackend: true, Logger: g.log})
				return err
			})
			if err != nil {
				return err
			}
			var im *amd64.Image
			err = stages[2].timeIt(func() error {
				im, err = amd64.Compile(res.Prog, t, base)
				if err != nil {
					errName := ""
					if in.ElfProg != nil {
						errName = in.Name
					}
					return &compiler.Error{File: in.File, Program: errName, Err: err}
				}
				return nil
			})
			if err != nil {
				return err
			}
			lp = max(lp, im.Passes)
			for _, fn := range im.Funcs {
				img += len(fn.Code) + 4*len(fn.Addrs) + 12*len(fn.Extable)
			}
		}
		insns, layoutPasses, image = n, lp, img
		return nil
	}
	// One warm-up iteration (one-time setup, caches), not measured.
	if err := once(); err != nil {
		return err
	}
	for _, s := range stages {
		s.wall, s.cpu = 0, 0
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0, c0 := time.Now(), cpuTime()
	iters := 0
	for {
		if err := once(); err != nil {
			return err
		}
		iters++
		if f.count > 0 && iters >= f.count || f.count == 0 && time.Since(t0) >= f.minTime {
			break
		}
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	runtime.ReadMemStats(&m1)
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(iters) / float64(insns) }
	w := g.stdout
	fmt.Fprintf(w, "inputs: %s\n", strings.Join(sourceNames(srcs), ", "))
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs (GOMAXPROCS %d), load average %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAvg())
	for _, s := range stages {
		fmt.Fprintf(w, "%-8s %8.1f ns/insn wall, %8.1f ns/insn cpu\n", s.name+":", per(s.wall), per(s.cpu))
	}
	fmt.Fprintf(w, "%d iterations in %v wall, %v cpu; image %d B (%.1f B/insn)\n", iters, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), image, float64(image)/float64(insns))
	if f.batch > 0 {
		if err := f.benchBatch(g, srcs); err != nil {
			return err
		}
	}
	x := per(wall)
	if f.cpu {
		x = per(cpu)
	}
	alloc := float64(m1.TotalAlloc-m0.TotalAlloc) / float64(iters) / float64(insns)
	allocs := float64(m1.Mallocs-m0.Mallocs) / float64(iters) / float64(insns)
	fmt.Fprintf(w, "compile: %d insns, %.1f ns/insn, %.1f B/insn, %.3f allocs/insn, %d layout passes\n", insns, x, alloc, allocs, layoutPasses)
	return nil
}

func sourceNames(srcs []benchSource) []string {
	var out []string
	for _, s := range srcs {
		if s.shape != "" {
			out = append(out, s.name)
		} else {
			out = append(out, filepath.Base(s.name))
		}
	}
	return out
}

// benchBatch compiles f.batch programs (the inputs repeated) with
// CompileBatch on one worker, then on all cores.
func (f *benchFlags) benchBatch(g *globals, srcs []benchSource) error {
	ins, err := f.loadAll(srcs)
	if err != nil {
		return err
	}
	batch := make([]*compiler.Input, f.batch)
	n := 0
	for i := range batch {
		batch[i] = ins[i%len(ins)]
		n += batch[i].Prog.Len()
	}
	o := compiler.Options{FromXlated: f.fromXlated, Logger: g.log}
	measure := func(workers int) (time.Duration, time.Duration, error) {
		t0, c0 := time.Now(), cpuTime()
		_, errs := compiler.CompileBatch(batch, o, workers)
		wall, cpu := time.Since(t0), cpuTime()-c0
		for _, err := range errs {
			if err != nil {
				return 0, 0, err
			}
		}
		return wall, cpu, nil
	}
	if _, _, err := measure(0); err != nil { // warm-up
		return err
	}
	w1, c1, err := measure(1)
	if err != nil {
		return err
	}
	procs := runtime.GOMAXPROCS(0)
	wn, cn, err := measure(procs)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "batch: %d programs, %d insns: 1 worker %v (%.1f ns/insn), %d workers %v (%.1f ns/insn), speedup %.2fx; cpu/wall %.2f and %.2f, load average %s\n",
		len(batch), n, w1.Round(time.Millisecond), float64(w1.Nanoseconds())/float64(n), procs, wn.Round(time.Millisecond),
		float64(wn.Nanoseconds())/float64(n), float64(w1)/float64(wn), float64(c1)/float64(w1), float64(cn)/float64(wn), loadAvg())
	// On a loaded machine the wall-clock speedup only shows what the
	// scheduler gave; the CPU time shows what going parallel costs: with
	// idle cores the speedup would be about procs * cpu1 / cpuN.
	fmt.Fprintf(g.stdout, "batch cpu: 1 worker %v, %d workers %v: parallel overhead %.0f%%, speedup on %d idle cores about %.2fx\n",
		c1.Round(time.Millisecond), procs, cn.Round(time.Millisecond), 100*(float64(cn)/float64(c1)-1), procs, min(float64(procs), float64(procs)*float64(c1)/float64(cn)))
	return nil
}

// benchMemsumMem is memsum's memory: 64 KiB of a fixed pattern.
func benchMemsumMem() []byte {
	mem := make([]byte, gen.MemsumSize)
	for i := range mem {
		mem[i] = byte(i * 7)
	}
	return mem
}

func (f *benchFlags) benchRun(g *globals, srcs []benchSource) error {
	if len(srcs) != 1 {
		return usagef("bench --run takes one input, got %d", len(srcs))
	}
	src := srcs[0]
	ins, err := f.loadAll(srcs)
	if err != nil {
		return err
	}
	if len(ins) != 1 {
		return usagef("bench --run needs exactly one program, got %d: select one with --prog", len(ins))
	}
	in := ins[0]
	var mem []byte
	switch {
	case f.mem != "":
		mem, err = hex.DecodeString(strings.Join(strings.Fields(f.mem), ""))
		if err != nil {
			return usagef("--mem: %v", err)
		}
	case src.shape == "memsum":
		mem = benchMemsumMem()
	case in.Test != nil:
		mem = in.Test.Mem
	}
	errName := ""
	if in.ElfProg != nil {
		errName = in.Name
	}
	ctx := context.Background()
	var runOnce func() (uint64, error)
	executed := gen.Executed(src.shape, len(mem))
	what := "jit"
	// The interpreter counts what a run executes; the JIT run uses that
	// count too when the shape's is not known.
	ip, ierr := interp.Prepare(in.Prog, interp.Options{})
	if f.useInterp {
		what = "interp"
		if ierr != nil {
			return fileErr(in.File, errName, ierr)
		}
		opts := interp.RunOptions{Mem: mem, Context: ctx}
		runOnce = func() (uint64, error) {
			res, err := ip.Run(opts)
			if err != nil {
				return 0, err
			}
			executed = int64(res.Insns)
			return res.R0, nil
		}
	} else {
		if executed == 0 && ierr == nil {
			if res, err := ip.Run(interp.RunOptions{Mem: append([]byte(nil), mem...), Context: ctx}); err == nil {
				executed = int64(res.Insns)
			}
		}
		p, err := vm.Load(in.Prog, &vm.LoadOptions{Options: vm.Options{Name: in.Name}, Xlated: f.fromXlated, NoYieldCheck: f.noYield})
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		defer p.Close()
		// A Runner keeps one stack for all the runs: the cheapest way to
		// call a program many times (Runner.Run when there is no memory).
		r, err := p.NewRunner()
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		defer r.Close()
		rc := &vm.RunConfig{Mem: mem}
		runOnce = func() (uint64, error) { return r.RunConfig(ctx, rc) }
		if len(mem) == 0 {
			runOnce = func() (uint64, error) { return r.Run(0, 0) }
		}
	}
	r0, err := runOnce() // warm-up, and the result printed
	if err != nil {
		return fileErr(in.File, errName, err)
	}
	// Runs are timed in rounds of k, k doubling until a round lasts
	// --time (or --count runs were made).
	k := 1
	if f.count > 0 {
		k = f.count
	}
	var wall, cpu time.Duration
	for {
		t0, c0 := time.Now(), cpuTime()
		for i := 0; i < k; i++ {
			if _, err := runOnce(); err != nil {
				return fileErr(in.File, errName, err)
			}
		}
		wall, cpu = time.Since(t0), cpuTime()-c0
		if f.count > 0 || wall >= f.minTime || k >= 1<<30 {
			break
		}
		k *= 2
	}
	w := g.stdout
	fmt.Fprintf(w, "input: %s (%s), r0 = %#x\n", sourceNames(srcs)[0], in.Name, r0)
	fmt.Fprintf(w, "machine: %s/%s, %d CPUs, load average %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadAvg())
	fmt.Fprintf(w, "%d runs in %v wall, %v cpu (%.1f ns/run cpu)\n", k, wall.Round(time.Microsecond), cpu.Round(time.Microsecond), float64(cpu.Nanoseconds())/float64(k))
	d := wall
	if f.cpu {
		d = cpu
	}
	perRun := float64(d.Nanoseconds()) / float64(k)
	perInsn := "?"
	if executed > 0 {
		perInsn = fmt.Sprintf("%.2f", perRun/float64(executed))
	}
	fmt.Fprintf(w, "run: %d runs, %.1f ns/run, %s ns/insn, %d insns/run (%s)\n", k, perRun, perInsn, executed, what)
	return nil
}

// compileInputs compiles the inputs for bpfc compile. With more than one
// and nothing whose order matters besides the results (no dumps or HTML,
// no per-pass debug logs), they are compiled on all cores with
// compiler.CompileBatch (each with its own default pipeline, as one would
// build); otherwise one after the other with one. Results are in input
// order and the error returned is the first in input order either way.
// Warnings logged while compiling (CO-RE relocations) may interleave, and
// on an error the inputs after the failing one were compiled too (their
// warnings may appear).
func compileInputs(g *globals, inputs []*compiler.Input, o compiler.Options, ordered bool, one func(*compiler.Input) (*compiler.Result, error)) ([]*compiler.Result, error) {
	if len(inputs) > 1 && !ordered && o.Pipeline == nil && !g.log.Core().Enabled(zap.DebugLevel) {
		results, errs := compiler.CompileBatch(inputs, o, 0)
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		return results, nil
	}
	var results []*compiler.Result
	for _, in := range inputs {
		r, err := one(in)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}
