package passes

import (
	"fmt"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

var x86Of = [...]x86asm.Reg{x86asm.RAX, x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8,
	x86asm.RBX, x86asm.R13, x86asm.R14, x86asm.R15, x86asm.RBP}

// kernelArenaAccesses decodes a jited image and lists its [base + r12 + disp]
// memory operands in order, as "base+disp".
func kernelArenaAccesses(t *testing.T, code []byte) []string {
	var out []string
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			t.Fatalf("x86 decode at %#x: %v", off, err)
		}
		for _, a := range inst.Args {
			if m, ok := a.(x86asm.Mem); ok && m.Index == x86asm.R12 {
				out = append(out, fmt.Sprintf("%v%+d", m.Base, m.Disp))
			}
		}
		off += inst.Len
	}
	return out
}

// ourArenaAccesses lists the PtrArena accesses of p in order, in the form
// kernelArenaAccesses uses.
func ourArenaAccesses(p *ir.Program) []string {
	var out []string
	for i := 0; i < p.Len(); i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if p.Aux[i].PtrType != ir.PtrArena {
			continue
		}
		base := ins.Dst
		if ins.Class() == ir.ClassLDX {
			base = ins.Src
		}
		out = append(out, fmt.Sprintf("%v%+d", x86Of[base], ins.Off))
	}
	return out
}

func runPasses(t *testing.T, p *ir.Program, ctx *pipeline.Context, ps ...pipeline.Pass) {
	t.Helper()
	if _, err := pipeline.New(ps...).Run(p, ctx); err != nil {
		t.Fatal(err)
	}
}

// TestArenaMatchesKernel: the arena accesses the pass infers from the
// original object and from the kernel's xlated dump are the kernel's
// (read from its jited bytes), for every captured program.
func TestArenaMatchesKernel(t *testing.T) {
	total, progs := 0, 0
	for _, cp := range loadCaptures(t) {
		name := cp.c.Object + "/" + cp.c.Program
		if cp.c.Error != "" {
			t.Errorf("%s: kernel rejected it: %s", name, cp.c.Error)
			continue
		}
		want := kernelArenaAccesses(t, mustHex(t, cp.c.Jited))
		if len(want) == 0 && hasArena(cp.op.Prog) {
			t.Errorf("%s: kernel image has no arena access", name)
		}
		p := cp.op.Prog.Clone()
		runPasses(t, p, nil, Arena{})
		if got := ourArenaAccesses(p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: original: arena accesses\n got %v\nwant %v", name, got, want)
		}
		if p.UsesArena != (len(want) > 0) {
			t.Errorf("%s: UsesArena %v", name, p.UsesArena)
		}
		x, err := decodeXlated(mustHex(t, cp.c.Xlated))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		copyFuncAux(x, cp.op.Prog)
		runPasses(t, x, &pipeline.Context{FromXlated: true}, Arena{})
		if got := ourArenaAccesses(x); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: from xlated: arena accesses\n got %v\nwant %v", name, got, want)
		}
		total += len(want)
		progs++
	}
	t.Logf("%d programs, %d arena accesses, same as the kernel's from the original and from xlated", progs, total)
}

// copyFuncAux carries the function-level aux (global linkage, arg:arena)
// from the original program to an xlated one with the same function starts
// (the kernel has it from BTF func_info).
func copyFuncAux(x, orig *ir.Program) {
	of, err1 := ir.FindFuncs(orig)
	xf, err2 := ir.FindFuncs(x)
	if err1 != nil || err2 != nil || len(of) != len(xf) {
		return
	}
	for k := range of {
		x.Aux[xf[k].Start].GlobalFunc = orig.Aux[of[k].Start].GlobalFunc
		x.Aux[xf[k].Start].ArgArena = orig.Aux[of[k].Start].ArgArena
	}
}

// hasArena reports whether a program casts arena pointers or uses arena
// globals.
func hasArena(p *ir.Program) bool {
	for i, ins := range p.Insns {
		if ins.IsAddrSpaceCast() || p.Aux[i].SymbolKind == ir.SymArena {
			return true
		}
	}
	return false
}
