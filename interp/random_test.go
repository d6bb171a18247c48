package interp

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/interp/progen"
	"github.com/bpfc/bpfc/ir"
)

var updateRandom = flag.Bool("update-random", false, "run the generated programs in the live kernel and rewrite testdata/random_runs.json")

const (
	randomGolden   = "testdata/random_runs.json"
	randomPrograms     = 1000
	randomCallPrograms = 300
)

// randomRun is the live kernel's result for one generated program.
type randomRun struct {
	Seed        uint64 `json:"seed"`
	Retval      uint32 `json:"retval"`
	CtxOut      string `json:"ctx_out"`
	KernelError string `json:"kernel_error,omitempty"`
}

// Seeds from callSeeds on generate programs with bpf-to-bpf calls.
const callSeeds = 100_001

func randomOptions(seed uint64) progen.Options {
	return progen.Options{Insns: 16 + int(seed%97), Calls: seed >= callSeeds}
}

func randomSeeds(short bool) []uint64 {
	n, c := uint64(randomPrograms), uint64(randomCallPrograms)
	if short {
		n, c = 50, 20
	}
	var s []uint64
	for i := uint64(1); i <= n; i++ {
		s = append(s, i)
	}
	for i := uint64(0); i < c; i++ {
		s = append(s, callSeeds+i)
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
	ok, reason := kernel.Available()
	if *updateRandom && !ok {
		t.Fatalf("-update-random needs the live kernel: %s", reason)
	}
	seeds := randomSeeds(testing.Short())
	n := len(seeds)
	var fresh []randomRun
	matched, rejected := 0, 0
	for _, seed := range seeds {
		p := progen.Generate(seed, randomOptions(seed))
		q, err := Prepare(p, Options{})
		if err != nil {
			t.Fatalf("seed %d: prepare: %v", seed, err)
		}
		ctx := randomCtx(seed)
		res, err := q.Run(RunOptions{Ctx: ctx, Budget: 1_000_000})
		if err != nil {
			t.Errorf("seed %d: interpreter: %v", seed, err)
			continue
		}
		got := randomRun{Seed: seed, Retval: uint32(res.R0), CtxOut: hex.EncodeToString(ctx)}
		var want randomRun
		var have bool
		if ok {
			want, err = runRandomInKernel(seed, p)
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

func runRandomInKernel(seed uint64, p *ir.Program) (randomRun, error) {
	run := randomRun{Seed: seed}
	l, err := kernel.Load(&kernel.Spec{Name: "progen", Type: kernel.Syscall, Program: p, NoLineInfo: true})
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
	return run, nil
}
