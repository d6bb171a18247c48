package interp

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir/asm"
)

// conformanceDir holds the bpf_conformance suite's 313 test files.
const conformanceDir = "/work/shared/conformance"

func conformanceFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*.data"))
	if err != nil || len(files) == 0 {
		t.Skipf("conformance suite not found in %s", conformanceDir)
	}
	sort.Strings(files)
	return files
}

// TestConformance runs every file of the suite; the expected r0 comes from
// the file's result section.
func TestConformance(t *testing.T) {
	files := conformanceFiles(t)
	pass := 0
	for _, path := range files {
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := asm.Parse(src)
		if err != nil {
			t.Errorf("%s: parse: %v", name, err)
			continue
		}
		if f.Program == nil || !f.HasResult {
			t.Errorf("%s: no program or no result", name)
			continue
		}
		mem := append([]byte(nil), f.Mem...)
		q, err := Prepare(f.Program, Options{Helpers: helpers.Conformance()})
		if err != nil {
			t.Errorf("%s: prepare: %v", name, err)
			continue
		}
		res, err := q.Run(RunOptions{Mem: mem, Budget: 100_000_000})
		if err != nil {
			t.Errorf("%s: run: %v", name, err)
			continue
		}
		if res.R0 != f.Result {
			t.Errorf("%s: r0 = %#x, want %#x", name, res.R0, f.Result)
			continue
		}
		pass++
	}
	t.Logf("conformance: %d/%d passed", pass, len(files))
}
