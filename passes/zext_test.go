package passes

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
	"github.com/bpfc/bpfc/pipeline"
)

func assemble(t *testing.T, text string) *ir.Program {
	t.Helper()
	p, err := asm.Assemble(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func assembleNoT(text string) (*ir.Program, error) { return asm.Assemble(text) }

func markedSet(p *ir.Program) []int {
	var m []int
	for i := range p.Insns {
		if p.Aux[i].ZextDst {
			m = append(m, i)
		}
	}
	return m
}

// TestZextMarksHandBuilt checks the marks against the ones worked out by hand.
func TestZextMarksHandBuilt(t *testing.T) {
	for _, c := range handCases {
		t.Run(c.name, func(t *testing.T) {
			p := assemble(t, c.asm)
			runPasses(t, p, nil, ZextMark{})
			if got := markedSet(p); fmt.Sprint(got) != fmt.Sprint(c.marked) && !(len(got) == 0 && len(c.marked) == 0) {
				t.Errorf("marked %v, want %v", got, c.marked)
			}
		})
	}
}

// zextCapture is the kernel's view of a hand-built program.
type zextCapture struct {
	Name      string `json:"name"`
	Asm       string `json:"asm"`
	Xlated    string `json:"xlated"`
	XlatedRnd string `json:"xlated_rnd"`
	Error     string `json:"error,omitempty"`
	// Symbols are the call base and the addresses of the helpers used.
	Symbols map[string]uint64 `json:"symbols"`
}

// helperFuncs names the kernel function behind each helper the hand-built
// programs call (bpf_get_prandom_u32's proto points at bpf_user_rnd_u32).
var helperFuncs = map[int32]string{7: "bpf_user_rnd_u32", 113: "bpf_probe_read_kernel"}

const zextDir = "testdata/zext"

// TestCaptureZext rewrites testdata/zext from the live kernel (-capture).
func TestCaptureZext(t *testing.T) {
	if !*captureFlag {
		t.Skip("captures are rewritten only with -capture")
	}
	if why := kernelAvailable(); why != "" {
		t.Skip(why)
	}
	for _, c := range handCases {
		p := assemble(t, c.asm)
		code := ir.Encode(p)
		zc := zextCapture{Name: c.name, Asm: c.asm}
		fd, err := loadRaw(progTypeSyscall, flagSleepable, code, nil, nil)
		if err != nil {
			var log []byte
			loadRaw(progTypeSyscall, flagSleepable, code, nil, &log)
			t.Errorf("%s: %v\n%s", c.name, err, log)
			continue
		}
		info, err := getInfo(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd2, err := loadRaw(progTypeSyscall, flagSleepable|flagTestRndHi32, code, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		info2, err := getInfo(fd2)
		if err != nil {
			t.Fatal(err)
		}
		closeFD(fd)
		closeFD(fd2)
		ks, err := kallsyms(CallBaseSymbol, helperFuncs[7], helperFuncs[113])
		if err != nil {
			t.Fatal(err)
		}
		zc.Symbols = map[string]uint64{CallBaseSymbol: ks[CallBaseSymbol]}
		for id, fn := range helperFuncs {
			zc.Symbols[HelperSymbol(id)] = ks[fn]
		}
		zc.Xlated = hex.EncodeToString(info.Xlated)
		zc.XlatedRnd = hex.EncodeToString(info2.Xlated)
		b, _ := json.MarshalIndent(zc, "", "  ")
		if err := os.WriteFile(filepath.Join(zextDir, c.name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// predictRnd says, for each instruction of a program our pipeline made,
// whether the kernel's BPF_F_TEST_RND_HI32 would patch random bits into its
// destination's upper half (opt_subreg_zext_lo32_rnd_hi32): a definition
// with zext_dst clear that is not 64-bit by is_reg64 (which the kernel
// applies to the rewritten instruction, so PROBE_MEM32SX loads count as
// 32-bit) and not a context load; arena arithmetic the arena pass narrowed
// counts as the 64-bit instruction it was.
func predictRnd(p, orig *ir.Program) []bool {
	out := make([]bool, p.Len())
	for i := 0; i < p.Len(); i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if p.Aux[i].ZextDst {
			continue
		}
		_, d := def32(ins)
		if ins.Class() == ir.ClassLDX && ins.Mode() == ir.ModeProbeMem32SX && ins.Size() != ir.SizeDW {
			d = true
		}
		if o := p.Aux[i].OrigIndex; d && ins.Class() == ir.ClassALU && o >= 0 && int(o) < orig.Len() && orig.Insns[o].Class() == ir.ClassALU64 && !orig.Insns[o].IsCastToKernel() {
			d = false
		}
		if ins.Class() == ir.ClassLDX && p.Aux[i].PtrType == ir.PtrCtx {
			d = false
		}
		out[i] = d
	}
	return out
}

// compareRnd runs the kernel's order of passes on orig and compares the
// predicted random patches with the kernel's. It returns the number of
// definitions compared, and the instructions the kernel patched but we
// marked (conservative differences); a patch we predict that the kernel
// did not make is an error.
func compareRnd(t *testing.T, name string, orig *ir.Program, ctx *pipeline.Context, opts Options, xlated, xlatedRnd []byte) (int, []int) {
	t.Helper()
	p := orig.Clone()
	runPasses(t, p, ctx, ZextMark{}, StackDepth{}, Arena{}, Fixups{Options: opts}, Zext{})
	x, err := decodeXlated(xlated)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeXlated(xlatedRnd)
	if err != nil {
		t.Fatal(err)
	}
	stripped, rnd := stripRnd(r)
	if len(stripped) != x.Len() || p.Len() != x.Len() {
		t.Errorf("%s: lengths: ours %d, xlated %d, xlated with rnd stripped %d", name, p.Len(), x.Len(), len(stripped))
		return 0, nil
	}
	pred := predictRnd(p, orig)
	n := 0
	var extra []int
	for i := range pred {
		if _, d := def32(p.Insns[i]); d || pred[i] || rnd[i] {
			n++
		}
		switch {
		case pred[i] && !rnd[i]:
			t.Errorf("%s: instruction %d (%s): we leave the upper half unmarked, the kernel marked it zext_dst", name, i, p.Format(i))
		case !pred[i] && rnd[i]:
			extra = append(extra, i)
		}
	}
	return n, extra
}

// TestZextMatchesKernelHandBuilt: on the hand-built programs, the marks
// agree exactly with the kernel's (BPF_F_TEST_RND_HI32), and the pipeline's
// output (guards, cmpxchg zext) equals the kernel's xlated program.
func TestZextMatchesKernelHandBuilt(t *testing.T) {
	total := 0
	for _, c := range handCases {
		b, err := os.ReadFile(filepath.Join(zextDir, c.name+".json"))
		if err != nil {
			t.Fatalf("%s: no capture (go test ./passes -run TestCaptureZext -capture): %v", c.name, err)
		}
		var zc zextCapture
		if err := json.Unmarshal(b, &zc); err != nil {
			t.Fatal(err)
		}
		if zc.Asm != c.asm {
			t.Errorf("%s: capture is of another program text; recapture", c.name)
			continue
		}
		orig := assemble(t, c.asm)
		xl := mustHex(t, zc.Xlated)
		ctx := &pipeline.Context{Symbols: zc.Symbols}
		n, extra := compareRnd(t, c.name, orig, ctx, Options{CtxIsMemory: true}, xl, mustHex(t, zc.XlatedRnd))
		if len(extra) > 0 {
			t.Errorf("%s: we mark %v, the kernel does not", c.name, extra)
		}
		total += n
		// Same program as the kernel's xlated, instruction for instruction.
		p := orig.Clone()
		runPasses(t, p, ctx, ZextMark{}, Arena{}, Fixups{}, Zext{})
		x, _ := decodeXlated(xl)
		if fmt.Sprint(p.Insns) != fmt.Sprint(x.Insns) {
			t.Errorf("%s: pipeline output differs from the kernel's xlated program\n got %v\nwant %v", c.name, p.Insns, x.Insns)
		}
	}
	t.Logf("%d programs, %d 32-bit definitions: marks identical to the kernel's", len(handCases), total)
}

// TestZextMatchesKernelArena: on the arena programs the marks are never
// fewer than the kernel's; where they are more, the kernel pruned the path
// that reads the upper half (its marks depend on exploration order).
func TestZextMatchesKernelArena(t *testing.T) {
	total, same := 0, 0
	var diffs []string
	for _, cp := range loadCaptures(t) {
		name := cp.c.Object + "/" + cp.c.Program
		n, extra := compareRnd(t, name, cp.op.Prog, captureContext(cp.c), captureOptions(cp.op), mustHex(t, cp.c.Xlated), mustHex(t, cp.c.XlatedRnd))
		total += n
		same += n - len(extra)
		if len(extra) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s:%v", name, extra))
		}
	}
	sort.Strings(diffs)
	t.Logf("%d definitions, %d marked as the kernel does; conservative extra marks: %v", total, same, diffs)
	if total == 0 || same*10 < total*9 {
		t.Errorf("only %d of %d definitions agree with the kernel", same, total)
	}
}
