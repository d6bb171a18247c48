package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir/asm"
)

// TestImageCalls decodes every instruction of the images Load makes for
// the conformance programs with x86asm and checks that every call lands on
// a vm stub (helper, callx, yield) or on the start of one of the program's
// functions, and that the yield stub is only called right after the
// back-edge budget check.
func TestImageCalls(t *testing.T) {
	base, err := CallBase()
	if err != nil {
		t.Fatal(err)
	}
	yield, _ := YieldAddr()
	files := conformanceFiles(t)
	calls, yieldCalls, insns := 0, 0, 0
	for _, path := range files {
		src, _ := os.ReadFile(path)
		f, err := asm.Parse(src)
		if err != nil || f.Program == nil {
			continue
		}
		p, err := Load(f.Program, &LoadOptions{Options: Options{Helpers: helpers.Conformance()}})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		starts := map[uint64]bool{}
		for _, fn := range p.Image() {
			starts[fn.ExecAddr] = true
		}
		for _, fn := range p.Image() {
			var prev []x86asm.Inst
			for off := 0; off < len(fn.Code); {
				in, err := x86asm.Decode(fn.Code[off:], 64)
				if err != nil {
					t.Fatalf("%s: decode at %#x: %v", filepath.Base(path), off, err)
				}
				insns++
				pc := fn.ExecAddr + uint64(off)
				if in.Op == x86asm.CALL {
					rel, ok := in.Args[0].(x86asm.Rel)
					if !ok {
						t.Fatalf("%s: indirect call at %#x", filepath.Base(path), off)
					}
					target := pc + uint64(in.Len) + uint64(int64(rel))
					calls++
					switch {
					case starts[target]:
					case target == yield:
						yieldCalls++
						if err := checkYieldSeq(prev); err != nil {
							t.Errorf("%s at %#x: %v", filepath.Base(path), off, err)
						}
					case target >= base+stubsOff && target < base+uint64(stubOffset(numStubs)) && (target-base-stubsOff)%stubSize == 0:
					default:
						t.Errorf("%s: call at %#x to %#x: neither a stub nor a function", filepath.Base(path), off, target)
					}
				}
				prev = append(prev, in)
				off += in.Len
			}
		}
		p.Close()
	}
	t.Logf("%d instructions decoded, %d calls checked (%d yield calls after a budget check)", insns, calls, yieldCalls)
	if yieldCalls == 0 {
		t.Error("no yield call found: the conformance suite has loops")
	}
}

// checkYieldSeq checks that the 4 instructions before a yield call are
// mov r11,rsp; and r11,-0x10000; sub qword [r11],1; jnz +5.
func checkYieldSeq(prev []x86asm.Inst) error {
	if len(prev) < 4 {
		return fmt.Errorf("yield call without the budget check")
	}
	want := []string{"mov r11, rsp", "and r11, -0x10000", "sub qword ptr [r11], 0x1", "jnz .+0x5"}
	for i, w := range want {
		if got := x86asm.IntelSyntax(prev[len(prev)-4+i], 0, nil); got != w {
			return fmt.Errorf("budget check instruction %d: %q, want %q", i, got, w)
		}
	}
	return nil
}
