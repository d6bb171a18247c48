package vm

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/bpfc/bpfc/internal/fuzzgen"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
)

// diffPrograms is the size of the fixed-seed corpus of TestJITvsInterp.
const diffPrograms = 10_000

// diffOne runs p in the interpreter and as JIT code in the vm and returns
// a description of the first difference ("" when both agree).
func diffOne(p *ir.Program) (string, error) {
	memI := make([]byte, fuzzgen.MemSize)
	ip, ierr := interp.Prepare(p, interp.Options{})
	if ierr != nil {
		return "", fmt.Errorf("interpreter: %v", ierr)
	}
	// A budget, so that a program that does not terminate (a generator
	// bug) is reported instead of hanging the fuzzer.
	res, ierr := ip.Run(interp.RunOptions{Mem: memI, Budget: 50_000_000})
	if ierr != nil {
		return "", fmt.Errorf("interpreter: %v", ierr)
	}
	prog, err := Load(p, &LoadOptions{Options: Options{Name: "diff"}})
	if err != nil {
		return "", fmt.Errorf("load: %v", err)
	}
	defer prog.Close()
	memV := make([]byte, fuzzgen.MemSize)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r0, err := prog.RunConfig(ctx, &RunConfig{Mem: memV, Budget: 1 << 20})
	if err != nil {
		return "", fmt.Errorf("vm run: %v", err)
	}
	if r0 != res.R0 {
		return fmt.Sprintf("r0: jit %#x, interpreter %#x", r0, res.R0), nil
	}
	if !bytes.Equal(memI, memV) {
		return fmt.Sprintf("mem:\njit         %s\ninterpreter %s", hex.EncodeToString(memV), hex.EncodeToString(memI)), nil
	}
	return "", nil
}

func reportDiff(t *testing.T, what string, p *ir.Program, diff string, err error) {
	t.Helper()
	if err == nil && diff == "" {
		return
	}
	var b bytes.Buffer
	for i, ins := range p.Insns {
		fmt.Fprintf(&b, "%4d: %02x %d %d %d %d\n", i, ins.Op, ins.Dst, ins.Src, ins.Off, ins.Imm)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b.String())
	}
	t.Fatalf("%s: JIT and interpreter differ: %s\n%s", what, diff, b.String())
}

// TestJITvsInterp runs a fixed corpus of generated valid, terminating
// programs (forward jumps, bounded loops, every ALU operation including
// division by zero, loads/stores/atomics on mem and stack, bpf-to-bpf calls
// in half of them) in the
// interpreter and as JIT code in the vm: r0 and memory must agree.
func TestJITvsInterp(t *testing.T) {
	n := diffPrograms
	if testing.Short() || raceEnabled {
		n = 500
	}
	start := time.Now()
	insns := 0
	for seed := uint64(0); seed < uint64(n); seed++ {
		p := fuzzgen.FromSeed(seed, fuzzgen.Options{Items: 8 + int(seed%57), Calls: seed%2 == 1})
		insns += len(p.Insns)
		diff, err := diffOne(p)
		reportDiff(t, fmt.Sprintf("seed %d", seed), p, diff, err)
	}
	t.Logf("%d generated programs (%d instructions) agree in %v", n, insns, time.Since(start).Round(time.Millisecond))
}

// FuzzJITvsInterp: the fuzzer's bytes drive the generator; every generated
// program must give the same r0 and memory in both executors.
func FuzzJITvsInterp(f *testing.F) {
	for seed := uint64(0); seed < 16; seed++ {
		b := make([]byte, 64+seed*16)
		for i := range b {
			b[i] = byte(seed*131 + uint64(i)*17)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := fuzzgen.Generate(b, fuzzgen.Options{Items: 8 + len(b)%40, Calls: len(b)%2 == 1})
		diff, err := diffOne(p)
		reportDiff(t, "fuzz input", p, diff, err)
	})
}

// TestDiffDetects: the comparison is not vacuous — a program whose result
// depends on where its stack lives differs between the executors.
func TestDiffDetects(t *testing.T) {
	p := ir.NewProgram("addr", []ir.Instruction{{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R0, Src: ir.R10}, exitInsn})
	diff, err := diffOne(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff == "" {
		t.Fatal("r0 = r10 gave the same r0 in the vm and the interpreter")
	}
}
