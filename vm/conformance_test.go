package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir/asm"
	"github.com/bpfc/bpfc/pipeline"
)

const conformanceDir = "/work/shared/conformance"

func conformanceFiles(t testing.TB) []string {
	dir := conformanceDir
	if d := os.Getenv("BPFC_CONFORMANCE"); d != "" {
		dir = d
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	if len(files) == 0 {
		t.Skipf("no conformance files in %s", dir)
	}
	sort.Strings(files)
	return files
}

// TestConformance runs every bpf_conformance file on the JIT in the vm and
// compares r0 with the file's expected result, once with the default
// pipeline (the passes package) and once with the vm's fallback pipeline.
func TestConformance(t *testing.T) {
	t.Run("default", func(t *testing.T) { conformance(t, nil) })
	t.Run("fallback", func(t *testing.T) { conformance(t, FallbackPipeline()) })
}

func conformance(t *testing.T, pl *pipeline.Pipeline) {
	files := conformanceFiles(t)
	pass, fail := 0, 0
	var failed []string
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".data")
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := asm.Parse(src)
		if errors.Is(err, asm.ErrUnknownSection) {
			t.Logf("%s: skipped (%v)", name, err)
			continue
		}
		if err == nil && f.Program == nil {
			t.Logf("%s: no program", name)
			continue
		}
		ok := t.Run(name, func(t *testing.T) {
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			p, err := Load(f.Program, &LoadOptions{Options: Options{Helpers: helpers.Conformance()}, Pipeline: pl})
			if err != nil {
				if f.Error != "" {
					return
				}
				t.Fatalf("load: %v", err)
			}
			defer p.Close()
			mem := append([]byte(nil), f.Mem...)
			got, err := p.RunMem(context.Background(), mem)
			if err != nil {
				if f.Error != "" {
					return
				}
				t.Fatalf("run: %v", err)
			}
			if f.HasResult && got != f.Result {
				t.Fatalf("r0 = %#x, want %#x", got, f.Result)
			}
		})
		if ok {
			pass++
		} else {
			fail++
			failed = append(failed, name)
		}
	}
	t.Logf("conformance on the JIT in the vm: %d/%d passed", pass, pass+fail)
	if fail > 0 {
		t.Logf("failed: %s", strings.Join(failed, " "))
	}
}
