package passes

import (
	"fmt"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// captureContext returns the pass context with the addresses the kernel used.
func captureContext(c *arenaCapture) *pipeline.Context {
	syms := map[string]uint64{CallBaseSymbol: c.CallBase}
	for k, v := range c.Addrs {
		syms[k] = v
	}
	return &pipeline.Context{Symbols: syms, KernVMStart: c.KernVMStart, UserVMStart: c.UserVMStart}
}

// asXlatedShows turns PROBE_MEM32 loads and stores back into MEM, as the
// kernel's xlated dump shows them.
func asXlatedShows(p *ir.Program) *ir.Program {
	q := p.Clone()
	for i := range q.Insns {
		ins := &q.Insns[i]
		c := ins.Class()
		if (c == ir.ClassLDX || c == ir.ClassST || c == ir.ClassSTX) && ins.Mode() == ir.ModeProbeMem32 && !(i > 0 && q.Insns[i-1].IsLdImm64()) {
			ins.Op = ins.Op&^0xe0 | uint8(ir.ModeMEM)
		}
	}
	return q
}

// TestPipelineMatchesXlated: the original object through zext-mark, arena,
// fixups and zext (with the kernel's addresses) gives the kernel's xlated
// program instruction for instruction (map ld_imm64 shown as map IDs in the
// dump are compared as the addresses the JIT embedded).
func TestPipelineMatchesXlated(t *testing.T) {
	n := 0
	for _, cp := range loadCaptures(t) {
		name := cp.c.Object + "/" + cp.c.Program
		p := cp.op.Prog.Clone()
		ctx := captureContext(cp.c)
		runPasses(t, p, ctx, ZextMark{}, StackDepth{}, Arena{}, Fixups{Options: captureOptions(cp.op)}, Zext{})
		x, err := decodeXlated(mustHex(t, cp.c.Xlated))
		if err != nil {
			t.Fatal(err)
		}
		got := asXlatedShows(p)
		if got.Len() != x.Len() {
			t.Errorf("%s: %d instructions, kernel %d", name, got.Len(), x.Len())
			continue
		}
		bad := 0
		for i := 0; i < x.Len(); i++ {
			if x.Insns[i].IsLdImm64() {
				resolveXlatedLd(x, i, p.Aux[i], cp.c)
			}
			want := x.Insns[i]
			if want.IsHelperCall() && want.Imm == ir.HelperTailCall && got.Insns[i].Op == ir.OpTailCall {
				continue // the dump shows tail calls as the helper call
			}
			if got.Insns[i] != want {
				bad++
				if bad < 5 {
					t.Errorf("%s: instruction %d: got %s (%+v), kernel %s (%+v)", name, i, got.Format(i), got.Insns[i], x.Format(i), want)
				}
			}
		}
		if bad == 0 {
			n++
		}
	}
	t.Logf("%d programs identical to the kernel's xlated program", n)
}

// resolveXlatedLd turns the map ld_imm64 at i of a kernel xlated dump (map
// ID and value offset) into the plain ld_imm64 of the address the JIT
// embedded, given the symbol the original instruction carried.
func resolveXlatedLd(x *ir.Program, i int, a ir.Aux, c *arenaCapture) {
	ins := x.Insns[i]
	var addr uint64
	switch {
	case ins.Src == ir.PseudoMapFD:
		addr = c.Addrs[a.Symbol]
	case ins.Src == ir.PseudoMapValue && a.SymbolKind == ir.SymArena:
		// The arena's value address is user_vm_start; the offset
		// includes libbpf's placement of the globals.
		addr = c.UserVMStart + uint64(uint32(x.Insns[i+1].Imm))
	case ins.Src == ir.PseudoMapValue:
		addr = c.Addrs[a.Symbol] + uint64(uint32(x.Insns[i+1].Imm))
	default:
		return
	}
	ld := ir.LdImm64(ins.Dst, addr)
	x.Insns[i], x.Insns[i+1] = ld[0], ld[1]
}

// captureOptions are the pass options for a captured program: syscall
// programs' context is memory; prog array sizes from the object.
func captureOptions(op *objProg) Options {
	o := Options{CtxIsMemory: true, MapMaxEntries: map[string]uint32{}, Maps: map[string]MapInfo{}}
	for name, m := range op.Maps {
		o.MapMaxEntries[name] = m.MaxEntries
		o.Maps[name] = MapInfo{Type: uint32(m.Type), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries, Flags: m.Flags}
	}
	return o
}

// xlatedOptions are captureOptions for the kernel's xlated program, whose
// map loads the tests resolve to addresses: sizes by address too.
func xlatedOptions(op *objProg, c *arenaCapture) Options {
	o := captureOptions(op)
	for name, m := range op.Maps {
		if a, ok := c.Addrs[name]; ok {
			o.MapMaxEntries[fmt.Sprintf("%#x", a)] = m.MaxEntries
		}
	}
	return o
}
