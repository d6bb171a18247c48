package vm

import (
	"testing"

	"github.com/bpfc/bpfc/internal/fuzzgen"
	"github.com/bpfc/bpfc/internal/kernel"
)

// TestGeneratedProgramsVerify: the generator's programs are valid — the
// live kernel's verifier accepts them (as syscall programs, whose context
// is the generator's memory).
func TestGeneratedProgramsVerify(t *testing.T) {
	if ok, reason := kernel.Available(); !ok {
		t.Skip(reason)
	}
	n := 200
	if testing.Short() {
		n = 20
	}
	for seed := uint64(0); seed < uint64(n); seed++ {
		p := fuzzgen.FromSeed(seed, fuzzgen.Options{Items: 8 + int(seed%57), Calls: seed%2 == 1})
		l, err := kernel.Load(&kernel.Spec{Name: "fuzzgen", Type: kernel.Syscall, Program: p})
		if err != nil {
			t.Fatalf("seed %d: the verifier rejects it: %v", seed, err)
		}
		l.Close()
	}
	t.Logf("%d generated programs accepted by the live kernel's verifier", n)
}
