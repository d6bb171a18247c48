package kernel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/ir"
)

// Capture is everything needed to reproduce one program's JIT output without
// the kernel: the kernel's xlated program, the JIT input derived from it, the
// machine code, and the addresses the code depends on. It is what
// testdata/kernel/<name>.json holds.
type Capture struct {
	Name      string   `json:"name"`
	Note      string   `json:"note,omitempty"`
	Kernel    string   `json:"kernel"`
	ProgType  string   `json:"prog_type"`
	ProgFlags uint32   `json:"prog_flags,omitempty"`
	Maps      []MapDef `json:"maps,omitempty"`

	// Source is the program as loaded (ir.Encode of the spec, kfunc ids
	// resolved for this kernel).
	Source Hex `json:"source"`
	// Xlated is the xlated program exactly as BPF_OBJ_GET_INFO_BY_FD
	// reports it (map ids instead of addresses, PROBE_MEM32 shown as MEM,
	// tail calls shown as helper calls, bpf-to-bpf calls with the callee's
	// index in imm).
	Xlated Hex `json:"xlated"`
	// JITInput is Xlated made into what the JIT compiled: map loads become
	// plain ld_imm64 of the address the jited movabs holds, bpf-to-bpf
	// calls carry the relative offset in imm (off 0), function-address
	// loads (src 4) keep the relative offset and get 0 as their second imm
	// (the backend loads the callee's exec address), and tail calls
	// become the kernel-internal opcode (imm 0: indirect; k>0: direct, the
	// k-th poke descriptor), and PROBE_MEM loads get their mode back
	// (ProbeMemInsns). In programs with several functions, map-value loads
	// that were loaded with src 6 (fd_array index) keep src 6: the JIT saw
	// it (and saved rbx for it). Arena accesses stay MEM, as in the dump:
	// the truth is ArenaInsns.
	JITInput Hex `json:"jit_input"`

	// Jited is the machine code of all functions, concatenated.
	Jited    Hex      `json:"jited"`
	FuncLens []uint32 `json:"func_lens"`
	// Ksyms is the address each function's code runs at.
	Ksyms []Addr `json:"ksyms"`

	CallBase         Addr `json:"call_base"`
	IndirectThunkRCX Addr `json:"indirect_thunk_rcx"`
	// ReturnThunk is the target of the epilogue's `jmp rel32` when the
	// kernel returns through a return thunk (0: plain ret).
	ReturnThunk Addr `json:"return_thunk"`
	KernVMStart Addr `json:"kern_vm_start,omitempty"`
	UserVMStart Addr `json:"user_vm_start,omitempty"`

	// Lines maps instructions to code: Off is where xlated instruction
	// Insn starts within function Func (the first record of a function
	// reports the function's start, before the prologue).
	Lines []Line `json:"lines,omitempty"`
	// ArenaInsns are the xlated indices of loads/stores the JIT emitted as
	// arena accesses ([base + r12 + off]), read off the jited bytes; the
	// dump shows them as MEM.
	ArenaInsns []int `json:"arena_insns,omitempty"`
	// ProbeMemInsns are the xlated indices of loads through BTF pointers
	// the JIT emitted with the PROBE_MEM address check (the dump shows them
	// as MEM; the JIT input has them as PROBE_MEM, since no pass can infer
	// them without the kernel's BTF).
	ProbeMemInsns []int `json:"probe_mem_insns,omitempty"`
	// StackDepths is each function's `sub rsp, imm32` (0 when absent):
	// round_up(stack depth, 8).
	StackDepths []int `json:"stack_depths"`
	// Pushes lists each function's pushes after the frame, in order
	// (e.g. "r12 rbx r13"; "rax" entries are the tail-call counter block).
	Pushes []string `json:"pushes"`
	// Runs are BPF_PROG_TEST_RUN results of deterministic programs (no
	// helpers, maps or time): inputs and what the kernel computed, for
	// differential tests of the interpreter and the in-process JIT.
	Runs []Run `json:"runs,omitempty"`
	// VerifiedInsns is how many instructions the verifier processed.
	VerifiedInsns uint32 `json:"verified_insns,omitempty"`
}

// Run is one BPF_PROG_TEST_RUN of a captured program.
type Run struct {
	Ctx    Hex    `json:"ctx,omitempty"`
	Data   Hex    `json:"data,omitempty"`
	CtxOut Hex    `json:"ctx_out,omitempty"`
	Retval uint32 `json:"retval"`
}

// RecordRuns runs the loaded program once per input context and appends
// the results to c.Runs.
func (c *Capture) RecordRuns(l *Loaded, ctxs [][]byte) error {
	for _, ctx := range ctxs {
		res, err := l.TestRun(RunOptions{Ctx: ctx})
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		c.Runs = append(c.Runs, Run{Ctx: append(Hex(nil), ctx...), CtxOut: Hex(res.Ctx), Retval: res.Retval})
	}
	return nil
}

// Line is one entry of the BPF->x86 offset map.
type Line struct {
	Insn int `json:"insn"`
	Func int `json:"func"`
	Off  int `json:"off"`
	// Src is the index of the instruction in Source this one came from.
	Src int `json:"src"`
}

// x86 registers of BPF R0..R10 and the kernel's AX (r11) (reg2hex).
var bpfToX86 = [...]x86asm.Reg{
	x86asm.RAX, x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8,
	x86asm.RBX, x86asm.R13, x86asm.R14, x86asm.R15, x86asm.RBP, x86asm.R10,
}

// X86Reg returns the x86 register the JIT keeps BPF register r in.
func X86Reg(r ir.Register) x86asm.Reg {
	if int(r) < len(bpfToX86) {
		return bpfToX86[r]
	}
	return 0
}

// CaptureLoaded reads a loaded program back and derives the JIT input.
func CaptureLoaded(l *Loaded, note string) (*Capture, error) {
	info, err := ProgInfo(l.FD)
	if err != nil {
		return nil, err
	}
	if len(info.Jited) == 0 {
		return nil, fmt.Errorf("%s: the kernel reports no JIT image", l.Spec.Name)
	}
	c := &Capture{
		Name:          l.Spec.Name,
		Note:          note,
		Kernel:        kernelRelease(),
		ProgType:      l.Spec.Type.String(),
		ProgFlags:     l.Spec.Flags,
		Maps:          l.Spec.Maps,
		Xlated:        info.Xlated,
		Jited:         info.Jited,
		FuncLens:      info.Lens,
		UserVMStart:   Addr(l.UserVMStart),
		VerifiedInsns: info.VerifiedInsns,
	}
	if l.Spec.Type == Syscall {
		c.ProgFlags |= FlagSleepable
	}
	src := l.Spec.Program.Clone()
	if err := resolveKfuncs(l.Spec.Program, src.Insns); err != nil {
		return nil, err
	}
	c.Source = ir.Encode(src)
	for _, k := range info.Ksyms {
		c.Ksyms = append(c.Ksyms, Addr(k))
	}
	if len(c.Ksyms) != len(c.FuncLens) {
		return nil, fmt.Errorf("%s: %d ksyms but %d function lengths", c.Name, len(c.Ksyms), len(c.FuncLens))
	}
	cb, err := CallBase()
	if err != nil {
		return nil, err
	}
	c.CallBase = Addr(cb)
	if th, err := IndirectThunkRCX(); err == nil {
		c.IndirectThunkRCX = Addr(th)
	}
	for _, li := range info.Lines {
		f, off, ok := c.locate(li.Addr)
		if !ok {
			return nil, fmt.Errorf("%s: line info address %#x outside the image", c.Name, li.Addr)
		}
		c.Lines = append(c.Lines, Line{Insn: li.Insn, Func: f, Off: off, Src: li.Line - 1})
	}
	if err := c.derive(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return c, nil
}

// CaptureSpec loads spec, captures it and unloads it.
func CaptureSpec(spec *Spec, note string) (*Capture, error) {
	l, err := Load(spec)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return CaptureLoaded(l, note)
}

// Release is the running kernel's release (uname -r); captures record it.
func Release() string { return kernelRelease() }

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// locate maps an address to (function, offset).
func (c *Capture) locate(a uint64) (int, int, bool) {
	for f, k := range c.Ksyms {
		if a >= uint64(k) && a < uint64(k)+uint64(c.FuncLens[f]) {
			return f, int(a - uint64(k)), true
		}
	}
	return 0, 0, false
}

// FuncOffset returns where function f starts in Jited.
func (c *Capture) FuncOffset(f int) int {
	off := 0
	for _, n := range c.FuncLens[:f] {
		off += int(n)
	}
	return off
}

// FuncCode returns function f's machine code.
func (c *Capture) FuncCode(f int) []byte {
	o := c.FuncOffset(f)
	return c.Jited[o : o+int(c.FuncLens[f])]
}

// X86Insn is one decoded instruction of a function.
type X86Insn struct {
	Off  int // within the function
	Inst x86asm.Inst
	Code []byte
}

// Disassemble decodes code linearly (the JIT emits no data between
// instructions).
func Disassemble(code []byte) ([]X86Insn, error) {
	var out []X86Insn
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return out, fmt.Errorf("offset %#x: % x: %w", off, code[off:min(off+15, len(code))], err)
		}
		out = append(out, X86Insn{Off: off, Inst: in, Code: code[off : off+in.Len]})
		off += in.Len
	}
	return out, nil
}

// span is a run of xlated instructions [lo, hi) whose code is [xlo, xhi) in
// function f.
type span struct {
	lo, hi   int
	f        int
	xlo, xhi int
}

// spans cuts the program into line-info spans.
func (c *Capture) spans(n int) []span {
	var out []span
	for k, l := range c.Lines {
		s := span{lo: l.Insn, hi: n, f: l.Func, xlo: l.Off, xhi: int(c.FuncLens[l.Func])}
		if k+1 < len(c.Lines) {
			s.hi = c.Lines[k+1].Insn
			if c.Lines[k+1].Func == l.Func {
				s.xhi = c.Lines[k+1].Off
			}
		}
		out = append(out, s)
	}
	return out
}

// derive fills JITInput, ArenaInsns, StackDepths, Pushes, KernVMStart and
// ReturnThunk from the xlated program and the jited bytes.
func (c *Capture) derive() error {
	// The dump is not a valid program by itself (bpf-to-bpf calls carry
	// the callee's index in imm and the offset in off): read raw slots.
	insns, err := rawInsns(c.Xlated)
	if err != nil {
		return err
	}
	n := len(insns)
	dis := make([][]X86Insn, len(c.FuncLens))
	for f := range c.FuncLens {
		d, err := Disassemble(c.FuncCode(f))
		if err != nil {
			return fmt.Errorf("function %d: %w", f, err)
		}
		dis[f] = d
	}
	// Prologues: stack, pushes, arena base.
	c.StackDepths, c.Pushes = nil, nil
	for f := range dis {
		depth, pushes, kvm := prologue(dis[f])
		c.StackDepths = append(c.StackDepths, depth)
		c.Pushes = append(c.Pushes, pushes)
		if kvm != 0 {
			c.KernVMStart = Addr(kvm)
		}
	}
	c.ReturnThunk = 0
	if len(dis) > 0 {
		d := dis[0]
		for k := 0; k+1 < len(d); k++ {
			if d[k].Inst.Op == x86asm.LEAVE {
				if nx := d[k+1]; nx.Inst.Op == x86asm.JMP && nx.Inst.Len == 5 {
					c.ReturnThunk = Addr(uint64(c.Ksyms[0]) + uint64(nx.Off+5) + uint64(int64(nx.Inst.Args[0].(x86asm.Rel))))
				}
				break
			}
		}
	}
	inSpan := func(s span) []X86Insn { return insnsIn(dis[s.f], s.xlo, s.xhi) }
	spanOf := make([]int, n)
	for i := range spanOf {
		spanOf[i] = -1
	}
	sp := c.spans(n)
	for k, s := range sp {
		for i := s.lo; i < s.hi && i < n; i++ {
			spanOf[i] = k
		}
	}

	// Arena and PROBE_MEM truth: pair the span's BPF memory accesses with
	// its x86 memory operands, in order.
	c.ArenaInsns, c.ProbeMemInsns = nil, nil
	for _, s := range sp {
		var mem []int
		for i := s.lo; i < s.hi && i < n; i++ {
			if isMemAccess(insns[i]) {
				mem = append(mem, i)
			}
			if insns[i].IsLdImm64() {
				i++
			}
		}
		xs := inSpan(s)
		var xmem []X86Insn
		var probed []bool
		special := false
		for k, x := range xs {
			m, ok := memArg(x.Inst)
			if !ok {
				continue
			}
			// A PROBE_MEM load follows `cmp r11, r10; ja; xor; jmp`.
			pr := k >= 4 && xs[k-4].Inst.Op == x86asm.CMP && xs[k-4].Inst.Args[0] == x86asm.R11 && xs[k-4].Inst.Args[1] == x86asm.R10
			xmem = append(xmem, x)
			probed = append(probed, pr)
			if pr || m.Index == x86asm.R12 {
				special = true
			}
		}
		if !special {
			continue
		}
		if len(mem) != len(xmem) {
			return fmt.Errorf("instructions %d..%d: %d BPF memory accesses but %d x86 ones: cannot tell which are arena or PROBE_MEM accesses", s.lo, s.hi-1, len(mem), len(xmem))
		}
		for k, i := range mem {
			if m, _ := memArg(xmem[k].Inst); m.Index == x86asm.R12 {
				c.ArenaInsns = append(c.ArenaInsns, i)
			}
			if probed[k] && insns[i].Class() == ir.ClassLDX && insns[i].Mode() == ir.ModeMEM {
				c.ProbeMemInsns = append(c.ProbeMemInsns, i)
			}
		}
	}

	// JIT input.
	in := append([]ir.Instruction(nil), insns...)
	movabsUsed := map[int]bool{}
	pokes := 0
	for i := 0; i < n; i++ {
		ins := in[i]
		switch {
		case ins.IsLdImm64() && (ins.Src == ir.PseudoMapFD || ins.Src == ir.PseudoMapValue):
			v, err := c.findMovabs(dis, sp, spanOf[i], X86Reg(ins.Dst), movabsUsed)
			if err != nil {
				return &ir.Error{Index: i, Reason: "map load: " + err.Error()}
			}
			pair := ir.LdImm64(ins.Dst, v)
			in[i], in[i+1] = pair[0], pair[1]
		case ins.IsPseudoFunc():
			// Keep the function reference (it delimits the callee); the
			// dump's second imm is the callee's index, the JIT's the upper
			// half of the address, which the backend fills in.
			fn := int(in[i+1].Imm)
			if fn <= 0 || fn >= len(c.Ksyms) {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("function address load of function %d, but there are %d", fn, len(c.Ksyms))}
			}
			in[i+1].Imm = 0
		case ins.IsPseudoCall():
			in[i].Imm = int32(ins.Off)
			in[i].Off = 0
		case ins.IsHelperCall() && ins.Imm == ir.HelperTailCall:
			in[i].Op = ir.OpTailCall
			in[i].Imm = 0
			if !c.indirectTailCall(dis, sp, spanOf[i]) {
				pokes++
				in[i].Imm = int32(pokes)
			}
		}
		if ins.IsLdImm64() {
			i++
		}
	}
	for _, i := range c.ProbeMemInsns {
		in[i].Op = in[i].Op&^0xe0 | uint8(ir.ModeProbeMem)
	}
	// In a program with several functions the JIT runs before the
	// verifier clears the pseudo source of ld_imm64 (src_reg), so a map
	// value loaded by fd_array index (src 6) still names R6 there and the
	// function saves rbx. Restore that source from the loaded program.
	if len(c.FuncLens) > 1 {
		src, _ := rawInsns(c.Source)
		for _, l := range c.Lines {
			if l.Insn < n && in[l.Insn].IsLdImm64() && l.Src >= 0 && l.Src < len(src) &&
				src[l.Src].IsLdImm64() && src[l.Src].Src == ir.PseudoMapIdxValue {
				in[l.Insn].Src = ir.PseudoMapIdxValue
			}
		}
	}
	c.JITInput = ir.Encode(&ir.Program{Insns: in})
	return nil
}

// isMemAccess reports the loads/stores/atomics whose mode the dump may hide
// (MEM shown for PROBE_MEM32), or that are visibly arena accesses.
func isMemAccess(i ir.Instruction) bool {
	switch i.Class() {
	case ir.ClassLDX:
		switch i.Mode() {
		case ir.ModeMEM, ir.ModeMEMSX, ir.ModeProbeMem, ir.ModeProbeMemSX, ir.ModeProbeMem32, ir.ModeProbeMem32SX:
			return true
		}
		return false
	case ir.ClassST:
		return i.Mode() == ir.ModeMEM || i.Mode() == ir.ModeProbeMem32
	case ir.ClassSTX:
		return i.Mode() == ir.ModeMEM || i.Mode() == ir.ModeProbeMem32 || i.Mode() == ir.ModeATOMIC || i.Mode() == ir.ModeProbeAtomic
	}
	return false
}

func memArg(in x86asm.Inst) (x86asm.Mem, bool) {
	if in.Op == x86asm.LEA || in.Op == x86asm.NOP { // the prologue's nop5/nop3 decode with [rax...]
		return x86asm.Mem{}, false
	}
	for _, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok {
			return m, true
		}
	}
	return x86asm.Mem{}, false
}

// prologue reads `sub rsp, imm32`, the pushes after `mov rbp, rsp` and a
// `movabs r12, imm64`.
func prologue(d []X86Insn) (depth int, pushes string, kvm uint64) {
	var regs []string
	k := 0
	for k < len(d) && !(d[k].Inst.Op == x86asm.MOV && d[k].Inst.Args[0] == x86asm.RBP && d[k].Inst.Args[1] == x86asm.RSP) {
		k++
	}
	k++
	if k < len(d) && d[k].Inst.Op == x86asm.SUB && d[k].Inst.Args[0] == x86asm.RSP {
		if imm, ok := d[k].Inst.Args[1].(x86asm.Imm); ok {
			depth = int(imm)
		}
		k++
	}
	for ; k < len(d); k++ {
		in := d[k].Inst
		if in.Op == x86asm.PUSH {
			if r, ok := in.Args[0].(x86asm.Reg); ok {
				regs = append(regs, strings.ToLower(r.String()))
				continue
			}
		}
		// Tail-call counter block of a main program.
		if in.Op == x86asm.CMP || in.Op == x86asm.JA || in.Op == x86asm.JMP && in.Len == 2 ||
			in.Op == x86asm.MOV && in.Args[0] == x86asm.RAX && in.Args[1] == x86asm.RSP {
			continue
		}
		if in.Op == x86asm.MOV && in.Args[0] == x86asm.R12 && in.Len == 10 {
			kvm = uint64(in.Args[1].(x86asm.Imm))
		}
		break
	}
	return depth, strings.Join(regs, " "), kvm
}

// findMovabs returns the immediate of the movabs into reg within span k
// (or, without line info, the next unused movabs into reg in the image).
func (c *Capture) findMovabs(dis [][]X86Insn, sp []span, k int, reg x86asm.Reg, used map[int]bool) (uint64, error) {
	isMovabs := func(x X86Insn) bool {
		return x.Inst.Op == x86asm.MOV && x.Inst.Len == 10 && x.Inst.Args[0] == reg
	}
	if k >= 0 {
		s := sp[k]
		for _, x := range insnsIn(dis[s.f], s.xlo, s.xhi) {
			if isMovabs(x) {
				return uint64(x.Inst.Args[1].(x86asm.Imm)), nil
			}
		}
		return 0, fmt.Errorf("no movabs into %v in the instruction's code", reg)
	}
	for f := range dis {
		base := c.FuncOffset(f)
		for _, x := range dis[f] {
			if isMovabs(x) && !used[base+x.Off] {
				used[base+x.Off] = true
				return uint64(x.Inst.Args[1].(x86asm.Imm)), nil
			}
		}
	}
	return 0, fmt.Errorf("no movabs into %v left in the image", reg)
}

// indirectTailCall reports whether the tail call in span k jumps through
// the indirect thunk (or, without line info, whether any does).
func (c *Capture) indirectTailCall(dis [][]X86Insn, sp []span, k int) bool {
	isThunk := func(f int, x X86Insn) bool {
		if x.Inst.Op != x86asm.JMP || x.Inst.Len != 5 {
			return false
		}
		t := uint64(c.Ksyms[f]) + uint64(x.Off+5) + uint64(int64(x.Inst.Args[0].(x86asm.Rel)))
		return t == uint64(c.IndirectThunkRCX)
	}
	for f := range dis {
		for _, x := range dis[f] {
			if k >= 0 && (f != sp[k].f || x.Off < sp[k].xlo || x.Off >= sp[k].xhi) {
				continue
			}
			if isThunk(f, x) {
				return true
			}
		}
	}
	return false
}

// Program decodes the JIT input into an ir.Program (named after the
// capture) with the arena truth left out: the passes must infer it.
func (c *Capture) Program() (*ir.Program, error) {
	p, err := ir.DecodeWith(c.JITInput, ir.DecodeOptions{Xlated: true})
	if err != nil {
		return nil, fmt.Errorf("%s: JIT input: %w", c.Name, err)
	}
	p.Name = c.Name
	return p, nil
}

// ExecBase returns the function addresses as the backend takes them.
func (c *Capture) ExecBase() []uint64 {
	out := make([]uint64, len(c.Ksyms))
	for i, k := range c.Ksyms {
		out[i] = uint64(k)
	}
	return out
}

// Marshal returns the capture as indented JSON with a final newline.
func (c *Capture) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ReadCapture loads a capture written by Marshal.
func ReadCapture(path string) (*Capture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Capture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *Capture) check() error {
	if len(c.FuncLens) == 0 || len(c.FuncLens) != len(c.Ksyms) || len(c.StackDepths) != len(c.FuncLens) {
		return fmt.Errorf("inconsistent function tables: %d lens, %d ksyms, %d stack depths", len(c.FuncLens), len(c.Ksyms), len(c.StackDepths))
	}
	total := 0
	for _, n := range c.FuncLens {
		total += int(n)
	}
	if total != len(c.Jited) {
		return fmt.Errorf("function lengths add up to %d, jited has %d bytes", total, len(c.Jited))
	}
	if len(c.JITInput) != len(c.Xlated) || len(c.Xlated)%8 != 0 {
		return fmt.Errorf("xlated (%d bytes) and JIT input (%d bytes) differ in size", len(c.Xlated), len(c.JITInput))
	}
	if len(c.Pushes) != len(c.FuncLens) {
		return fmt.Errorf("%d push lists for %d functions", len(c.Pushes), len(c.FuncLens))
	}
	n := len(c.Xlated) / 8
	for _, l := range c.Lines {
		if l.Func < 0 || l.Func >= len(c.FuncLens) || l.Off < 0 || l.Off >= int(c.FuncLens[l.Func]) || l.Insn < 0 || l.Insn >= n {
			return fmt.Errorf("line info %+v outside the program", l)
		}
	}
	for _, list := range [][]int{c.ArenaInsns, c.ProbeMemInsns} {
		for _, i := range list {
			if i < 0 || i >= n {
				return fmt.Errorf("instruction index %d outside the program", i)
			}
		}
	}
	return nil
}

// ReadCaptures loads every *.json capture in dir, sorted by name.
func ReadCaptures(dir string) ([]*Capture, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*Capture
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		c, err := ReadCapture(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// rawInsns splits bytes into instruction slots without validation.
func rawInsns(b []byte) ([]ir.Instruction, error) {
	if len(b) == 0 || len(b)%ir.InsnSize != 0 {
		return nil, fmt.Errorf("xlated program of %d bytes", len(b))
	}
	out := make([]ir.Instruction, len(b)/ir.InsnSize)
	for i := range out {
		s := b[i*ir.InsnSize:]
		out[i] = ir.Instruction{
			Op:  s[0],
			Dst: ir.Register(s[1] & 0xf),
			Src: ir.Register(s[1] >> 4),
			Off: int16(binary.LittleEndian.Uint16(s[2:])),
			Imm: int32(binary.LittleEndian.Uint32(s[4:])),
		}
	}
	if last := out[len(out)-1]; last.IsLdImm64() {
		return nil, &ir.Error{Index: len(out) - 1, Reason: "ld_imm64 without its second half"}
	}
	return out, nil
}

// SourceProgram decodes the capture's source program (as it was loaded;
// map references by fd_array index, kfunc ids of the capturing kernel).
func SourceProgram(c *Capture) (*ir.Program, error) {
	insns, err := rawInsns(c.Source)
	if err != nil {
		return nil, err
	}
	return ir.NewProgram(c.Name, insns), nil
}

// insnsIn returns the instructions of d (sorted by offset) that start in
// [lo, hi).
func insnsIn(d []X86Insn, lo, hi int) []X86Insn {
	a := sort.Search(len(d), func(i int) bool { return d[i].Off >= lo })
	b := sort.Search(len(d), func(i int) bool { return d[i].Off >= hi })
	return d[a:b]
}
