package amd64

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/ir"
)

func compileT(t *testing.T, p *ir.Program, tg Target) *Image {
	t.Helper()
	im, err := Compile(p, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestJumpBounds: the short forms are used for displacements -128..+123
// only (is_imm8_jmp_offset), the near forms beyond.
func TestJumpBounds(t *testing.T) {
	for _, c := range []struct {
		n     int // bytes of code between the jump and its target
		short bool
	}{{120, true}, {123, true}, {124, false}, {125, false}, {200, false}} {
		// Forward: r1 == 0 ? skip n bytes.
		body := fill(c.n)
		p := prog("fwd", jk(ir.ClassJMP, ir.JumpJEQ, 1, 0, int16(len(body))), body, exit())
		im := compileT(t, p, Linux618())
		f := im.Funcs[0]
		jlen := f.Addrs[1] - f.Addrs[0] - 3 // minus `test rdi, rdi`
		if want := map[bool]int32{true: 2, false: 6}[c.short]; jlen != want {
			t.Errorf("forward jcc over %d bytes: %d-byte jump, want %d", c.n, jlen, want)
		}
		in, err := x86asm.Decode(f.Code[f.Addrs[0]+3:], 64)
		if err != nil || int32(in.Len) != jlen {
			t.Errorf("forward jcc over %d bytes does not decode to its length: %v %v", c.n, in, err)
		}
		if rel := int(in.Args[0].(x86asm.Rel)); rel != c.n {
			t.Errorf("forward jcc over %d bytes: displacement %d", c.n, rel)
		}
		// Forward ja.
		p = prog("ja", ja(int16(len(body))), body, exit())
		f = compileT(t, p, Linux618()).Funcs[0]
		if want := map[bool]int32{true: 2, false: 5}[c.short]; f.Addrs[1]-f.Addrs[0] != want {
			t.Errorf("forward ja over %d bytes: %d bytes, want %d", c.n, f.Addrs[1]-f.Addrs[0], want)
		}
	}
	// Backward: the displacement is computed from the jump's end in the
	// previous pass, where it was still a 6-byte jcc (pass 0's estimate
	// makes every backward jump near first), so a backward jcc becomes short
	// only if the near form's displacement -(n+3+6) fits: n <= 119, even
	// though the short form's -(n+3+2) would fit up to n = 123.
	for _, c := range []struct {
		n     int
		short bool
	}{{100, true}, {119, true}, {120, false}, {122, false}, {130, false}} {
		body := fill(c.n) // loop body; the jcc (3+2 bytes) adds to the distance
		p := prog("back", body, jk(ir.ClassJMP, ir.JumpJNE, 1, 0, int16(-len(body)-1)), exit())
		f := compileT(t, p, Linux618()).Funcs[0]
		j := len(body)
		size := f.Addrs[j+1] - f.Addrs[j]
		dist := -(int(f.Addrs[j+1]) - int(f.Addrs[0]))
		if short := size == 5; short != c.short {
			t.Errorf("backward jcc over %d bytes: size %d (displacement %d), short=%v want %v", c.n, size, dist, short, c.short)
		}
		if c.short && dist < -128 {
			t.Errorf("short backward jump with displacement %d", dist)
		}
	}
}

// TestLayoutPasses: the chains need k+3 passes; with padding switched off
// a long chain does not converge in 20 passes and is an error.
func TestLayoutPasses(t *testing.T) {
	for _, k := range []int{1, 3, 6, 10} {
		im := compileT(t, chain("c", k), Linux618())
		if im.Passes != k+3 {
			t.Errorf("chain of %d: %d passes, want %d", k, im.Passes, k+3)
		}
	}
	// With padding: a chain of 16 stops shrinking at pass 15.
	im := compileT(t, chain("c", 16), Linux618())
	if im.Passes != 17 || !bytes.Contains(im.Code(), nops[4]) {
		t.Errorf("padded chain: %d passes (want 17), 4-byte NOP present: %v", im.Passes, bytes.Contains(im.Code(), nops[4]))
	}
	old := paddingPasses
	paddingPasses = 1000
	defer func() { paddingPasses = old }()
	_, err := Compile(chain("c", 25), Linux618(), nil)
	var ie *ir.Error
	if err == nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), "did not converge") {
		t.Fatalf("non-converging layout: got %v", err)
	}
}

// TestYieldCheck: the vm's budget check precedes every backward jump,
// is counted by the layout, and calls the yield stub.
func TestYieldCheck(t *testing.T) {
	tg := Host()
	tg.YieldCheck = true
	tg.YieldAddr = 0x7f0000100000
	body := fill(20)
	p := prog("loop", mov64(1, 10), body, a64k(ir.ALUSub, 1, 1), jk(ir.ClassJMP, ir.JumpJNE, 1, 0, int16(-len(body)-2)),
		jk(ir.ClassJMP, ir.JumpJEQ, 1, 0, 0), ja(-1), exit())
	exec := uint64(0x7f0000200000)
	im, err := Compile(p, tg, []uint64{exec})
	if err != nil {
		t.Fatal(err)
	}
	f := im.Funcs[0]
	check := func(j int, want string) {
		t.Helper()
		code := f.Code[f.Addrs[j]:f.Addrs[j+1]]
		if got := disasm(t, code, exec+uint64(f.Addrs[j])); !strings.HasPrefix(got, want) {
			t.Errorf("insn %d: %q, want prefix %q", j, got, want)
		}
	}
	j := 1 + len(body) + 1
	yield := "mov r11, rsp; and r11, -0x10000; sub qword ptr [r11], 0x1; jnz "
	check(j, yield)
	code := f.Code[f.Addrs[j]:f.Addrs[j+1]]
	in, _ := x86asm.Decode(code[16:], 64)
	if in.Op != x86asm.CALL || exec+uint64(f.Addrs[j])+16+5+uint64(int64(in.Args[0].(x86asm.Rel))) != tg.YieldAddr {
		t.Errorf("the check does not call the yield stub: %v", in)
	}
	check(j+2, yield) // ja -1: backward (self)
	// The forward jcc gets no check.
	if c := f.Code[f.Addrs[j+1]:f.Addrs[j+2]]; bytes.Contains(c, []byte{0x49, 0x89, 0xe3}) {
		t.Errorf("forward jump has a budget check: % x", c)
	}
	// Kernel mode: never.
	k := compileT(t, p, Linux618())
	if bytes.Contains(k.Code(), []byte{0x49, 0x81, 0xe3, 0x00, 0x00, 0xff, 0xff}) {
		t.Error("kernel target emitted a budget check")
	}
}

// TestExtable: arena and PROBE_MEM accesses get entries with the kernel's
// fields; the table is sorted, lookups find them and the fixup rule
// clears load destinations only.
func TestExtable(t *testing.T) {
	tg := Linux618()
	tg.KernVMStart = 0xffffc90000000000
	probe := func(cls ir.Class, sz ir.Size, mode ir.Mode, dst, src ir.Register, off int16) ir.Instruction {
		return ir.Instruction{Op: uint8(cls) | uint8(sz) | uint8(mode), Dst: dst, Src: src, Off: off}
	}
	p := prog("ex",
		probe(ir.ClassLDX, ir.SizeDW, ir.ModeProbeMem32, 0, 1, 8), // load: clears rax, arena reg rdi
		probe(ir.ClassSTX, ir.SizeW, ir.ModeProbeMem32, 7, 2, -4), // store: dont clear, arena reg r13
		probe(ir.ClassLDX, ir.SizeB, ir.ModeProbeMem, 3, 1, 16),   // BTF load: clears rdx, not arena
		ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeAtomic), Dst: 1, Src: 2, Off: 0, Imm: atomicAdd},
		probe(ir.ClassLDX, ir.SizeH, ir.ModeProbeMem32SX, 9, 7, 100), // sign-extending arena load
		exit())
	p.UsesArena = true
	exec := uint64(0xffffffffc0001000)
	im, err := Compile(p, tg, []uint64{exec})
	if err != nil {
		t.Fatal(err)
	}
	f := im.Funcs[0]
	if len(f.Extable) != 5 {
		t.Fatalf("%d extable entries, want 5", len(f.Extable))
	}
	tab := f.Table()
	if !tab.Sorted() {
		t.Error("extable not sorted")
	}
	want := []struct {
		clear    uint8
		arena    bool
		arenaReg uint8
		off      int16
	}{
		{extable.PtRegsOffset(0), true, extable.PtRegsOffset(1), 8},
		{extable.DontClear, true, extable.PtRegsOffset(7), -4},
		{extable.PtRegsOffset(3), false, 0, 0},
		{extable.DontClear, true, extable.PtRegsOffset(1), 0},
		{extable.PtRegsOffset(9), true, extable.PtRegsOffset(7), 100},
	}
	for q, e := range f.Extable {
		w := want[q]
		if e.ClearReg() != w.clear || e.IsArena() != w.arena || e.Type() != extable.TypeBPF || (w.arena && (e.ArenaReg() != w.arenaReg || e.Off() != w.off)) {
			t.Errorf("entry %d: %v", q, e)
		}
		addr := tab.InsnAddr(q)
		pc := int(addr - exec)
		in, err := x86asm.Decode(f.Code[pc:], 64)
		if err != nil || in.Len != e.InsnLen() {
			t.Errorf("entry %d: instruction at %#x decodes to %v (len %d), entry says %d", q, pc, err, in.Len, e.InsnLen())
		}
		hasMem := false
		for _, a := range in.Args {
			if _, ok := a.(x86asm.Mem); ok {
				hasMem = true
			}
		}
		if !hasMem {
			t.Errorf("entry %d points at %v, not a memory access", q, in)
		}
		if got, ok := tab.Lookup(addr); !ok || got != e {
			t.Errorf("entry %d: lookup failed", q)
		}
		// The encoded table in the buffer after the code matches.
		var regs extable.Regs
		for i := range regs {
			regs[i] = 0xdead
		}
		resume := extable.Apply(e, addr, &regs)
		if resume != addr+uint64(in.Len) {
			t.Errorf("entry %d: resumes at %#x", q, resume)
		}
		cleared := regs[w.clear/8] == 0
		if cleared != (w.clear != extable.DontClear) {
			t.Errorf("entry %d: cleared=%v", q, cleared)
		}
	}
	// The PROBE_MEM load is guarded by the address check.
	j := 2
	d := disasm(t, f.Code[f.Addrs[j]:f.Addrs[j+1]], 0)
	if !strings.HasPrefix(d, "mov r10, -0xa00000; mov r11, rdi; add r11, 0x10; sub r11, r10; mov r10, 0x800000a00000; cmp r11, r10; jnbe ") {
		t.Errorf("PROBE_MEM sequence: %s", d)
	}
}

// TestExtableBuffer: the table is written after the code at roundup(len,
// 4), with int3 padding.
func TestExtableBuffer(t *testing.T) {
	p := prog("ex", ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(ir.SizeB) | uint8(ir.ModeProbeMem32), Dst: 0, Src: 1}, exit())
	p.UsesArena = true
	l, err := NewLayout(p, Linux618())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, l.Size(0))
	f, err := l.Write(0, buf, 0x1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	off := roundUp4(len(f.Code))
	for _, b := range buf[len(f.Code):off] {
		if b != 0xcc {
			t.Errorf("padding byte %#x", b)
		}
	}
	if got := extable.Get(buf[off:]); got != f.Extable[0] {
		t.Errorf("encoded entry %v, want %v", got, f.Extable[0])
	}
	if _, err := l.Write(0, buf[:l.Size(0)-1], 0x1000, nil); err == nil {
		t.Error("short buffer accepted")
	}
}

// TestErrors: instructions the JIT rejects give an error naming them.
func TestErrors(t *testing.T) {
	cases := []struct {
		name  string
		insns []ir.Instruction
		at    int
		msg   string
	}{
		{"may_goto", []ir.Instruction{{Op: ir.OpMayGoto}, exit()}, 0, "may_goto"},
		{"ld_abs", []ir.Instruction{{Op: 0x20}, exit()}, 0, "legacy packet"},
		{"callx", []ir.Instruction{{Op: ir.OpCallX, Dst: 1}, exit()}, 0, "unknown opcode"},
		{"gotox", []ir.Instruction{{Op: ir.OpJA | 0x08, Dst: 1}, exit()}, 0, "gotox"},
		{"register 12", []ir.Instruction{{Op: 0xb7, Dst: 12}, exit()}, 0, "invalid register"},
		{"atomic byte add", []ir.Instruction{atomic(ir.SizeB, 10, 1, -8, atomicAdd), exit()}, 0, "atomics are not supported"},
		{"arena fetch and", []ir.Instruction{{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeAtomic), Dst: 1, Src: 2, Imm: atomicAnd | atomicFetch}, exit()}, 0, "not supported on arena"},
		{"bad atomic", []ir.Instruction{atomic(ir.SizeDW, 10, 1, -8, 0x33), exit()}, 0, "unknown atomic"},
		{"end64 be", []ir.Instruction{alu(ir.ClassALU64, ir.ALUEnd, ir.EndToBE, 1, 0, 0, 16), exit()}, 0, "unknown opcode"},
		{"end width", []ir.Instruction{alu(ir.ClassALU, ir.ALUEnd, ir.EndToBE, 1, 0, 0, 8), exit()}, 0, "byte swap width"},
		{"div off", []ir.Instruction{alu(ir.ClassALU64, ir.ALUDiv, ir.SourceK, 1, 0, 2, 3), exit()}, 0, "offset"},
		{"jump out", []ir.Instruction{mov64(0, 0), jk(ir.ClassJMP, ir.JumpJEQ, 1, 0, 5), exit()}, 1, "outside"},
		{"ld_imm64 at end", []ir.Instruction{mov64(0, 0), exit(), {Op: ir.OpLdImm64}}, 2, ""},
		{"jump into ld_imm64", []ir.Instruction{ja(1), {Op: ir.OpLdImm64}, {}, exit()}, 0, "middle of ld_imm64"},
		{"probe mem into r10", []ir.Instruction{{Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeMem32), Dst: 11, Src: 1}, exit()}, 0, "exception-table"},
		{"cast to kernel", []ir.Instruction{castKern(1), exit()}, 0, "lowered"},
		{"call into a function", []ir.Instruction{callLocal(0), exit()}, 0, "not the start of a function"},
		{"call source", []ir.Instruction{{Op: ir.OpCall, Src: 3}, exit()}, 0, "call source"},
	}
	for _, c := range cases {
		p := ir.NewProgram(c.name, c.insns)
		p.Funcs = []ir.Func{{Start: 0, End: len(c.insns)}}
		_, err := Compile(p, Linux618(), nil)
		var ie *ir.Error
		if err == nil || !errors.As(err, &ie) {
			t.Errorf("%s: got %v, want an ir.Error", c.name, err)
			continue
		}
		if ie.Index != c.at || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v (index %d), want index %d and %q", c.name, err, ie.Index, c.at, c.msg)
		}
	}
}

// TestRandomNoPanic: random instruction words never panic the backend.
func TestRandomNoPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ops := []uint8{0x07, 0x0f, 0x17, 0x1f, 0xb7, 0xbf, 0xb4, 0xbc, 0x61, 0x79, 0x7b, 0x62, 0x72, 0xdb, 0xc3, 0x15, 0x1d, 0x05, 0x06, 0x85, 0x95, 0x18, 0x37, 0x3f, 0x6f, 0x7f, 0xcf, 0xdc, 0xd4, 0xd7, 0x87, 0x39, 0xa5, 0xe5, 0xf5, 0xdf, 0x8c, 0xe0, 0xbb}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for k := 0; k < n; k++ {
		insns := make([]ir.Instruction, 2+rng.Intn(30))
		for i := range insns {
			insns[i] = ir.Instruction{Op: ops[rng.Intn(len(ops))], Dst: ir.Register(rng.Intn(12)), Src: ir.Register(rng.Intn(12)),
				Off: int16(rng.Intn(9) - 4), Imm: int32(rng.Intn(9) - 4)}
			if rng.Intn(5) == 0 {
				insns[i].Op = uint8(rng.Intn(256))
				insns[i].Imm = rng.Int31()
			}
		}
		insns[len(insns)-1] = exit()
		p := ir.NewProgram("r", insns)
		if rng.Intn(2) == 0 {
			p.Funcs = []ir.Func{{Start: 0, End: len(insns), StackDepth: 64}}
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic on % v: %v", insns, r)
				}
			}()
			_, _ = Compile(p, Linux618(), nil)
		}()
	}
}

func TestTargets(t *testing.T) {
	for _, n := range TargetNames() {
		tg, err := TargetByName(n)
		if err != nil || tg.Name != n {
			t.Errorf("%s: %v %q", n, err, tg.Name)
		}
	}
	if _, err := TargetByName("vax"); err == nil {
		t.Error("unknown target accepted")
	}
	k := Linux618()
	if !k.BMI2 || k.IndirectThunkRCX == 0 || k.ReturnThunk == 0 || k.CallBase == 0 {
		t.Errorf("Linux618 preset incomplete: %+v", k)
	}
	if h := Host(); h.IndirectThunkRCX != 0 || h.ReturnThunk != 0 || h.YieldCheck {
		t.Errorf("Host preset: %+v", h)
	}
}
