package interp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

func assemble(t testing.TB, text string) *ir.Program {
	t.Helper()
	p, err := asm.Assemble(text)
	if err != nil {
		t.Fatalf("assemble: %v\n%s", err, text)
	}
	return p
}

func prepare(t testing.TB, p *ir.Program, opts Options) *Program {
	t.Helper()
	q, err := Prepare(p, opts)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return q
}

// run assembles and runs text with the conformance helpers.
func run(t testing.TB, text string, mem []byte) (Result, error) {
	t.Helper()
	q := prepare(t, assemble(t, text), Options{Helpers: helpers.Conformance()})
	return q.Run(RunOptions{Mem: mem, Budget: 10_000_000})
}

func TestALUSemantics(t *testing.T) {
	tests := []struct {
		name string
		text string
		want uint64
	}{
		{"div64 by zero reg", "mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", 0},
		{"div64 by zero imm", "mov %r0, 7\ndiv %r0, 0\nexit", 0},
		{"mod64 by zero keeps dividend", "lddw %r0, 0x123456789\nmov %r1, 0\nmod %r0, %r1\nexit", 0x123456789},
		{"div32 by zero", "lddw %r0, 0x1ffffffff\nmov %r1, 0\ndiv32 %r0, %r1\nexit", 0},
		{"mod32 by zero zero-extends", "lddw %r0, 0x1ffffffff\nmov %r1, 0\nmod32 %r0, %r1\nexit", 0xffffffff},
		{"mod32 imm zero", "lddw %r0, 0x5fffffff7\nmod32 %r0, 0\nexit", 0xfffffff7},
		{"sdiv64 INT_MIN/-1", "lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", 0x8000000000000000},
		{"smod64 INT_MIN/-1", "lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit", 0},
		{"sdiv32 INT_MIN/-1", "mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit", 0x80000000},
		{"smod32 INT_MIN/-1", "mov32 %r0, 0x80000000\nsmod32 %r0, -1\nexit", 0},
		{"sdiv64 by zero", "mov %r0, -5\nsdiv %r0, 0\nexit", 0},
		{"smod64 by zero", "mov %r0, -5\nmov %r1, 0\nsmod %r0, %r1\nexit", math.MaxUint64 - 4},
		{"smod32 by zero zero-extends", "mov %r0, -5\nmov %r1, 0\nsmod32 %r0, %r1\nexit", 0xfffffffb},
		{"sdiv truncates toward zero", "mov %r0, -7\nsdiv %r0, 2\nexit", math.MaxUint64 - 2},
		{"smod sign of dividend", "mov %r0, -7\nsmod %r0, 2\nexit", math.MaxUint64},
		{"udiv imm is sign-extended", "mov %r0, -1\ndiv %r0, -1\nexit", 1},
		{"udiv32 imm unsigned", "mov32 %r0, -1\ndiv32 %r0, -1\nexit", 1},
		{"lsh masked 64", "mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit", 2},
		{"rsh masked 32", "mov32 %r0, 0x80000000\nmov %r1, 33\nrsh32 %r0, %r1\nexit", 0x40000000},
		{"arsh32 zero-extends", "mov32 %r0, 0x80000000\narsh32 %r0, 4\nexit", 0xf8000000},
		{"arsh64", "lddw %r0, 0x8000000000000000\narsh %r0, 63\nexit", math.MaxUint64},
		{"add32 zero-extends", "lddw %r0, 0xffffffffffffffff\nadd32 %r0, 1\nexit", 0},
		{"mov32 zero-extends", "lddw %r1, 0xdeadbeefcafebabe\nmov32 %r0, %r1\nexit", 0xcafebabe},
		{"neg32", "mov %r0, 1\nneg32 %r0\nexit", 0xffffffff},
		{"neg64", "mov %r0, 1\nneg %r0\nexit", math.MaxUint64},
		{"movsx8 64", "mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", 0xffffffffffffff80},
		{"movsx16 32", "mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit", 0xffff8000},
		{"movsx32 64", "mov32 %r1, 0x80000000\nmovsx3264 %r0, %r1\nexit", 0xffffffff80000000},
		{"be16", "mov %r0, 0x11223344\nbe16 %r0\nexit", 0x4433},
		{"be64", "lddw %r0, 0x0102030405060708\nbe64 %r0\nexit", 0x0807060504030201},
		{"le32 truncates", "lddw %r0, 0x0102030405060708\nle32 %r0\nexit", 0x05060708},
		{"bswap32", "lddw %r0, 0x0102030405060708\nbswap32 %r0\nexit", 0x08070605},
		{"jset", "mov %r0, 0\nmov %r1, 6\njset %r1, 4, +1\nexit\nmov %r0, 1\nexit", 1},
		{"jslt32 on low half", "mov %r0, 0\nlddw %r1, 0x00000000ffffffff\njslt32 %r1, 0, +1\nexit\nmov %r0, 1\nexit", 1},
		{"jslt64 not taken", "mov %r0, 0\nlddw %r1, 0x00000000ffffffff\njslt %r1, 0, +1\nexit\nmov %r0, 1\nexit", 0},
		{"jgt imm sign-extended", "mov %r0, 0\nmov %r1, -1\njgt %r1, -2, +1\nexit\nmov %r0, 1\nexit", 1},
		{"jeq32 imm", "mov %r0, 0\nlddw %r1, 0x1ffffffff\njeq32 %r1, -1, +1\nexit\nmov %r0, 1\nexit", 1},
		{"gotol", "mov %r0, 1\nja32 +1\nmov %r0, 2\nexit", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, tc.text, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.R0 != tc.want {
				t.Fatalf("r0 = %#x, want %#x", res.R0, tc.want)
			}
		})
	}
}

func TestMemoryAndErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		mem     int
		want    uint64
		errText string // error must contain this ("" = no error)
	}{
		{"stack round trip", "mov %r1, 0x1234\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", 0, 0x1234, ""},
		{"bottom of the frame", "stb [%r10-512], 5\nldxb %r0, [%r10-512]\nexit", 0, 5, ""},
		{"below the frame", "ldxb %r0, [%r10-513]\nexit", 0, 0, "instruction 0: invalid load of 1 bytes"},
		{"below the frame, wide", "ldxdw %r0, [%r10-516]\nexit", 0, 0, "instruction 0: invalid load of 8 bytes"},
		{"callee frame", "call local f\nexit\nf:\nstb [%r10-512], 7\nldxb %r0, [%r10-512]\nexit", 0, 7, ""},
		{"below callee frame", "call local f\nexit\nf:\nstb [%r10-513], 7\nexit", 0, 0, "instruction 2: invalid store of 1 bytes"},
		{"callee frame gone after return", "call local f\nmov %r1, %r10\nadd %r1, -600\nldxb %r0, [%r1+0]\nexit\nf:\nexit", 0, 0, "instruction 3: invalid load"},
		{"above the stack", "ldxdw %r0, [%r10-4]\nexit", 0, 0, "instruction 0: invalid load of 8 bytes"},
		{"mem in bounds", "ldxw %r0, [%r1+4]\nexit", 8, 0, ""},
		{"mem out of bounds", "mov %r0, 0\nldxw %r0, [%r1+6]\nexit", 8, 0, "instruction 1: invalid load of 4 bytes"},
		{"null load", "mov %r1, 0\nldxdw %r0, [%r1]\nexit", 0, 0, "instruction 1: invalid load"},
		{"wild store", "lddw %r1, 0x1000\nstxdw [%r1], %r1\nexit", 0, 0, "instruction 2: invalid store of 8 bytes at 0x1000"},
		{"wild store imm", "mov %r1, 16\nstw [%r1+0], 1\nexit", 0, 0, "instruction 1: invalid store of 4 bytes at 0x10"},
		{"wild atomic", "mov %r1, 16\nlock add [%r1+0], %r1\nexit", 0, 0, "instruction 1: invalid atomic"},
		{"misaligned atomic", "mov %r1, 1\nstxdw [%r10-16], %r1\nlock add [%r10-15], %r1\nexit", 0, 0, "instruction 2: misaligned atomic"},
		{"signed loads", "mov %r1, -2\nstxw [%r10-8], %r1\nldxsb %r2, [%r10-8]\nldxsh %r3, [%r10-8]\nldxsw %r0, [%r10-8]\nadd %r0, %r2\nadd %r0, %r3\nexit", 0, math.MaxUint64 - 5, ""},
		{"call depth", "call local f\nexit\nf:\ncall local f\nexit", 0, 0, "instruction 2: call depth exceeds 8"},
		{"callx unknown helper", "mov %r2, 77\ncall %r2\nexit", 0, 0, "instruction 1: callx of 0x4d: no such helper"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, tc.text, make([]byte, tc.mem))
			if tc.errText == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.R0 != tc.want {
					t.Fatalf("r0 = %#x, want %#x", res.R0, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v, want one containing %q", err, tc.errText)
			}
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not *interp.Error", err)
			}
		})
	}
}

// Every run starts with a zero stack, in every frame, even after a run that
// wrote them.
func TestStackZeroBetweenRuns(t *testing.T) {
	q := prepare(t, assemble(t, `
ldxdw %r0, [%r10-8]
ldxdw %r2, [%r10-512]
or %r0, %r2
mov %r6, %r0
mov %r1, 3
call local f
or %r0, %r6
stdw [%r10-8], 1
stdw [%r10-512], 1
exit
f:
ldxdw %r0, [%r10-8]
ldxdw %r2, [%r10-512]
or %r0, %r2
stdw [%r10-8], 1
stdw [%r10-512], 1
jeq %r1, 0, done
sub %r1, 1
mov %r7, %r0
call local f
or %r0, %r7
done:
exit`), Options{})
	for i := 0; i < 3; i++ {
		res, err := q.Run(RunOptions{})
		if err != nil || res.R0 != 0 {
			t.Fatalf("run %d: r0=%d err=%v (stale stack data)", i, res.R0, err)
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	tests := []struct {
		name    string
		insns   []ir.Instruction
		opts    Options
		errText string
	}{
		{"unknown helper", []ir.Instruction{{Op: ir.OpCall, Imm: 999}, {Op: ir.OpExit}}, Options{}, "instruction 0: unknown helper 999"},
		{"unknown kfunc", []ir.Instruction{{Op: ir.OpCall, Src: ir.CallKfunc, Imm: 55}, {Op: ir.OpExit}}, Options{}, "instruction 0: unknown kfunc with BTF id 55"},
		{"unresolved map", []ir.Instruction{{Op: ir.OpLdImm64, Src: ir.PseudoMapFD, Imm: 3}, {}, {Op: ir.OpExit}}, Options{}, "instruction 0: ld_imm64 pseudo source 1 with imm 3"},
		{"bad register", []ir.Instruction{{Op: 0xb7, Dst: 12}, {Op: ir.OpExit}}, Options{}, "instruction 0"},
		{"jump out", []ir.Instruction{{Op: ir.OpJA, Off: 5}, {Op: ir.OpExit}}, Options{}, "instruction 0"},
		{"empty", nil, Options{}, "empty"},
	}
	for _, tc := range tests {
		_, err := Prepare(ir.NewProgram("p", tc.insns), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.errText) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.errText)
		}
	}
	if _, err := Prepare(nil, Options{}); err == nil {
		t.Error("nil program accepted")
	}
}

func TestReadOnlyRegionAndCtx(t *testing.T) {
	ro := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	ctx := make([]byte, 16)
	// r1 = ctx; r2 = &ro (through Args is not needed: the program gets it
	// via ctx[0..8]).
	binary.LittleEndian.PutUint64(ctx, addrOf(ro))
	p := assemble(t, "ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+3]\nstxdw [%r1+8], %r0\nexit")
	q := prepare(t, p, Options{})
	res, err := q.Run(RunOptions{Ctx: ctx, Regions: []Region{{Name: "ro", Data: ro, ReadOnly: true}}})
	if err != nil || res.R0 != 4 || binary.LittleEndian.Uint64(ctx[8:]) != 4 {
		t.Fatalf("r0=%d ctx=%x err=%v", res.R0, ctx, err)
	}
	w := prepare(t, assemble(t, "ldxdw %r2, [%r1+0]\nstb [%r2+0], 9\nexit"), Options{})
	_, err = w.Run(RunOptions{Ctx: ctx, Regions: []Region{{Name: "ro", Data: ro, ReadOnly: true}}})
	if err == nil || !strings.Contains(err.Error(), "instruction 1: store of 1 bytes") || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("store to read-only region: %v", err)
	}
	if ro[0] != 1 {
		t.Fatal("read-only region written")
	}
}

func TestBudgetAndCancel(t *testing.T) {
	q := prepare(t, assemble(t, "mov %r0, 0\nloop:\nadd %r0, 1\nja loop"), Options{})
	res, err := q.Run(RunOptions{Budget: 1000})
	if !errors.Is(err, ErrBudget) || res.Insns != 1000 {
		t.Fatalf("budget: %v after %d", err, res.Insns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = q.Run(RunOptions{Context: ctx})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	if !strings.Contains(err.Error(), "instruction ") {
		t.Fatalf("cancel error does not name the instruction: %v", err)
	}
}

func TestCalls(t *testing.T) {
	// Callee clobbers r6..r9 and its own stack; the caller's survive.
	text := `
mov %r6, 6
mov %r7, 7
mov %r8, 8
mov %r9, 9
stdw [%r10-8], 100
mov %r1, 5
call local f
add %r0, %r6
add %r0, %r7
add %r0, %r8
add %r0, %r9
ldxdw %r1, [%r10-8]
add %r0, %r1
exit
f:
mov %r6, 0
mov %r7, 0
mov %r8, 0
mov %r9, 0
stdw [%r10-8], 1
ldxdw %r0, [%r10-8]
add %r0, %r1
exit`
	res, err := run(t, text, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(6 + 6 + 7 + 8 + 9 + 100); res.R0 != want {
		t.Fatalf("r0 = %d, want %d", res.R0, want)
	}
	// Recursion to depth 8 works (main + 7 calls), 9 frames fail.
	rec := func(n int) string {
		return "mov %r1, " + itoa(n) + "\ncall local f\nexit\nf:\njeq %r1, 0, out\nsub %r1, 1\ncall local f\nadd %r0, 1\nexit\nout:\nmov %r0, 0\nexit"
	}
	if res, err := run(t, rec(6), nil); err != nil || res.R0 != 6 {
		t.Fatalf("depth 8: %v %d", err, res.R0)
	}
	if _, err := run(t, rec(7), nil); err == nil || !strings.Contains(err.Error(), "call depth") {
		t.Fatalf("depth 9: %v", err)
	}
	// A pointer to the caller's frame is usable in the callee.
	res, err = run(t, "stdw [%r10-8], 41\nmov %r1, %r10\nadd %r1, -8\ncall local g\nldxdw %r0, [%r10-8]\nexit\ng:\nldxdw %r2, [%r1+0]\nadd %r2, 1\nstxdw [%r1+0], %r2\nexit", nil)
	if err != nil || res.R0 != 42 {
		t.Fatalf("caller frame pointer: %v %d", err, res.R0)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// callx through a function reference (ld_imm64 src=PseudoFunc).
func TestCallxFunctionReference(t *testing.T) {
	insns := []ir.Instruction{
		{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc, Imm: 5}, {}, // r2 = &f (slot 0+1+5)
		{Op: 0xb7, Dst: ir.R1, Imm: 20},
		{Op: ir.OpCallX, Dst: ir.R2},
		{Op: 0x07, Dst: ir.R0, Imm: 1},
		{Op: ir.OpExit},
		// f: r0 = r1 * 2
		{Op: 0xbf, Dst: ir.R0, Src: ir.R1},
		{Op: 0x27, Dst: ir.R0, Imm: 2},
		{Op: ir.OpExit},
	}
	q := prepare(t, ir.NewProgram("callx", insns), Options{})
	res, err := q.Run(RunOptions{})
	if err != nil || res.R0 != 41 {
		t.Fatalf("r0=%d err=%v", res.R0, err)
	}
}

func TestTailCalls(t *testing.T) {
	// Program k: r0 = k... every program adds its index to ctx[0] and
	// tail calls index r6+1 (r6 read from ctx[8]).
	tail := func(k int32) *ir.Program {
		return ir.NewProgram("t", []ir.Instruction{
			{Op: 0x79, Dst: ir.R2, Src: ir.R1, Off: 0}, // r2 = ctx[0]
			{Op: 0x07, Dst: ir.R2, Imm: 1},             // r2++
			{Op: 0x7b, Dst: ir.R1, Src: ir.R2, Off: 0}, // ctx[0] = r2
			{Op: 0xb7, Dst: ir.R3, Imm: k + 1},         // r3 = next index
			{Op: ir.OpCall, Imm: ir.HelperTailCall},    // tail call
			{Op: 0xb7, Dst: ir.R0, Imm: 1000 + k},      // reached when the tail call fails
			{Op: ir.OpExit},
		})
	}
	progs := make([]*Program, 40)
	for i := range progs {
		progs[i] = prepare(t, tail(int32(i)), Options{})
	}
	for _, p := range progs {
		p.SetTailCalls(progs)
	}
	ctx := make([]byte, 8)
	res, err := progs[0].Run(RunOptions{Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	// 0 runs, then 33 tail calls succeed (1..33), the 34th fails in 33.
	if res.R0 != 1033 || binary.LittleEndian.Uint64(ctx) != 34 {
		t.Fatalf("r0=%d count=%d", res.R0, binary.LittleEndian.Uint64(ctx))
	}
	// Out-of-range index falls through.
	short := []*Program{progs[0], progs[1]}
	progs[0].SetTailCalls(short)
	progs[1].SetTailCalls(short)
	ctx = make([]byte, 8)
	res, err = progs[0].Run(RunOptions{Ctx: ctx})
	if err != nil || res.R0 != 1001 || binary.LittleEndian.Uint64(ctx) != 2 {
		t.Fatalf("short array: r0=%d count=%d err=%v", res.R0, binary.LittleEndian.Uint64(ctx), err)
	}
}

func TestMayGoto(t *testing.T) {
	if raceEnabled {
		t.Skip("runs 25M instructions: too slow under -race")
	}
	insns := []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 0},
		{Op: ir.OpMayGoto, Off: 2}, // loop: may_goto out
		{Op: 0x07, Dst: ir.R0, Imm: 1},
		{Op: ir.OpJA, Off: -3},
		{Op: ir.OpExit},
	}
	q := prepare(t, ir.NewProgram("mg", insns), Options{})
	res, err := q.Run(RunOptions{})
	if err != nil || res.R0 != MayGotoLoops {
		t.Fatalf("r0=%d err=%v", res.R0, err)
	}
}

func TestLdAbsInd(t *testing.T) {
	pkt := []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66}
	insns := []ir.Instruction{
		{Op: 0x28, Imm: 1}, // r0 = ntohs(pkt[1:3])
		{Op: 0xbf, Dst: ir.R6, Src: ir.R0},
		{Op: 0xb7, Dst: ir.R7, Imm: 2},
		{Op: 0x40, Src: ir.R7, Imm: 0}, // r0 = ntohl(pkt[2:6])
		{Op: 0x0f, Dst: ir.R0, Src: ir.R6},
		{Op: ir.OpExit},
	}
	q := prepare(t, ir.NewProgram("abs", insns), Options{})
	res, err := q.Run(RunOptions{Packet: pkt})
	if want := uint64(0x2233 + 0x33445566); err != nil || res.R0 != want {
		t.Fatalf("r0=%#x err=%v", res.R0, err)
	}
	insns[0].Imm = 5 // out of bounds: the program returns 0
	q = prepare(t, ir.NewProgram("abs", insns), Options{})
	res, err = q.Run(RunOptions{Packet: pkt})
	if err != nil || res.R0 != 0 || res.Insns != 1 {
		t.Fatalf("oob: r0=%#x insns=%d err=%v", res.R0, res.Insns, err)
	}
}

func atomicInsn(size ir.Size, mode ir.Mode, dst, src ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(mode), Dst: dst, Src: src, Off: off, Imm: imm}
}

func TestAtomics(t *testing.T) {
	const init = 0xf0f0f0f0_0000000c
	tests := []struct {
		name       string
		size       ir.Size
		imm        int32
		src, r0    uint64
		mem, rsrc  uint64 // memory and src register afterwards
		wantR0     uint64
		loadResult bool // dst of a load-acquire ends in r3
	}{
		{"add", ir.SizeDW, ir.AtomicAdd, 1, 0, init + 1, 1, 0, false},
		{"fetch add", ir.SizeDW, ir.AtomicAdd | ir.AtomicFetch, 1, 0, init + 1, init, 0, false},
		{"fetch or 32", ir.SizeW, ir.AtomicOr | ir.AtomicFetch, 0x3, 0, init | 3, 0xc, 0, false},
		{"fetch and", ir.SizeDW, ir.AtomicAnd | ir.AtomicFetch, 0xff, 0, 0xc, init, 0, false},
		{"xor 32", ir.SizeW, ir.AtomicXor, 0xf, 0, init ^ 0xf, 0xf, 0, false},
		{"fetch xor", ir.SizeDW, ir.AtomicXor | ir.AtomicFetch, 0xf, 0, init ^ 0xf, init, 0, false},
		{"xchg", ir.SizeDW, ir.AtomicXchg, 5, 0, 5, init, 0, false},
		{"xchg 32", ir.SizeW, ir.AtomicXchg, 5, 0, 0xf0f0f0f0_00000005, 0xc, 0, false},
		{"cmpxchg hit", ir.SizeDW, ir.AtomicCmpXchg, 9, init, 9, 9, init, false},
		{"cmpxchg miss", ir.SizeDW, ir.AtomicCmpXchg, 9, 1, init, 9, init, false},
		{"cmpxchg32 hit zext", ir.SizeW, ir.AtomicCmpXchg, 9, 0xffffffff_0000000c, 0xf0f0f0f0_00000009, 9, 0xc, false},
		{"load acquire 16", ir.SizeH, ir.AtomicLoadAcq, 0, 0, init, 0, 0, true},
		{"store release 8", ir.SizeB, ir.AtomicStoreRel, 0x1ab, 0, 0xf0f0f0f0_000000ab, 0x1ab, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := make([]byte, 16)
			binary.LittleEndian.PutUint64(mem, init)
			insns := []ir.Instruction{}
			ld := func(r ir.Register, v uint64) {
				s := ir.LdImm64(r, v)
				insns = append(insns, s[0], s[1])
			}
			ld(ir.R2, tc.src)
			ld(ir.R0, tc.r0)
			if tc.imm == ir.AtomicLoadAcq {
				insns = append(insns, atomicInsn(tc.size, ir.ModeATOMIC, ir.R3, ir.R1, 0, tc.imm))
			} else {
				insns = append(insns, atomicInsn(tc.size, ir.ModeATOMIC, ir.R1, ir.R2, 0, tc.imm))
			}
			insns = append(insns,
				ir.Instruction{Op: 0x7b, Dst: ir.R1, Src: ir.R2, Off: 8}, // mem[8] = r2
				ir.Instruction{Op: 0x7b, Dst: ir.R1, Src: ir.R3, Off: 8}, // or r3 for load-acquire
				ir.Instruction{Op: ir.OpExit})
			if !tc.loadResult {
				insns = append(insns[:len(insns)-2], ir.Instruction{Op: ir.OpExit})
			}
			q := prepare(t, ir.NewProgram(tc.name, insns), Options{})
			res, err := q.Run(RunOptions{Mem: mem})
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint64(mem); got != tc.mem {
				t.Errorf("memory %#x, want %#x", got, tc.mem)
			}
			if tc.loadResult {
				if got := binary.LittleEndian.Uint64(mem[8:]); got != init&0xffff {
					t.Errorf("load-acquire gave %#x", got)
				}
				return
			}
			if got := binary.LittleEndian.Uint64(mem[8:]); got != tc.rsrc {
				t.Errorf("src register %#x, want %#x", got, tc.rsrc)
			}
			if res.R0 != tc.wantR0 {
				t.Errorf("r0 %#x, want %#x", res.R0, tc.wantR0)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	var out bytes.Buffer
	// bpf_trace_printk("x=%d\n", 6, 42) with the format on the stack.
	f := []byte("x=%d\n\x00")
	insns := []ir.Instruction{}
	for i := 0; i < len(f); i++ {
		insns = append(insns, ir.Instruction{Op: 0x72, Dst: ir.R10, Off: int16(-16 + i), Imm: int32(f[i])})
	}
	insns = append(insns,
		ir.Instruction{Op: 0xbf, Dst: ir.R1, Src: ir.R10},
		ir.Instruction{Op: 0x07, Dst: ir.R1, Imm: -16},
		ir.Instruction{Op: 0xb7, Dst: ir.R2, Imm: int32(len(f))},
		ir.Instruction{Op: 0xb7, Dst: ir.R3, Imm: 42},
		ir.Instruction{Op: ir.OpCall, Imm: helpers.IDTracePrintk},
		ir.Instruction{Op: 0xbf, Dst: ir.R6, Src: ir.R0},
		ir.Instruction{Op: ir.OpCall, Imm: helpers.IDGetPrandomU32},
		ir.Instruction{Op: ir.OpCall, Imm: helpers.IDKtimeGetNs},
		ir.Instruction{Op: 0xbf, Dst: ir.R0, Src: ir.R6},
		ir.Instruction{Op: ir.OpExit})
	q := prepare(t, ir.NewProgram("printk", insns), Options{})
	res, err := q.Run(RunOptions{Trace: &out})
	if err != nil || out.String() != "x=42\n" || res.R0 != 5 {
		t.Fatalf("printk: %q r0=%d err=%v", out.String(), res.R0, err)
	}
	// A helper that aborts names the instruction.
	reg := helpers.NewRegistry().Register(1, "boom", func(c *helpers.Context, _, _, _, _, _ uint64) uint64 {
		c.Abort(errors.New("bad map"))
		return 0
	})
	q = prepare(t, ir.NewProgram("abort", []ir.Instruction{{Op: 0xb7}, {Op: ir.OpCall, Imm: 1}, {Op: ir.OpExit}}), Options{Helpers: reg})
	if _, err := q.Run(RunOptions{}); err == nil || !strings.Contains(err.Error(), "instruction 1: helper 1 failed: bad map") {
		t.Fatalf("abort: %v", err)
	}
	// Unwind stops the program.
	res, err = run(t, "mov %r1, 0\ncall 5\nmov %r0, 7\nexit", nil)
	if err != nil || res.R0 != 0 || !res.Stopped {
		t.Fatalf("unwind: %+v %v", res, err)
	}
}

func TestSymbols(t *testing.T) {
	value := make([]byte, 64)
	base := addrOf(value)
	insns := []ir.Instruction{
		{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapValue}, {Imm: 16},
		{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoMapIdxValue, Imm: 3}, {Imm: 8},
		{Op: 0x7a, Dst: ir.R1, Imm: 7},     // *(u64 *)(r1) = 7
		{Op: 0x79, Dst: ir.R0, Src: ir.R2}, // r0 = *(u64 *)(r2)
		{Op: ir.OpExit},
	}
	p := ir.NewProgram("sym", insns)
	p.Aux[0].Symbol, p.Aux[0].SymbolKind = ".data", ir.SymMap
	q := prepare(t, p, Options{Symbols: map[string]uint64{".data": base}, MapFDs: map[int32]uint64{3: base + 8}})
	res, err := q.Run(RunOptions{Regions: []Region{{Name: ".data", Data: value}}})
	if err != nil || res.R0 != 7 || value[16] != 7 {
		t.Fatalf("r0=%d err=%v", res.R0, err)
	}
	if _, err := Prepare(p, Options{}); err == nil || !strings.Contains(err.Error(), `symbol not given`) {
		t.Fatalf("missing symbol: %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	q := prepare(t, assemble(t, "mov %r0, 0\nmov %r2, 1000\nloop:\nldxdw %r3, [%r1+0]\nadd %r0, %r3\nstxdw [%r10-8], %r0\nsub %r2, 1\njne %r2, 0, loop\nexit"), Options{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mem := make([]byte, 8)
			binary.LittleEndian.PutUint64(mem, uint64(g))
			for i := 0; i < 50; i++ {
				res, err := q.Run(RunOptions{Mem: mem})
				if err != nil || res.R0 != uint64(g*1000) {
					t.Errorf("goroutine %d: r0=%d err=%v", g, res.R0, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// callx with the target register in imm (LLVM's encoding) and in dst.
func TestCallxEncodings(t *testing.T) {
	for _, ins := range []ir.Instruction{{Op: ir.OpCallX, Imm: 3}, {Op: ir.OpCallX, Dst: ir.R3}} {
		p := ir.NewProgram("callx", []ir.Instruction{
			{Op: 0xb7, Dst: ir.R3, Imm: helpers.IDConformanceUnwind},
			{Op: 0xb7, Dst: ir.R1, Imm: 9},
			ins,
			{Op: ir.OpExit},
		})
		res, err := prepare(t, p, Options{Helpers: helpers.Conformance()}).Run(RunOptions{})
		if err != nil || res.R0 != 9 {
			t.Errorf("%+v: r0=%d err=%v", ins, res.R0, err)
		}
	}
}

func TestStep(t *testing.T) {
	q := prepare(t, assemble(t, "mov %r0, 1\nlddw %r1, 0x100000000\njeq %r0, 1, +1\nmov %r0, 9\nadd %r0, %r1\nexit"), Options{})
	var pcs []int
	var r0s []uint64
	res, err := q.Run(RunOptions{Step: func(p *Program, pc int, regs []uint64) {
		pcs = append(pcs, pc)
		r0s = append(r0s, regs[0])
	}})
	if err != nil || res.R0 != 0x100000001 {
		t.Fatalf("r0=%#x err=%v", res.R0, err)
	}
	if want := []int{0, 1, 3, 5, 6}; !equalInts(pcs, want) || res.Insns != 5 {
		t.Fatalf("pcs %v (insns %d), want %v", pcs, res.Insns, want)
	}
	if r0s[0] != 0 || r0s[1] != 1 || r0s[4] != 0x100000001 {
		t.Fatalf("r0 before each step: %#x", r0s)
	}
	// Step and a budget together.
	_, err = q.Run(RunOptions{Budget: 2, Step: func(*Program, int, []uint64) {}})
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("budget with step: %v", err)
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

// The verifier's timed may_goto expansion (do_misc_fixups on a JIT with
// timed may_goto): a {count, timestamp} pair on the stack, refreshed through
// arch_bpf_timed_may_goto until a quarter second has passed.
func TestTimedMayGoto(t *testing.T) {
	const id = 777 // what the call's imm is depends on the kernel build
	reg := helpers.Kernel().Clone().Register(id, helpers.NameTimedMayGoto, helpers.TimedMayGotoPlaceholder)
	const cnt = -16
	insns := []ir.Instruction{
		{Op: 0x7a, Dst: ir.R10, Off: cnt, Imm: 3},     // count = 3
		{Op: 0x7a, Dst: ir.R10, Off: cnt + 8, Imm: 0}, // timestamp = 0
		{Op: 0xb7, Dst: ir.R0, Imm: 0},
		// loop: may_goto expanded
		{Op: 0x79, Dst: ir.RAX, Src: ir.R10, Off: cnt}, // AX = count
		{Op: 0x15, Dst: ir.RAX, Off: 7},                // if AX == 0 goto out
		{Op: 0x17, Dst: ir.RAX, Imm: 1},                // AX -= 1
		{Op: 0x55, Dst: ir.RAX, Off: 2},                // if AX != 0 goto store
		{Op: 0xb7, Dst: ir.RAX, Imm: cnt},              // AX = stack offset
		{Op: ir.OpCall, Imm: id},                       // AX = arch_bpf_timed_may_goto()
		{Op: 0x7b, Dst: ir.R10, Src: ir.RAX, Off: cnt}, // store: count = AX
		{Op: 0x07, Dst: ir.R0, Imm: 1},                 // body
		{Op: ir.OpJA, Off: -9},                         // goto loop
		{Op: ir.OpExit},                                // out
	}
	q, err := Prepare(ir.NewProgram("timed", insns), Options{Helpers: reg})
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(1000)
	clock := func() uint64 { now += 125_000_000; return now } // 125 ms per look
	res, err := q.Run(RunOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	// 3 iterations on the initial count (the third makes the first call,
	// which stamps the slot and refills), then 0xffff iterations per call;
	// the call 250 ms (2 looks) after the stamp returns 0, its iteration
	// still runs, and the next may_goto leaves the loop.
	if want := uint64(3 + 2*helpers.MaxTimedLoops); res.R0 != want {
		t.Fatalf("r0 = %d, want %d", res.R0, want)
	}
}

func TestBpfLoop(t *testing.T) {
	// main: r6 = &sum (stack), bpf_loop(n, cb, r6, flags); r0 = ret<<32 | sum
	// cb(i, ctx): *ctx += i + 1; return i == stop ? 1 : 0
	build := func(n, flags int32, stop int32) *ir.Program {
		insns := []ir.Instruction{
			{Op: 0x7a, Dst: ir.R10, Off: -8, Imm: 0}, // sum = 0
			{Op: 0xbf, Dst: ir.R3, Src: ir.R10},
			{Op: 0x07, Dst: ir.R3, Imm: -8},
			{Op: 0xb7, Dst: ir.R1, Imm: n},
			{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc, Imm: 8}, {}, // cb at slot 4+1+8 = 13
			{Op: 0xb7, Dst: ir.R4, Imm: flags},
			{Op: ir.OpCall, Imm: helpers.IDLoop},
			{Op: 0x67, Dst: ir.R0, Imm: 32},
			{Op: 0x79, Dst: ir.R1, Src: ir.R10, Off: -8},
			{Op: 0x4f, Dst: ir.R0, Src: ir.R1},
			{Op: 0x7a, Dst: ir.R10, Off: -16, Imm: 5}, // main's stack survives the callbacks
			{Op: ir.OpExit},
			// cb:
			{Op: 0x7a, Dst: ir.R10, Off: -8, Imm: 99}, // own frame
			{Op: 0x79, Dst: ir.R3, Src: ir.R2},
			{Op: 0x0f, Dst: ir.R3, Src: ir.R1},
			{Op: 0x07, Dst: ir.R3, Imm: 1},
			{Op: 0x7b, Dst: ir.R2, Src: ir.R3},
			{Op: 0xb7, Dst: ir.R0, Imm: 0},
			{Op: 0x55, Dst: ir.R1, Imm: stop, Off: 1},
			{Op: 0xb7, Dst: ir.R0, Imm: 1},
			{Op: ir.OpExit},
		}
		return ir.NewProgram("loop", insns)
	}
	tests := []struct {
		name             string
		n, flags, stop   int32
		wantRet, wantSum uint64
	}{
		{"all", 5, 0, -1, 5, 1 + 2 + 3 + 4 + 5},
		{"stop at 2", 5, 0, 2, 3, 1 + 2 + 3},
		{"none", 0, 0, -1, 0, 0},
		{"flags", 5, 1, -1, 0xffffffea, 0},            // -EINVAL
		{"too many", 1<<23 + 1, 0, -1, 0xfffffff9, 0}, // -E2BIG
	}
	for _, tc := range tests {
		res, err := prepare(t, build(tc.n, tc.flags, tc.stop), Options{}).Run(RunOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ret, sum := res.R0>>32, uint64(uint32(res.R0)); ret != tc.wantRet || sum != tc.wantSum {
			t.Errorf("%s: bpf_loop returned %#x, sum %d; want %#x, %d", tc.name, ret, sum, tc.wantRet, tc.wantSum)
		}
	}
	// A callback that is not a function reference is an error.
	p := build(3, 0, -1)
	p.Insns[4].Src = ir.PseudoNone
	if _, err := prepare(t, p, Options{}).Run(RunOptions{}); err == nil || !strings.Contains(err.Error(), "instruction 7: bpf_loop callback") {
		t.Fatalf("bad callback: %v", err)
	}
}

// A run that stops inside a bpf_loop callback must not leave loop state
// behind for the next run on the same pooled machine.
func TestBpfLoopStoppedThenCall(t *testing.T) {
	reg := helpers.Kernel().Clone().Register(1000, "stop", func(c *helpers.Context, _, _, _, _, _ uint64) uint64 {
		c.Stop(42)
		return 0
	})
	stopper := ir.NewProgram("stopper", []ir.Instruction{
		{Op: 0xb7, Dst: ir.R1, Imm: 3},
		{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc, Imm: 5}, {}, // cb at slot 1+1+5 = 7
		{Op: 0xb7, Dst: ir.R3, Imm: 0},
		{Op: 0xb7, Dst: ir.R4, Imm: 0},
		{Op: ir.OpCall, Imm: helpers.IDLoop},
		{Op: ir.OpExit},
		{Op: ir.OpCall, Imm: 1000}, // cb: stop the program
		{Op: ir.OpExit},
	})
	q1 := prepare(t, stopper, Options{Helpers: reg})
	q2 := prepare(t, assemble(t, "mov %r1, 1\ncall local f\nadd %r0, 1\nexit\nf:\nmov %r0, %r1\nexit"), Options{Helpers: reg})
	for i := 0; i < 3; i++ {
		res, err := q1.Run(RunOptions{})
		if err != nil || res.R0 != 42 || !res.Stopped {
			t.Fatalf("stopper: %+v %v", res, err)
		}
		res, err = q2.Run(RunOptions{})
		if err != nil || res.R0 != 2 {
			t.Fatalf("call after a stopped loop: r0=%d err=%v", res.R0, err)
		}
	}
}
