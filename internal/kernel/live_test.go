package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/ir"
)

func needKernel(t *testing.T) {
	t.Helper()
	if ok, why := Available(); !ok {
		t.Skip("live kernel: " + why)
	}
}

func insn(op uint8, dst, src ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: op, Dst: dst, Src: src, Off: off, Imm: imm}
}

func TestLiveLoadAndInfo(t *testing.T) {
	needKernel(t)
	p := ir.NewProgram("live", []ir.Instruction{
		insn(0x79, ir.R2, ir.R1, 0, 0), // r2 = *(u64 *)(r1 + 0)
		insn(0xb7, ir.R0, 0, 0, 100),   // r0 = 100
		insn(0x3f, ir.R0, ir.R2, 0, 0), // r0 /= r2  (the verifier adds a zero guard)
		insn(0x7b, ir.R1, ir.R0, 8, 0), // *(u64 *)(r1 + 8) = r0
		insn(0x95, 0, 0, 0, 0),
	})
	l, err := Load(&Spec{Name: "live", Type: Syscall, Program: p})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := ProgInfo(l.FD)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID == 0 || len(info.Jited) == 0 || len(info.Lens) != 1 || len(info.Ksyms) != 1 || int(info.Lens[0]) != len(info.Jited) {
		t.Fatalf("info: id %d, %d jited bytes, lens %v, ksyms %v", info.ID, len(info.Jited), info.Lens, info.Ksyms)
	}
	// The div guard adds three instructions before the division.
	if len(info.Xlated) != 8*8 {
		t.Errorf("xlated has %d instructions, want 8", len(info.Xlated)/8)
	}
	// One line-info record per source instruction, shifted past the guard.
	var insns []int
	for _, l := range info.Lines {
		insns = append(insns, l.Insn)
	}
	if want := []int{0, 1, 2, 6, 7}; !equalInts(insns, want) {
		t.Errorf("line info instructions %v, want %v", insns, want)
	}
	if info.Lines[0].Addr != info.Ksyms[0] {
		t.Errorf("first line at %#x, function at %#x", info.Lines[0].Addr, info.Ksyms[0])
	}
	// Test run: 100 / ctx[0] written to ctx[1].
	ctx := make([]byte, 16)
	binary.LittleEndian.PutUint64(ctx, 7)
	res, err := l.TestRun(RunOptions{Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(res.Ctx[8:]); got != 14 || res.Retval != 14 {
		t.Errorf("100/7: ctx %d, retval %d; want 14", got, res.Retval)
	}
	binary.LittleEndian.PutUint64(ctx, 0)
	if res, err = l.TestRun(RunOptions{Ctx: ctx}); err != nil || res.Retval != 0 {
		t.Errorf("100/0: %v %v, want 0", res, err)
	}
}

func TestLiveSocketFilterRun(t *testing.T) {
	needKernel(t)
	// r0 = skb->len
	p := ir.NewProgram("len", []ir.Instruction{insn(0x61, ir.R0, ir.R1, 0, 0), insn(0x95, 0, 0, 0, 0)})
	l, err := Load(&Spec{Name: "len", Type: SocketFilter, Program: p, NoLineInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.TestRun(RunOptions{Data: make([]byte, 64), Repeat: 10})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel takes the Ethernet header off before the filter runs.
	if res.Retval != 64-14 {
		t.Errorf("retval %d, want 50", res.Retval)
	}
}

func TestLiveRejectedProgram(t *testing.T) {
	needKernel(t)
	// r0 is read before it is written.
	p := ir.NewProgram("bad", []ir.Instruction{insn(0x95, 0, 0, 0, 0)})
	_, err := Load(&Spec{Name: "bad", Type: Syscall, Program: p})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a LoadError", err)
	}
	if !strings.Contains(le.Log, "R0 !read_ok") || !strings.Contains(err.Error(), "R0 !read_ok") {
		t.Errorf("verifier log does not explain: %q", le.Log)
	}
	if _, err := Load(&Spec{Name: "empty", Type: Syscall, Program: ir.NewProgram("e", nil)}); err == nil {
		t.Error("empty program accepted")
	}
}

func TestLiveKallsyms(t *testing.T) {
	needKernel(t)
	cb, err := CallBase()
	if err != nil || cb < 0xffff800000000000 {
		t.Fatalf("call base %#x, %v", cb, err)
	}
	b, _ := os.ReadFile("/proc/kallsyms")
	if !bytes.Contains(b, []byte(strings.TrimPrefix(Addr(cb).String(), "0x")+" T __bpf_call_base")) {
		t.Errorf("__bpf_call_base %#x not in /proc/kallsyms", cb)
	}
	if _, err := Kallsyms("no_such_symbol_bpfc"); err == nil {
		t.Error("unknown symbol found")
	}
}

// TestLiveZextOracle reproduces the reference's BPF_F_TEST_RND_HI32 example:
// random upper halves after `w2 = 7` and `w2 += w2`, none after `w1 = 5`
// (read as 64 bits) nor `w0 += w2` (returned).
func TestLiveZextOracle(t *testing.T) {
	needKernel(t)
	p := ir.NewProgram("zext", []ir.Instruction{
		insn(0xb4, ir.R1, 0, 0, 5),     // w1 = 5
		insn(0xb4, ir.R2, 0, 0, 7),     // w2 = 7
		insn(0x0c, ir.R2, ir.R2, 0, 0), // w2 += w2
		insn(0xbf, ir.R0, ir.R1, 0, 0), // r0 = r1
		insn(0x0c, ir.R0, ir.R2, 0, 0), // w0 += w2
		insn(0x95, 0, 0, 0, 0),
	})
	c, err := CaptureSpec(&Spec{Name: "zext", Type: Syscall, Flags: FlagTestRndHi32, Program: p}, "")
	if err != nil {
		t.Fatal(err)
	}
	xl, _ := rawInsns(c.Xlated)
	// Each random patch ends with `rX |= r11`.
	var defs []int
	for _, x := range xl {
		if x.Op == 0x4f && x.Src == ir.RAX {
			defs = append(defs, int(x.Dst))
		}
	}
	if !equalInts(defs, []int{2, 2}) {
		t.Errorf("random upper halves written for registers %v, want [2 2]\n% x", defs, c.Xlated)
	}
}

func TestLiveArenaCapture(t *testing.T) {
	needKernel(t)
	const user = 0x100000000000
	p := ir.NewProgram("arena", []ir.Instruction{
		{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapIdxValue, Imm: 0}, {Imm: 0x1000},
		insn(0xbf, ir.R1, ir.R1, ir.OffAddrSpaceCast, ir.CastToKernel), // r1 = cast_kern(r1)
		insn(0x7a, ir.R1, 0, 8, 42),                                    // *(u64 *)(r1 + 8) = 42
		insn(0x79, ir.R0, ir.R1, 16, 0),                                // r0 = *(u64 *)(r1 + 16)
		insn(0x95, 0, 0, 0, 0),
	})
	spec := &Spec{Name: "arena", Type: Syscall, Program: p, Maps: []MapDef{{Type: MapArena, MaxEntries: 4, Extra: user}}}
	l, err := Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.UserVMStart != user || len(l.ArenaMemory()) != 4*4096 {
		t.Fatalf("arena at %#x, %d bytes", l.UserVMStart, len(l.ArenaMemory()))
	}
	mem := l.ArenaMemory()
	binary.LittleEndian.PutUint64(mem[0x1010:], 0x1122334455667788) // allocates the page
	c, err := CaptureLoaded(l, "")
	if err != nil {
		t.Fatal(err)
	}
	if !equalInts(c.ArenaInsns, []int{3, 4}) || c.KernVMStart == 0 || c.UserVMStart != user {
		t.Errorf("arena insns %v, kern_vm_start %v, user %v", c.ArenaInsns, c.KernVMStart, c.UserVMStart)
	}
	res, err := l.TestRun(RunOptions{Ctx: make([]byte, 8)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Retval != 0x55667788 || binary.LittleEndian.Uint64(mem[0x1008:]) != 42 {
		t.Errorf("retval %#x, arena word %d", res.Retval, binary.LittleEndian.Uint64(mem[0x1008:]))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLiveExistingMapFD(t *testing.T) {
	needKernel(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Put(uint32(0), uint64(0x1234)); err != nil {
		t.Fatal(err)
	}
	// r0 = *(u64 *)(&map[1].value[0]) where map 1 is the caller's fd.
	p := ir.NewProgram("fdarr", []ir.Instruction{
		{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapIdxValue, Imm: 1}, {Imm: 0},
		insn(0x79, ir.R0, ir.R1, 0, 0),
		insn(0x95, 0, 0, 0, 0),
	})
	l, err := Load(&Spec{Name: "fdarr", Type: Syscall, Program: p, Maps: []MapDef{{Type: MapArray, KeySize: 4, ValueSize: 8, MaxEntries: 1}}, MapFDs: []int{m.FD()}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.TestRun(RunOptions{Ctx: make([]byte, 8)})
	if err != nil || res.Retval != 0x1234 {
		t.Errorf("retval %#x, %v; want 0x1234", res.Retval, err)
	}
}
