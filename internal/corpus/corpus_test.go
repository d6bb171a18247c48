package corpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

const goldenDir = "../../testdata/kernel"

var (
	goldenOnce sync.Once
	goldenCaps []*kernel.Capture
	goldenErr  error
)

// readGoldens reads testdata/kernel once per test binary.
func readGoldens(t *testing.T) []*kernel.Capture {
	t.Helper()
	goldenOnce.Do(func() { goldenCaps, goldenErr = kernel.ReadCaptures(goldenDir) })
	if goldenErr != nil {
		t.Fatal(goldenErr)
	}
	return goldenCaps
}

func TestCorpusBuilds(t *testing.T) {
	all := All()
	if len(all) < 180 {
		t.Errorf("corpus has %d programs, want at least 180", len(all))
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.Name] {
			t.Errorf("duplicate name %s", e.Name)
		}
		seen[e.Name] = true
		if e.Note == "" {
			t.Errorf("%s: no note", e.Name)
		}
		p, err := e.Program()
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		q, err := e.Program()
		if err != nil || !bytes.Equal(ir.Encode(p), ir.Encode(q)) {
			t.Errorf("%s: not deterministic", e.Name)
		}
		if _, err := ir.FindFuncs(p); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
	}
}

func TestBuilderErrors(t *testing.T) {
	b := NewB()
	b.Ja("nowhere").Exit()
	if _, err := b.Program("x"); err == nil || !strings.Contains(err.Error(), "undefined label") {
		t.Errorf("undefined label: %v", err)
	}
	b = NewB()
	b.Label("a").Label("a").Exit()
	if _, err := b.Program("x"); err == nil || !strings.Contains(err.Error(), "duplicate label") {
		t.Errorf("duplicate label: %v", err)
	}
	b = NewB()
	b.Ja("far")
	for i := 0; i < 40000; i++ {
		b.Emit(Mov64(R0, 0))
	}
	b.Label("far").Exit()
	if _, err := b.Program("x"); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("far jump: %v", err)
	}
	b = NewB()
	b.Gotol("far")
	for i := 0; i < 40000; i++ {
		b.Emit(Mov64(R0, 0))
	}
	b.Label("far").Exit()
	if p, err := b.Program("x"); err != nil || p.Insns[0].Imm != 40000 {
		t.Errorf("gotol: %v", err)
	}
}

// TestGoldensMatchCorpus: every program has a golden captured from exactly
// the program the generator builds now (kfunc ids aside), and no golden is
// stale.
func TestGoldensMatchCorpus(t *testing.T) {
	caps := readGoldens(t)
	byName := map[string]*kernel.Capture{}
	for _, c := range caps {
		byName[c.Name] = c
	}
	pending, err := kernel.ReadCaptures(goldenDir + "/pending")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	pendingByName := map[string]*kernel.Capture{}
	for _, c := range pending {
		pendingByName[c.Name] = c
	}
	for _, e := range All() {
		c := byName[e.Name]
		if e.Pending != "" {
			if c != nil {
				t.Errorf("%s: pending, but its golden is in %s", e.Name, goldenDir)
			}
			c = pendingByName[e.Name]
			delete(pendingByName, e.Name)
		}
		if c == nil {
			t.Errorf("%s: no golden (run go run ./internal/kernel/cmd/kcapture)", e.Name)
			continue
		}
		delete(byName, e.Name)
		p, _ := e.Program()
		src, err := kernel.SourceProgram(c)
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		if len(src.Insns) != len(p.Insns) {
			t.Errorf("%s: golden has %d instructions, the generator %d: recapture", e.Name, len(src.Insns), len(p.Insns))
			continue
		}
		for i := range p.Insns {
			a, b := p.Insns[i], src.Insns[i]
			if a.IsKfuncCall() {
				a.Imm, b.Imm = 0, 0
			}
			if a != b {
				t.Errorf("%s: instruction %d differs from the golden's source: recapture", e.Name, i)
				break
			}
		}
		if c.ProgType != e.Type.String() {
			t.Errorf("%s: golden type %s, corpus %s", e.Name, c.ProgType, e.Type)
		}
	}
	for n := range byName {
		t.Errorf("stale golden %s.json (not in the corpus; kcapture -prune)", n)
	}
	for n := range pendingByName {
		t.Errorf("stale golden pending/%s.json (kcapture -prune)", n)
	}
	if _, err := os.Stat(filepath.Join(goldenDir, "README.md")); err != nil {
		t.Error("testdata/kernel/README.md missing")
	}
}

// TestCoverage lists the instruction forms the JIT handles and requires
// each in some corpus program.
func TestCoverage(t *testing.T) {
	have := map[string]bool{}
	for _, e := range All() {
		p, _ := e.Program()
		for i := 0; i < len(p.Insns); i++ {
			in := p.Insns[i]
			have[formOf(in)] = true
			if in.IsLdImm64() {
				i++
			}
		}
	}
	var want []string
	for _, cls := range []ir.Class{ALU, ALU64} {
		for _, o := range aluOps {
			want = append(want, fmt.Sprintf("%v %#x k", cls, o.op), fmt.Sprintf("%v %#x x", cls, o.op))
		}
		want = append(want, fmt.Sprintf("%v sdiv k", cls), fmt.Sprintf("%v sdiv x", cls), fmt.Sprintf("%v smod k", cls), fmt.Sprintf("%v smod x", cls),
			fmt.Sprintf("%v neg", cls), fmt.Sprintf("%v movsx8", cls), fmt.Sprintf("%v movsx16", cls))
	}
	want = append(want, "alu64 movsx32", "alu end le", "alu end be", "alu64 bswap", "cast user", "cast kern")
	for _, cls := range []ir.Class{ir.ClassJMP, ir.ClassJMP32} {
		for _, o := range jumpOps {
			want = append(want, fmt.Sprintf("%v %#x k", cls, o.op), fmt.Sprintf("%v %#x x", cls, o.op))
		}
	}
	want = append(want, "ja", "gotol", "may_goto", "exit", "call helper", "call local", "call kfunc",
		"ld_imm64 0", "ld_imm64 5", "ld_imm64 6")
	for _, s := range sizes {
		want = append(want, "ldx "+s.name, "stx "+s.name, "st "+s.name)
		if s.sz != DW {
			want = append(want, "ldsx "+s.name)
		}
		for _, o := range atomicOps {
			if s.sz == W32 || s.sz == DW {
				want = append(want, fmt.Sprintf("atomic %s %#x", s.name, o.imm))
			}
		}
		want = append(want, fmt.Sprintf("atomic %s %#x", s.name, ir.AtomicLoadAcq), fmt.Sprintf("atomic %s %#x", s.name, ir.AtomicStoreRel))
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("no corpus program has %q", w)
		}
	}
}

func formOf(in ir.Instruction) string {
	c := in.Class()
	sz := map[ir.Size]string{B8: "b", H16: "h", W32: "w", DW: "dw"}[in.Size()]
	src := "k"
	if in.Source() == ir.SourceX {
		src = "x"
	}
	switch {
	case in.IsCastToUser():
		return "cast user"
	case in.IsCastToKernel():
		return "cast kern"
	case c.IsALU() && in.ALUOp() == ir.ALUNeg:
		return fmt.Sprintf("%v neg", c)
	case c.IsALU() && in.ALUOp() == ir.ALUEnd:
		if c == ALU64 {
			return "alu64 bswap"
		}
		return map[ir.Source]string{ir.EndToLE: "alu end le", ir.EndToBE: "alu end be"}[in.Source()]
	case c.IsALU() && in.ALUOp() == ir.ALUMov && in.Off != 0:
		return fmt.Sprintf("%v movsx%d", c, in.Off)
	case c.IsALU() && (in.ALUOp() == ir.ALUDiv || in.ALUOp() == ir.ALUMod) && in.Off == 1:
		return fmt.Sprintf("%v s%s %s", c, map[ir.ALUOp]string{ir.ALUDiv: "div", ir.ALUMod: "mod"}[in.ALUOp()], src)
	case c.IsALU():
		return fmt.Sprintf("%v %#x %s", c, in.ALUOp(), src)
	case in.Op == ir.OpJA:
		return "ja"
	case in.Op == ir.OpGotoL:
		return "gotol"
	case in.Op == ir.OpMayGoto:
		return "may_goto"
	case in.IsExit():
		return "exit"
	case in.IsHelperCall():
		return "call helper"
	case in.IsPseudoCall():
		return "call local"
	case in.IsKfuncCall():
		return "call kfunc"
	case c.IsJump():
		return fmt.Sprintf("%v %#x %s", c, in.JumpOp(), src)
	case in.IsLdImm64():
		return fmt.Sprintf("ld_imm64 %d", in.Src)
	case c == ir.ClassLDX && in.Mode() == ir.ModeMEMSX:
		return "ldsx " + sz
	case c == ir.ClassLDX:
		return "ldx " + sz
	case c == ir.ClassST:
		return "st " + sz
	case c == ir.ClassSTX && in.Mode() == ir.ModeATOMIC:
		return fmt.Sprintf("atomic %s %#x", sz, in.Imm)
	case c == ir.ClassSTX:
		return "stx " + sz
	}
	return fmt.Sprintf("op %#x", in.Op)
}

// TestKernelLayoutFacts checks, on the kernel's own output, that the
// corpus reaches what it was built for: fill() makes exact byte counts,
// the distance sweeps straddle the short-jump bounds, chains need many
// passes and the long chains make the kernel pad.
func TestKernelLayoutFacts(t *testing.T) {
	caps := readGoldens(t)
	byName := map[string]*kernel.Capture{}
	for _, c := range caps {
		byName[c.Name] = c
	}
	// Forward conditional jumps: the jump's displacement is the fill size,
	// short up to 123, near from 124.
	for n := 119; n <= 128; n++ {
		c := byName[fmt.Sprintf("jdist_jcc_fwd_%d", n)]
		if c == nil {
			t.Fatalf("jdist_jcc_fwd_%d missing", n)
		}
		j := firstCondJump(t, c)
		rel := int(j.Inst.Args[0].(x86asm.Rel))
		if rel != n || (j.Inst.Len == 2) != (n <= 123) {
			t.Errorf("jdist_jcc_fwd_%d: %d-byte jump by %d", n, j.Inst.Len, rel)
		}
	}
	// Backward conditional jumps: both forms occur, switching at -128.
	short, near := 0, 0
	for n := 112; n <= 124; n++ {
		c := byName[fmt.Sprintf("jdist_jcc_back_%d", n)]
		j := firstCondJump(t, c)
		rel := int(j.Inst.Args[0].(x86asm.Rel))
		if j.Inst.Len == 2 {
			short++
			if rel < -128 {
				t.Errorf("short jump by %d", rel)
			}
		} else {
			near++
			if rel >= -128 {
				t.Errorf("near jump by %d", rel)
			}
		}
	}
	if short == 0 || near == 0 {
		t.Errorf("backward sweep: %d short, %d near jumps; want both", short, near)
	}
	// Chains: no padding up to 13 jumps, all short; padding from 15.
	for _, k := range []int{5, 13, 15, 20, 32} {
		c := byName[fmt.Sprintf("layout_chain_%d", k)]
		padded := bytes.Count(c.Jited, []byte{0x0f, 0x1f, 0x40, 0x00, 0x77})
		if (k >= 15) != (padded > 0) {
			t.Errorf("layout_chain_%d: %d padded jumps", k, padded)
		}
	}
}

func firstCondJump(t *testing.T, c *kernel.Capture) kernel.X86Insn {
	t.Helper()
	d, err := kernel.Disassemble(c.Jited)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range d {
		if x.Inst.Op == x86asm.JA {
			return x
		}
	}
	t.Fatalf("%s: no conditional jump", c.Name)
	return kernel.X86Insn{}
}
