package interp

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/interp/progen"
	"github.com/bpfc/bpfc/ir"
)

var updateRandom = flag.Bool("update-random", false, "run the generated programs in the live kernel and rewrite testdata/random_runs.json")

const (
	randomGolden        = "testdata/random_runs.json"
	randomPrograms      = 1000
	randomCallPrograms  = 300
	randomArenaPrograms = 300
	randomAcqPrograms   = 200
	randomLoopPrograms  = 200
)

// randomRun is the live kernel's result for one generated program.
type randomRun struct {
	Seed        uint64            `json:"seed"`
	Retval      uint32            `json:"retval"`
	CtxOut      string            `json:"ctx_out"`
	Arena       map[string]string `json:"arena,omitempty"` // non-zero 64-byte chunks
	KernelError string            `json:"kernel_error,omitempty"`
}

// Seeds from callSeeds on generate programs with bpf-to-bpf calls, from
// arenaSeeds on programs using an arena (half of them with calls too).
const (
	callSeeds  = 100_001
	arenaSeeds = 200_001
	acqSeeds   = 300_001
	loopSeeds  = 400_001
	// randomArenaUser is the arena's user_vm_start (map_extra).
	randomArenaUser = 0x1_0000_0000
)

func randomOptions(seed uint64) progen.Options {
	o := progen.Options{Insns: 16 + int(seed%97), Calls: seed >= callSeeds}
	if seed >= arenaSeeds && seed < acqSeeds {
		o.Arena, o.Calls = true, seed%2 == 0
	}
	if seed >= acqSeeds && seed < loopSeeds {
		o.AcquireRelease, o.Calls = true, seed%2 == 0
	}
	if seed >= loopSeeds {
		o.Calls, o.Loops, o.Arena = true, true, seed%2 == 0
	}
	return o
}

func randomSeeds(short bool) []uint64 {
	n, c, a, q := uint64(randomPrograms), uint64(randomCallPrograms), uint64(randomArenaPrograms), uint64(randomAcqPrograms)
	if short {
		n, c, a, q = 50, 20, 20, 20
	}
	var s []uint64
	for i := uint64(1); i <= n; i++ {
		s = append(s, i)
	}
	for i := uint64(0); i < c; i++ {
		s = append(s, callSeeds+i)
	}
	for i := uint64(0); i < a; i++ {
		s = append(s, arenaSeeds+i)
	}
	for i := uint64(0); i < q; i++ {
		s = append(s, acqSeeds+i)
	}

	return s
}

func randomCtx(seed uint64) []byte {
	ctx := make([]byte, progen.CtxSize)
	for i := range ctx {
		ctx[i] = byte(seed*31 + uint64(i)*7)
	}
	return ctx
}

// TestRandomProgramsMatchKernel runs generated programs (every ALU form,
// stack memory of every size, atomics, forward jumps) in the interpreter
// and in the live kernel (BPF_PROG_TEST_RUN of a syscall program, so the
// kernel's JIT runs them) and compares r0 and the full register/stack dump
// the programs write to their context. Without BPF the committed kernel
// results are the reference.
func TestRandomProgramsMatchKernel(t *testing.T) {
	var golden []randomRun
	if b, err := os.ReadFile(randomGolden); err == nil {
		if err := json.Unmarshal(b, &golden); err != nil {
			t.Fatal(err)
		}
	}
	bySeed := map[uint64]randomRun{}
	for _, g := range golden {
		bySeed[g.Seed] = g
	}
	ok, reason := kernelAvailable()
	if *updateRandom && !ok {
		t.Fatalf("-update-random needs the live kernel: %s", reason)
	}
	seeds := randomSeeds(testing.Short())
	n := len(seeds)
	var fresh []randomRun
	matched, rejected := 0, 0
	for _, seed := range seeds {
		opts := randomOptions(seed)
		p := progen.Generate(seed, opts)
		got, err := runRandomInterp(seed, p, opts)
		if err != nil {
			t.Errorf("seed %d: interpreter: %v", seed, err)
			continue
		}
		var want randomRun
		var have bool
		if ok {
			want, err = runRandomInKernel(seed, p, opts)
			var le *kernel.LoadError
			if errors.As(err, &le) {
				want.KernelError = firstLine(le.Error())
			} else if err != nil {
				t.Fatalf("seed %d: kernel: %v", seed, err)
			}
			fresh = append(fresh, want)
			have = true
		} else {
			want, have = bySeed[seed]
		}
		if !have {
			t.Errorf("seed %d: no kernel result (capture with -update-random where BPF works)", seed)
			continue
		}
		if want.KernelError != "" {
			rejected++
			continue
		}
		if want.Retval != got.Retval || want.CtxOut != got.CtxOut {
			t.Errorf("seed %d: interpreter r0=%#x ctx=%s, kernel r0=%#x ctx=%s", seed, got.Retval, got.CtxOut, want.Retval, want.CtxOut)
			continue
		}
		if d := diffRuns(arenaRun{Arena: want.Arena}, arenaRun{Arena: got.Arena}); d != "" {
			t.Errorf("seed %d: arena contents differ:%s", seed, d)
			continue
		}
		matched++
	}
	t.Logf("%d/%d generated programs match the kernel (%d rejected by the verifier; live kernel: %v %s)", matched, n, rejected, ok, reason)
	if rejected > n/10 {
		t.Errorf("the verifier rejected %d of %d generated programs", rejected, n)
	}
	if *updateRandom {
		b, _ := json.MarshalIndent(fresh, "", " ")
		if err := os.WriteFile(randomGolden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runRandomInterp(seed uint64, p *ir.Program, opts progen.Options) (randomRun, error) {
	run := randomRun{Seed: seed}
	o := Options{}
	var a *arena.Arena
	if opts.Arena {
		var err error
		a, err = arena.New(progen.ArenaMinPages, arena.Options{UserVMStart: randomArenaUser})
		if err != nil {
			return run, err
		}
		defer a.Close()
		o.Arena, o.Symbols = a, map[string]uint64{progen.ArenaMap: fakeMapAddr}
	}
	q, err := Prepare(p, o)
	if err != nil {
		return run, err
	}
	ctx := randomCtx(seed)
	res, err := q.Run(RunOptions{Ctx: ctx, Budget: 1_000_000})
	if err != nil {
		return run, err
	}
	run.Retval, run.CtxOut = uint32(res.R0), hex.EncodeToString(ctx)
	if a != nil {
		run.Arena = arenaChunks(func(off int) []byte { return a.Bytes(a.UserVMStart()+uint64(off), 64) }, int(a.Size()))
	}
	return run, nil
}

func runRandomInKernel(seed uint64, p *ir.Program, opts progen.Options) (randomRun, error) {
	run := randomRun{Seed: seed}
	spec := &kernel.Spec{Name: "progen", Type: kernel.Syscall, Program: p, NoLineInfo: true}
	if opts.Arena {
		p = p.Clone()
		for i := range p.Insns {
			if p.Insns[i].IsLdImm64() && p.Aux[i].Symbol == progen.ArenaMap {
				p.Insns[i].Src, p.Insns[i].Imm = ir.PseudoMapIdx, 0
			}
		}
		spec.Program = p
		spec.Maps = []kernel.MapDef{{Type: kernel.MapArena, MaxEntries: progen.ArenaMinPages, Extra: randomArenaUser}}
	}
	l, err := kernel.Load(spec)
	if err != nil {
		return run, err
	}
	defer l.Close()
	res, err := l.TestRun(kernel.RunOptions{Ctx: randomCtx(seed)})
	if err != nil {
		return run, err
	}
	run.Retval = res.Retval
	run.CtxOut = hex.EncodeToString(res.Ctx)
	if mem := l.ArenaMemory(); mem != nil {
		run.Arena = arenaChunks(func(off int) []byte { return mem[off : off+64] }, len(mem))
	}
	return run, nil
}

// TestLoopProgramsRun runs generated programs with bpf_loop callbacks. The
// live kernel cannot serve as the oracle here (callbacks need BTF func_info,
// which the loader does not provide), so this checks that every program
// runs to completion and that the callbacks ran.
func TestLoopProgramsRun(t *testing.T) {
	ran := 0
	for i := uint64(0); i < randomLoopPrograms; i++ {
		seed := loopSeeds + i
		opts := randomOptions(seed)
		p := progen.Generate(seed, opts)
		loops := 0
		for _, in := range p.Insns {
			if in.IsHelperCall() && in.Imm == 181 {
				loops++
			}
		}
		if _, err := runRandomInterp(seed, p, opts); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if loops > 0 {
			ran++
		}
	}
	if ran < randomLoopPrograms/2 {
		t.Fatalf("only %d of %d programs call bpf_loop", ran, randomLoopPrograms)
	}
}
