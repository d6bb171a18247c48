package corpus

import (
	"bytes"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
)

// TestGoldenRuns: every pure program's golden holds its four test runs, on
// the inputs Inputs gives; other programs hold none.
func TestGoldenRuns(t *testing.T) {
	caps := readGoldens(t)
	byName := map[string]*kernel.Capture{}
	for _, c := range caps {
		byName[c.Name] = c
	}
	pure := 0
	for _, e := range All() {
		c := byName[e.Name]
		if c == nil || e.Pending != "" {
			continue // reported by TestGoldensMatchCorpus; pending ones live elsewhere
		}
		if !e.Pure() {
			if len(c.Runs) != 0 {
				t.Errorf("%s: not pure but has runs", e.Name)
			}
			continue
		}
		pure++
		in := e.Inputs()
		if len(c.Runs) != len(in) {
			t.Errorf("%s: %d runs, want %d", e.Name, len(c.Runs), len(in))
			continue
		}
		for k, r := range c.Runs {
			if !bytes.Equal(r.Ctx, in[k]) || len(r.CtxOut) != len(r.Ctx) {
				t.Errorf("%s: run %d: input or output size differs", e.Name, k)
			}
		}
	}
	if pure < 150 {
		t.Errorf("only %d pure programs with runs", pure)
	}
}

// TestLiveRunsReproduce reloads some pure programs and reruns them: the
// kernel must compute what the goldens say.
func TestLiveRunsReproduce(t *testing.T) {
	if ok, why := kernel.Available(); !ok {
		t.Skip("live kernel: " + why)
	}
	n := 0
	for i, e := range All() {
		if !e.Pure() || i%9 != 0 || e.Pending != "" {
			continue
		}
		c, err := kernel.ReadCapture(goldenDir + "/" + e.Name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if c.Kernel != kernel.Release() {
			t.Skipf("goldens are from kernel %s, this is %s", c.Kernel, kernel.Release())
		}
		spec, err := e.Spec()
		if err != nil {
			t.Fatal(err)
		}
		l, err := kernel.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range c.Runs {
			res, err := l.TestRun(kernel.RunOptions{Ctx: r.Ctx})
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			if res.Retval != r.Retval || !bytes.Equal(res.Ctx, r.CtxOut) {
				t.Errorf("%s: run %d differs from the golden", e.Name, k)
			}
		}
		l.Close()
		n++
	}
	t.Logf("%d programs rerun", n)
}
