package amd64

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

var capture = flag.Bool("capture", false, "load the golden programs into the live kernel and rewrite testdata/amd64")

const goldenDir = "../../testdata/amd64"

// TestCapture loads every program of goldenPrograms into the live kernel and
// writes its capture to testdata/amd64/<name>.json. Run with
// `go test ./backend/amd64 -run Capture -capture` (root, BPF JIT on).
func TestCapture(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture to refresh the goldens from the live kernel")
	}
	if ok, why := kernel.Available(); !ok {
		t.Skip(why)
	}
	for _, gp := range goldenPrograms() {
		typ := kernel.Syscall
		if gp.typ != 0 {
			typ = gp.typ
		}
		spec := &kernel.Spec{Name: gp.name, Type: typ, Program: gp.prog, Maps: gp.maps}
		c, err := kernel.CaptureSpec(spec, gp.note)
		if err != nil {
			t.Errorf("%s: %v", gp.name, err)
			continue
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(goldenDir, gp.name+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d insns, %d bytes, %d funcs", gp.name, len(c.Xlated)/8, len(c.Jited), len(c.FuncLens))
	}
}

// truthProgram decodes a capture's JIT input and applies what the kernel's
// own output says about it (arena accesses, stack depths, saved registers,
// tail-call reachability), so that the backend is tested on its own.
func truthProgram(c *kernel.Capture) (*ir.Program, Target, error) {
	p, err := c.Program()
	if err != nil {
		return nil, Target{}, err
	}
	for _, i := range c.ArenaInsns {
		ins := &p.Insns[i]
		if ins.Mode() == ir.ModeMEM {
			ins.Op = ins.Op&^0xe0 | uint8(ir.ModeProbeMem32)
		}
	}
	restorePseudoFuncs(c, p)
	funcs, err := ir.FindFuncs(p)
	if err != nil {
		return nil, Target{}, err
	}
	if len(funcs) != len(c.FuncLens) {
		return nil, Target{}, fmt.Errorf("%d functions, the kernel has %d", len(funcs), len(c.FuncLens))
	}
	for k := range funcs {
		funcs[k].StackDepth = int32(c.StackDepths[k])
		for _, r := range strings.Fields(c.Pushes[k]) {
			switch r {
			case "rbx":
				funcs[k].CalleeSaved = funcs[k].CalleeSaved.Add(ir.R6)
			case "r13":
				funcs[k].CalleeSaved = funcs[k].CalleeSaved.Add(ir.R7)
			case "r14":
				funcs[k].CalleeSaved = funcs[k].CalleeSaved.Add(ir.R8)
			case "r15":
				funcs[k].CalleeSaved = funcs[k].CalleeSaved.Add(ir.R9)
			case "rax":
				funcs[k].TailCallReachable = true
			case "r12":
				p.UsesArena = true
			}
		}
		code := c.FuncCode(k)
		if k == 0 && len(code) > 8 && bytes.Equal(code[5:8], []byte{0x48, 0x31, 0xc0}) {
			funcs[k].TailCallReachable = true
		}
	}
	p.Funcs = funcs
	t := Linux618()
	t.CallBase = uint64(c.CallBase)
	t.IndirectThunkRCX = uint64(c.IndirectThunkRCX)
	t.ReturnThunk = uint64(c.ReturnThunk)
	t.KernVMStart = uint64(c.KernVMStart)
	t.UserVMStart = uint64(c.UserVMStart)
	if c.KernVMStart != 0 {
		p.UsesArena = true
	}
	return p, t, nil
}

// restorePseudoFuncs turns the JIT input's plain ld_imm64 of a function's
// address (a callback) back into a function reference, so that the callee
// is found as a function: the line info says where each function starts.
func restorePseudoFuncs(c *kernel.Capture, p *ir.Program) {
	start := map[uint64]int{}
	for _, ln := range c.Lines {
		if ln.Func > 0 && ln.Func < len(c.Ksyms) {
			if _, ok := start[uint64(c.Ksyms[ln.Func])]; !ok {
				start[uint64(c.Ksyms[ln.Func])] = ln.Insn
			}
		}
	}
	for i := 0; i+1 < len(p.Insns); i++ {
		ins := p.Insns[i]
		if !ins.IsLdImm64() {
			continue
		}
		if s, ok := start[ir.Imm64(ins, p.Insns[i+1])]; ok && ins.Src == ir.PseudoNone {
			p.Insns[i].Src = ir.PseudoFunc
			p.Insns[i].Imm = int32(s - (i + 1))
			p.Insns[i+1].Imm = 0
		}
		i++
	}
}

// compareCapture compiles a capture and compares the whole image.
func compareCapture(t *testing.T, c *kernel.Capture, p *ir.Program, tg Target) *Image {
	t.Helper()
	im, err := Compile(p, tg, c.ExecBase())
	if err != nil {
		t.Errorf("%s: %v", c.Name, err)
		return nil
	}
	got := im.Code()
	if !bytes.Equal(got, c.Jited) {
		t.Errorf("%s: code differs from the kernel's: %s", c.Name, firstDiff(got, c.Jited, c, im))
		return im
	}
	for k, f := range im.Funcs {
		if len(f.Code) != int(c.FuncLens[k]) {
			t.Errorf("%s: function %d is %d bytes, the kernel's %d", c.Name, k, len(f.Code), c.FuncLens[k])
		}
	}
	// The BPF->x86 offset map agrees with the kernel's line info.
	for _, ln := range c.Lines {
		if ln.Func >= len(im.Funcs) {
			continue
		}
		f := im.Funcs[ln.Func]
		rel := ln.Insn - f.Start
		if rel <= 0 || rel >= len(f.Addrs) {
			continue
		}
		if int(f.Addrs[rel]) != ln.Off {
			t.Errorf("%s: instruction %d starts at %d, the kernel's line info says %d", c.Name, ln.Insn, f.Addrs[rel], ln.Off)
			break
		}
	}
	return im
}

func firstDiff(got, want []byte, c *kernel.Capture, im *Image) string {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	lo := n - 16
	if lo < 0 {
		lo = 0
	}
	show := func(b []byte) string {
		hi := n + 24
		if hi > len(b) {
			hi = len(b)
		}
		if lo > len(b) {
			return ""
		}
		return fmt.Sprintf("%x|%x", b[lo:min(n, len(b))], b[min(n, len(b)):hi])
	}
	where := ""
	off := 0
	for k, f := range im.Funcs {
		if n < off+len(f.Code) {
			for i := 1; i < len(f.Addrs); i++ {
				if int(f.Addrs[i]) > n-off {
					where = fmt.Sprintf(" (function %d, instruction %d)", k, f.Start+i-1)
					break
				}
			}
			break
		}
		off += len(f.Code)
	}
	return fmt.Sprintf("sizes %d/%d, first difference at byte %d%s\n got  %s\n want %s\n%s", len(got), len(want), n, where, show(got), show(want), disasmAround(want, got, n))
}

func disasmAround(want, got []byte, n int) string {
	var sb strings.Builder
	for _, side := range []struct {
		name string
		b    []byte
	}{{"want", want}, {"got", got}} {
		pc := 0
		for pc < len(side.b) {
			in, err := x86asm.Decode(side.b[pc:], 64)
			if err != nil {
				break
			}
			if pc+in.Len > n-24 && pc < n+24 {
				fmt.Fprintf(&sb, "%s %4x: %-24x %s\n", side.name, pc, side.b[pc:pc+in.Len], x86asm.IntelSyntax(in, uint64(pc), nil))
			}
			pc += in.Len
		}
	}
	return sb.String()
}

// TestGolden compiles every capture in testdata/amd64 with the kernel's
// own facts about it and requires the whole image to be byte-identical.
func TestGolden(t *testing.T) {
	caps, err := kernel.ReadCaptures(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) == 0 {
		t.Skip("no goldens captured yet")
	}
	same := 0
	for _, c := range caps {
		p, tg, err := truthProgram(c)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		im := compareCapture(t, c, p, tg)
		if im != nil && bytes.Equal(im.Code(), c.Jited) {
			same++
			checkDecodes(t, c.Name, im)
		}
	}
	t.Logf("%d/%d captures byte-identical", same, len(caps))
}

// checkDecodes decodes every instruction of the image with x86asm and
// requires the instruction boundaries to match the BPF->x86 map.
func checkDecodes(t *testing.T, name string, im *Image) {
	t.Helper()
	for k, f := range im.Funcs {
		starts := map[int]bool{}
		pc := 0
		for pc < len(f.Code) {
			in, err := x86asm.Decode(f.Code[pc:], 64)
			if err != nil {
				t.Errorf("%s: function %d: byte %d does not decode: %v (%x)", name, k, pc, err, f.Code[pc:min(pc+16, len(f.Code))])
				return
			}
			starts[pc] = true
			pc += in.Len
		}
		for i, a := range f.Addrs {
			if int(a) < len(f.Code) && !starts[int(a)] {
				t.Errorf("%s: function %d: addrs[%d] = %d is not an instruction boundary", name, k, i, a)
				return
			}
		}
	}
}

// TestKernelCorpus compiles the kernel helper's corpus (testdata/kernel)
// with the kernel's own facts, like TestGolden.
func TestKernelCorpus(t *testing.T) {
	caps, err := kernel.ReadCaptures("../../testdata/kernel")
	if err != nil || len(caps) == 0 {
		t.Skip("no corpus in testdata/kernel")
	}
	same := 0
	for _, c := range caps {
		p, tg, err := truthProgram(c)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		im := compareCapture(t, c, p, tg)
		if im != nil && bytes.Equal(im.Code(), c.Jited) {
			same++
			checkDecodes(t, c.Name, im)
		}
	}
	t.Logf("%d/%d captures byte-identical", same, len(caps))
}
