package passes

import (
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
)

// TestStackLimitsMatchKernel loads the stack-limit cases into the live
// kernel as syscall programs: the verifier accepts exactly the programs
// checkStackLimits accepts (frames, per-function and combined stack with
// the JIT's 16-byte rounding).
func TestStackLimitsMatchKernel(t *testing.T) {
	if ok, reason := kernel.Available(); !ok {
		t.Skip(reason)
	}
	for _, c := range [][]int16{
		{512}, {513}, {8, 8, 8, 8, 8, 8, 8, 8}, {8, 8, 8, 8, 8, 8, 8, 8, 8},
		{256, 256}, {300, 300}, {250, 257}, {248, 264}, {8, 504}, {24, 488},
		{240, 272}, {16, 496}, // accepted only with 16-byte (not 32-byte) rounding
	} {
		p := chainProgram(c)
		ours := StackDepth{}.Run(chainProgram(c), nil) == nil
		l, err := kernel.Load(&kernel.Spec{Name: "limits", Type: kernel.Syscall, Program: p})
		theirs := err == nil
		if l != nil {
			l.Close()
		}
		if ours != theirs {
			t.Errorf("stacks %v: bpfc accepts %v, kernel accepts %v (%v)", c, ours, theirs, err)
		}
	}
}
