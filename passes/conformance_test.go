package passes

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
	"github.com/bpfc/bpfc/pipeline"
)

// TestConformanceWithPasses runs the bpf_conformance suite through the
// interpreter after zext-mark, fixups and zext with insertion forced on
// (a target without implicit zero-extension): every program gives the
// suite's result, so the inserted zero-extensions and the division guards
// change no result.
func TestConformanceWithPasses(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	if len(files) == 0 {
		t.Skip("conformance suite not found")
	}
	sort.Strings(files)
	pass, zexts, guards, skipped := 0, 0, 0, 0
	for _, path := range files {
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := asm.Parse(src)
		if err != nil || f.Program == nil || !f.HasResult {
			skipped++
			continue
		}
		// The interpreter itself must pass the file first.
		want, err := runInterp(f.Program, f.Mem)
		if err != nil || want != f.Result {
			skipped++
			continue
		}
		p := f.Program.Clone()
		n0 := p.Len()
		ctx := &pipeline.Context{ForceZext: true}
		pl := pipeline.New(ZextMark{}, Fixups{Options: Options{CtxIsMemory: true}}, Zext{})
		if _, err := pl.Run(p, ctx); err != nil {
			// Helpers the kernel would inline: run without fixups.
			p = f.Program.Clone()
			if _, err := pipeline.New(ZextMark{}, Zext{}).Run(p, ctx); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
		}
		for i, ins := range p.Insns {
			if ins.IsZextReg() && p.Aux[i].OrigIndex < 0 {
				zexts++
			}
		}
		guards += p.Len() - n0
		got, err := runInterp(p, f.Mem)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != f.Result {
			t.Errorf("%s: r0 = %#x after the passes, want %#x", name, got, f.Result)
			continue
		}
		pass++
	}
	t.Logf("conformance through zext(forced)+fixups: %d/%d pass (%d not runnable by the interpreter alone); %d zero-extensions and %d instructions inserted in all", pass, len(files)-skipped, skipped, zexts, guards)
	if pass == 0 {
		t.Fatal("nothing passed")
	}
}

func runInterp(p *ir.Program, mem []byte) (uint64, error) {
	q, err := interp.Prepare(p, interp.Options{Helpers: helpers.Conformance()})
	if err != nil {
		return 0, err
	}
	res, err := q.Run(interp.RunOptions{Mem: append([]byte(nil), mem...), Budget: 100_000_000})
	return res.R0, err
}
