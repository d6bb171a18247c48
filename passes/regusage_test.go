package passes

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// goldenCaptures are the backend's live-kernel captures.
func goldenCaptures(t *testing.T) []*kernel.Capture {
	t.Helper()
	caps, err := kernel.ReadCaptures("../testdata/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if more, err := kernel.ReadCaptures("../testdata/kernel"); err == nil {
		caps = append(caps, more...)
	}
	if len(caps) == 0 {
		t.Skip("no captures in testdata/amd64")
	}
	return caps
}

// TestStackDepthRegUsageKernel runs stackdepth and regusage on the JIT
// input of every capture and compares with what the kernel's prologues
// show: sub rsp (round_up(depth, 8)), the pushes, the tail-call block.
func TestStackDepthRegUsageKernel(t *testing.T) {
	checked := 0
	for _, c := range goldenCaptures(t) {
		p, err := c.Program()
		if err != nil {
			t.Fatal(err)
		}
		// The dump clears the pseudo source of map loads; the kernel's JIT of
		// a multi-function program still saw it (see RegUsage). Restore it
		// from the program as loaded where the verifier inserted nothing.
		if src, err := ir.DecodeWith(c.Source, ir.DecodeOptions{}); err == nil && src.Len() == p.Len() {
			for i, ins := range src.Insns {
				if ins.IsLdImm64() && p.Insns[i].IsLdImm64() && p.Insns[i].Src == ir.PseudoNone {
					p.Insns[i].Src = ins.Src
				}
			}
		}
		for _, i := range c.ArenaInsns { // arena truth (the arena pass infers it)
			if p.Insns[i].Mode() == ir.ModeMEM {
				p.Insns[i].Op = p.Insns[i].Op&^0xe0 | uint8(ir.ModeProbeMem32)
			}
		}
		ctx := &pipeline.Context{}
		if err := (StackDepth{}).Run(p, ctx); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if err := (RegUsage{}).Run(p, ctx); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(p.Funcs) != len(c.StackDepths) {
			t.Fatalf("%s: %d functions, kernel %d", c.Name, len(p.Funcs), len(c.StackDepths))
		}
		for k, f := range p.Funcs {
			if got := int((f.StackDepth + 7) &^ 7); got != c.StackDepths[k] {
				t.Errorf("%s: function %d: stack depth %d (rounded %d), kernel %d", c.Name, k, f.StackDepth, got, c.StackDepths[k])
			}
			var want ir.RegSet
			tcr := false
			for _, r := range strings.Fields(c.Pushes[k]) {
				switch r {
				case "rbx":
					want = want.Add(ir.R6)
				case "r13":
					want = want.Add(ir.R7)
				case "r14":
					want = want.Add(ir.R8)
				case "r15":
					want = want.Add(ir.R9)
				case "rax":
					tcr = true
				}
			}
			if f.CalleeSaved != want {
				t.Errorf("%s: function %d: callee-saved %b, kernel %b", c.Name, k, f.CalleeSaved, want)
			}
			if f.TailCallReachable != tcr {
				t.Errorf("%s: function %d: tail-call reachable %v, kernel %v", c.Name, k, f.TailCallReachable, tcr)
			}
			checked++
		}
		if p.UsesArena != (c.KernVMStart != 0) {
			t.Errorf("%s: UsesArena %v, kernel %v", c.Name, p.UsesArena, c.KernVMStart != 0)
		}
	}
	t.Logf("%d functions agree with the kernel", checked)
}

// TestStackDepthArenaObjects checks stackdepth and regusage on the
// clang-built arena programs of testdata/arena (xlated + jited captures).
func TestStackDepthArenaObjects(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/arena/*.json")
	if len(paths) == 0 {
		t.Skip("no testdata/arena captures")
	}
	checked := 0
	for _, path := range paths {
		var c struct {
			Xlated   string   `json:"xlated"`
			Jited    string   `json:"jited"`
			FuncLens []int    `json:"func_lens"`
			Ksyms    []uint64 `json:"ksyms"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		xl, _ := hex.DecodeString(c.Xlated)
		jit, _ := hex.DecodeString(c.Jited)
		p, err := ir.DecodeWith(xl, ir.DecodeOptions{Xlated: true})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for i := range p.Insns { // the dump's bpf-to-bpf calls: offset in off
			if ins := &p.Insns[i]; ins.IsPseudoCall() {
				ins.Imm, ins.Off = int32(ins.Off), 0
			}
		}
		ctx := &pipeline.Context{}
		if err := (StackDepth{}).Run(p, ctx); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if err := (RegUsage{}).Run(p, ctx); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(p.Funcs) != len(c.FuncLens) {
			t.Errorf("%s: %d functions, kernel %d", path, len(p.Funcs), len(c.FuncLens))
			continue
		}
		off := 0
		for k, f := range p.Funcs {
			code := jit[off : off+c.FuncLens[k]]
			off += c.FuncLens[k]
			// nop5, nop3/xor, push rbp, mov rbp,rsp: 12 bytes; then sub rsp.
			depth := 0
			if len(code) > 19 && code[12] == 0x48 && code[13] == 0x81 && code[14] == 0xec {
				depth = int(binary.LittleEndian.Uint32(code[15:]))
			}
			if got := int((f.StackDepth + 7) &^ 7); got != depth {
				t.Errorf("%s: function %d: stack depth %d, kernel %d", path, k, got, depth)
			}
			checked++
		}
	}
	t.Logf("%d functions agree with the kernel's sub rsp", checked)
}
