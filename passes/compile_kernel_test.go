package passes

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// TestCompileMatchesKernel: each arena program's original object, through
// the Default pipeline and backend/amd64 with the kernel's addresses, gives
// the kernel's jited image byte for byte (every function, at the address the
// kernel ran it at).
func TestCompileMatchesKernel(t *testing.T) {
	same := 0
	caps := loadCaptures(t)
	for _, cp := range caps {
		name := cp.c.Object + "/" + cp.c.Program
		p := cp.op.Prog.Clone()
		ctx := captureContext(cp.c)
		if _, err := Default(captureOptions(cp.op)).Run(p, ctx); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tg := amd64.Linux618()
		tg.CallBase = cp.c.CallBase
		tg.KernVMStart, tg.UserVMStart = cp.c.KernVMStart, cp.c.UserVMStart
		im, err := amd64.Compile(p, tg, cp.c.Ksyms)
		if err != nil {
			t.Errorf("%s: compile: %v", name, err)
			continue
		}
		want := mustHex(t, cp.c.Jited)
		got := im.Code()
		// Every instruction we emit decodes.
		for off := 0; off < len(got); {
			inst, err := x86asm.Decode(got[off:], 64)
			if err != nil {
				t.Fatalf("%s: our code does not decode at %#x: %v", name, off, err)
			}
			off += inst.Len
		}
		if !bytes.Equal(got, want) {
			k := 0
			for k < len(got) && k < len(want) && got[k] == want[k] {
				k++
			}
			t.Errorf("%s: image differs at byte %#x (ours %d bytes, kernel %d)%s", name, k, len(got), len(want), fmtLens(im, cp.c.FuncLens))
			continue
		}
		same++
	}
	t.Logf("%d of %d captured programs compiled from the original object are byte-identical to the kernel's image", same, len(caps))
}

func fmtLens(im *amd64.Image, want []uint32) string {
	var got []int
	for _, f := range im.Funcs {
		got = append(got, len(f.Code))
	}
	return fmt.Sprintf("; function lengths ours %v, kernel %v", got, want)
}

// TestCompileFromXlatedMatchesKernel: the kernel's own xlated program,
// through the JIT pipeline (arena inference, stackdepth, regusage) and
// backend/amd64, gives the kernel's jited image byte for byte. Map loads,
// which the dump shows as map IDs, are given the addresses the JIT embedded.
func TestCompileFromXlatedMatchesKernel(t *testing.T) {
	same := 0
	caps := loadCaptures(t)
	for _, cp := range caps {
		name := cp.c.Object + "/" + cp.c.Program
		x, err := decodeXlated(mustHex(t, cp.c.Xlated))
		if err != nil {
			t.Fatal(err)
		}
		copyFuncAux(x, cp.op.Prog)
		// Map IDs -> addresses, by the symbol at the same place of the original.
		orig := cp.op.Prog
		if orig.Len() == x.Len() {
			for i := 0; i < x.Len(); i++ {
				if x.Insns[i].IsLdImm64() {
					resolveXlatedLd(x, i, orig.Aux[i], cp.c)
				}
			}
		} else {
			// By the map IDs the dump shows.
			byID := map[int32]string{}
			for name, id := range cp.c.MapIDs {
				byID[int32(id)] = name
			}
			for i := 0; i < x.Len(); i++ {
				if x.Insns[i].IsLdImm64() && x.Insns[i].Src == ir.PseudoMapFD {
					ld := ir.LdImm64(x.Insns[i].Dst, cp.c.Addrs[byID[x.Insns[i].Imm]])
					x.Insns[i], x.Insns[i+1] = ld[0], ld[1]
				}
			}
		}
		if _, err := JITWith(xlatedOptions(cp.op, cp.c)).Run(x, &pipeline.Context{FromXlated: true}); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tg := amd64.Linux618()
		tg.CallBase = cp.c.CallBase
		tg.KernVMStart, tg.UserVMStart = cp.c.KernVMStart, cp.c.UserVMStart
		im, err := amd64.Compile(x, tg, cp.c.Ksyms)
		if err != nil {
			t.Errorf("%s: compile: %v", name, err)
			continue
		}
		if !bytes.Equal(im.Code(), mustHex(t, cp.c.Jited)) {
			t.Errorf("%s: image from xlated differs%s", name, fmtLens(im, cp.c.FuncLens))
			continue
		}
		same++
	}
	t.Logf("%d of %d captured programs compiled from the kernel's xlated dump are byte-identical to its image", same, len(caps))
}
