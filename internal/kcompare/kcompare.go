// Package kcompare compiles a live-kernel capture (internal/kernel) with
// bpfc's own pipeline and backend and compares the result with the kernel's
// JIT output, whole image, byte for byte. It backs `bpfc kcompare` and the
// corpus comparison test of backend/amd64.
//
// The input is the capture's JIT input (the kernel's xlated program with
// map addresses and call offsets restored); the passes the JIT needs on a
// verified program (passes.JIT: arena inference, stack depth, register
// usage) run on it with pipeline.Context.FromXlated; the target is
// amd64.Linux618 with the capture's call base, thunks and arena bases; the
// functions are placed at the kernel's addresses. Any difference is
// reported at the first differing BPF instruction with both disassemblies.
package kcompare

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

// Prepared is a capture made ready for the backend.
type Prepared struct {
	Program *ir.Program
	Target  amd64.Target
	// Truth lists the facts taken from the kernel's output because no pass
	// provides them (e.g. "stackdepth" when that pass is not registered).
	Truth []string
}

// Target returns amd64.Linux618 with the capture's addresses.
func Target(c *kernel.Capture) amd64.Target {
	t := amd64.Linux618()
	t.CallBase = uint64(c.CallBase)
	if c.IndirectThunkRCX != 0 {
		t.IndirectThunkRCX = uint64(c.IndirectThunkRCX)
	}
	t.ReturnThunk = uint64(c.ReturnThunk)
	t.KernVMStart = uint64(c.KernVMStart)
	t.UserVMStart = uint64(c.UserVMStart)
	return t
}

// Prepare decodes the capture's JIT input and runs the JIT's passes on it.
// With truth set, the kernel's own facts (arena accesses, stack depths,
// saved registers, tail-call reachability) replace the passes' results, to
// test the backend alone.
func Prepare(c *kernel.Capture, truth bool) (*Prepared, error) {
	p, err := c.Program()
	if err != nil {
		return nil, err
	}
	pr := &Prepared{Program: p, Target: Target(c)}
	if truth {
		pr.Truth = []string{"arena", "stackdepth", "regusage"}
		return pr, ApplyTruth(p, c, true, true, true)
	}
	ctx := &pipeline.Context{FromXlated: true, File: c.Name, KernVMStart: uint64(c.KernVMStart), UserVMStart: uint64(c.UserVMStart)}
	pl := passes.JIT()
	if _, err := pl.Run(p, ctx); err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range pl.Names() {
		have[n] = true
	}
	needStack, needRegs := !have["stackdepth"], !have["regusage"]
	if needStack {
		pr.Truth = append(pr.Truth, "stackdepth")
	}
	if needRegs {
		pr.Truth = append(pr.Truth, "regusage")
	}
	if needStack || needRegs || p.Funcs == nil {
		if err := ApplyTruth(p, c, false, needStack || p.Funcs == nil, needRegs || p.Funcs == nil); err != nil {
			return nil, err
		}
	}
	return pr, nil
}

// ApplyTruth sets what the kernel's machine code says about the program:
// arena accesses (PROBE_MEM32 modes), per-function stack depth, saved
// registers and tail-call reachability.
func ApplyTruth(p *ir.Program, c *kernel.Capture, arena, stack, regs bool) error {
	if arena {
		for _, i := range c.ArenaInsns {
			if i < 0 || i >= len(p.Insns) {
				return &ir.Error{Index: i, Reason: "arena instruction outside the program"}
			}
			ins := &p.Insns[i]
			if ins.Mode() == ir.ModeMEM {
				ins.Op = ins.Op&^0xe0 | uint8(ir.ModeProbeMem32)
			}
			p.Aux[i].PtrType = ir.PtrArena
		}
		if c.KernVMStart != 0 {
			p.UsesArena = true
		}
	}
	funcs := p.Funcs
	if funcs == nil {
		var err error
		if funcs, err = ir.FindFuncs(p); err != nil {
			return err
		}
	}
	if len(funcs) != len(c.FuncLens) {
		return fmt.Errorf("%s: %d functions, the kernel has %d", c.Name, len(funcs), len(c.FuncLens))
	}
	for k := range funcs {
		if stack {
			funcs[k].StackDepth = int32(c.StackDepths[k])
		}
		if !regs {
			continue
		}
		funcs[k].CalleeSaved = 0
		funcs[k].TailCallReachable = false
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
		// A tail-call-reachable main program starts nop5; xor rax, rax.
		if code := c.FuncCode(k); k == 0 && len(code) > 8 && bytes.Equal(code[5:8], []byte{0x48, 0x31, 0xc0}) {
			funcs[k].TailCallReachable = true
		}
	}
	p.Funcs = funcs
	return nil
}

// Compile prepares the capture (passes, or the kernel's facts with truth)
// and compiles it at the kernel's function addresses.
func Compile(c *kernel.Capture, truth bool) (*amd64.Image, *Prepared, error) {
	pr, err := Prepare(c, truth)
	if err != nil {
		return nil, nil, err
	}
	im, err := amd64.Compile(pr.Program, pr.Target, c.ExecBase())
	if err != nil {
		return nil, pr, err
	}
	return im, pr, nil
}

// Mismatch is a difference between bpfc's image and the kernel's.
type Mismatch struct {
	Name string
	// Reason is set for differences that are not in the code bytes (the
	// number of functions).
	Reason string
	// Func and Insn locate the first differing BPF instruction (Insn -1:
	// in the prologue); Offset is the first differing byte in the function.
	Func, Insn, Offset int
	BPF                string   // the instruction in the verifier-log syntax
	Kernel, Ours       []string // disassembly of that instruction's code
	SizeKernel         int      // whole image sizes
	SizeOurs           int
	FuncSizeKernel     int
	FuncSizeOurs       int
}

func (m *Mismatch) Error() string {
	if m.Reason != "" {
		return m.Name + ": " + m.Reason
	}
	var sb strings.Builder
	where := "prologue"
	if m.Insn >= 0 {
		where = fmt.Sprintf("instruction %d: %s", m.Insn, m.BPF)
	}
	fmt.Fprintf(&sb, "%s: differs from the kernel in function %d at byte %#x, %s (image %d bytes, kernel %d; function %d, kernel %d)\n",
		m.Name, m.Func, m.Offset, where, m.SizeOurs, m.SizeKernel, m.FuncSizeOurs, m.FuncSizeKernel)
	sb.WriteString("  kernel:\n")
	for _, l := range m.Kernel {
		sb.WriteString("    " + l + "\n")
	}
	sb.WriteString("  bpfc:\n")
	for _, l := range m.Ours {
		sb.WriteString("    " + l + "\n")
	}
	return strings.TrimRight(sb.String(), "\n")
}

// Compare returns nil when im is byte-identical to the kernel's image, else
// a *Mismatch at the first differing instruction.
func Compare(c *kernel.Capture, p *ir.Program, im *amd64.Image) error {
	got := im.Code()
	if bytes.Equal(got, c.Jited) && len(im.Funcs) == len(c.FuncLens) {
		return nil
	}
	m := &Mismatch{Name: c.Name, SizeKernel: len(c.Jited), SizeOurs: len(got), Insn: -1}
	if len(im.Funcs) != len(c.FuncLens) {
		m.Reason = fmt.Sprintf("%d functions, the kernel has %d", len(im.Funcs), len(c.FuncLens))
		return m
	}
	for k, f := range im.Funcs {
		kc := c.FuncCode(k)
		if bytes.Equal(f.Code, kc) {
			continue
		}
		n := 0
		for n < len(f.Code) && n < len(kc) && f.Code[n] == kc[n] {
			n++
		}
		m.Func, m.Offset = k, n
		m.FuncSizeKernel, m.FuncSizeOurs = len(kc), len(f.Code)
		// The instruction containing byte n (its start precedes n, so it
		// starts at the same place in both images).
		lo, hi := 0, len(f.Code)
		if len(f.Addrs) > 0 {
			hi = int(f.Addrs[0])
		}
		for r := 0; r < len(f.Addrs); r++ {
			if int(f.Addrs[r]) <= n {
				m.Insn = f.Start + r
				lo = int(f.Addrs[r])
				hi = len(f.Code)
				if r+1 < len(f.Addrs) {
					hi = int(f.Addrs[r+1])
				}
			}
		}
		if m.Insn >= len(p.Insns) || hi <= lo && m.Insn >= 0 {
			// n is past the last instruction: the epilogue or the end.
			m.Insn = -1
		}
		if m.Insn >= 0 {
			m.BPF = p.Format(m.Insn)
		}
		khi := kernelEnd(c, k, lo, m.Insn, hi)
		m.Kernel = disasm(kc, lo, khi, c.Ksyms[k])
		m.Ours = disasm(f.Code, lo, hi, kernel.Addr(f.ExecAddr))
		return m
	}
	return m
}

// kernelEnd guesses where the kernel's code for the instruction starting
// at lo ends: the next line-info record of the function, else our end plus
// a little.
func kernelEnd(c *kernel.Capture, f, lo, insn, ourHi int) int {
	best := -1
	for _, l := range c.Lines {
		if l.Func == f && l.Insn > insn && l.Off > lo && (best < 0 || l.Off < best) {
			best = l.Off
		}
	}
	if best < 0 {
		best = ourHi + 8
	}
	return min(best, int(c.FuncLens[f]))
}

func disasm(code []byte, lo, hi int, base kernel.Addr) []string {
	var out []string
	for pc := lo; pc < hi && pc < len(code); {
		in, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			out = append(out, fmt.Sprintf("%4x: %x (does not decode: %v)", pc, code[pc:min(pc+8, len(code))], err))
			break
		}
		out = append(out, fmt.Sprintf("%4x: %-22x %s", pc, code[pc:pc+in.Len], x86asm.IntelSyntax(in, uint64(base)+uint64(pc), nil)))
		pc += in.Len
	}
	if len(out) > 24 {
		out = append(out[:24], "...")
	}
	return out
}

// CheckArena compares the arena accesses a prepared program has (PROBE_MEM32
// / PROBE_MEM32SX / PROBE_ATOMIC) with the kernel's.
func CheckArena(c *kernel.Capture, p *ir.Program) error {
	want := map[int]bool{}
	for _, i := range c.ArenaInsns {
		want[i] = true
	}
	for i, ins := range p.Insns {
		if ins.IsLdImm64() || i > 0 && p.Insns[i-1].IsLdImm64() {
			continue
		}
		got := isArenaAccess(ins)
		if got != want[i] {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("%s: arena access %v, the kernel's %v", c.Name, got, want[i])}
		}
	}
	return nil
}

// Result is the outcome of Run.
type Result struct {
	Capture  *kernel.Capture
	Prepared *Prepared
	Image    *amd64.Image
	// Mismatch is nil when bpfc's image is identical to the kernel's.
	Mismatch error
}

// Run loads spec into the live kernel, captures its JIT output, compiles
// the xlated program with bpfc and compares. Errors are about loading or
// compiling; a difference is in Result.Mismatch.
func Run(spec *kernel.Spec) (*Result, error) {
	if ok, why := kernel.Available(); !ok {
		return nil, fmt.Errorf("live kernel unavailable: %s", why)
	}
	c, err := kernel.CaptureSpec(spec, "")
	if err != nil {
		return nil, err
	}
	return CompareCapture(c, false)
}

// CompareCapture compiles a capture and compares it with the kernel's image.
func CompareCapture(c *kernel.Capture, truth bool) (*Result, error) {
	im, pr, err := Compile(c, truth)
	if err != nil {
		return &Result{Capture: c, Prepared: pr}, fmt.Errorf("%s: %w", c.Name, err)
	}
	return &Result{Capture: c, Prepared: pr, Image: im, Mismatch: Compare(c, pr.Program, im)}, nil
}

// isArenaAccess reports the arena forms: PROBE_MEM32 loads and stores,
// PROBE_MEM32SX loads, PROBE_ATOMIC.
func isArenaAccess(ins ir.Instruction) bool {
	switch ins.Class() {
	case ir.ClassLDX:
		return ins.Mode() == ir.ModeProbeMem32 || ins.Mode() == ir.ModeProbeMem32SX
	case ir.ClassST:
		return ins.Mode() == ir.ModeProbeMem32
	case ir.ClassSTX:
		return ins.Mode() == ir.ModeProbeMem32 || ins.Mode() == ir.ModeProbeAtomic
	}
	return false
}
