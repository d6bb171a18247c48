package main

import (
	"testing"

	"github.com/bpfc/bpfc/internal/corpus"
	"github.com/bpfc/bpfc/internal/kernel"
)

// TestCaptureEntryMatchesGolden captures a few corpus programs now and
// requires them to be equivalent to the committed goldens (the command's
// "unchanged" path).
func TestCaptureEntryMatchesGolden(t *testing.T) {
	if ok, why := kernel.Available(); !ok {
		t.Skip("live kernel: " + why)
	}
	for _, name := range []string{"alu32_mod_x", "arena_atomic_cmpxchg_w", "subprog_many", "tailcall_direct", "jdist_ja_back_118"} {
		e, err := corpus.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := captureEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if e.Pure() != (len(c.Runs) == 4) {
			t.Errorf("%s: pure %v but %d runs", name, e.Pure(), len(c.Runs))
		}
		g, err := kernel.ReadCapture("../../../../testdata/kernel/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if g.Kernel != kernel.Release() {
			t.Skipf("goldens are from kernel %s, this is %s", g.Kernel, kernel.Release())
		}
		if err := kernel.Equivalent(g, c); err != nil {
			t.Errorf("%s: fresh capture differs from the golden: %v", name, err)
		}
	}
}
