package amd64

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
)

// TestWriteAtUserAddresses lays a three-function program out once and
// writes each function into its own buffer at vm-style addresses: calls
// and function-address loads must reach the callees' exec addresses.
func TestWriteAtUserAddresses(t *testing.T) {
	insns := []ir.Instruction{
		callLocal(0), // -> f1
		{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc}, {},
		call(7),
		exit(),
	}
	f1 := len(insns)
	insns = append(insns, callLocal(0), exit()) // -> f2
	f2 := len(insns)
	insns = append(insns, mov64(0, 1), exit())
	insns[0].Imm = int32(f1 - 1)
	insns[1].Imm = int32(f2 - 2)
	insns[f1].Imm = int32(f2 - f1 - 1)
	p := ir.NewProgram("vm", insns)
	tg := Host()
	tg.CallBase = 0x7f0000500000
	l, err := NewLayout(p, tg)
	if err != nil {
		t.Fatal(err)
	}
	if l.NumFuncs() != 3 {
		t.Fatalf("%d functions", l.NumFuncs())
	}
	addrs := []uint64{0x7f0000010000, 0x7f0000020040, 0x7f0000030080}
	code := make([][]byte, 3)
	for k := 0; k < 3; k++ {
		buf := make([]byte, l.Size(k))
		f, err := l.Write(k, buf, addrs[k], addrs)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Code) != l.CodeSize(k) {
			t.Errorf("function %d: %d bytes, layout %d", k, len(f.Code), l.CodeSize(k))
		}
		code[k] = f.Code
	}
	// Find the calls and the movabs and check their targets.
	var calls []uint64
	var imm []uint64
	for pc := 0; pc < len(code[0]); {
		in, err := x86asm.Decode(code[0][pc:], 64)
		if err != nil {
			t.Fatal(err)
		}
		if in.Op == x86asm.CALL {
			calls = append(calls, addrs[0]+uint64(pc+in.Len)+uint64(int64(in.Args[0].(x86asm.Rel))))
		}
		if in.Op == x86asm.MOV && in.Args[0] == x86asm.RSI {
			imm = append(imm, uint64(in.Args[1].(x86asm.Imm)))
		}
		pc += in.Len
	}
	if len(calls) != 2 || calls[0] != addrs[1] || calls[1] != tg.CallBase+7 {
		t.Errorf("calls go to %x, want %x and %x", calls, addrs[1], tg.CallBase+7)
	}
	if len(imm) != 1 || imm[0] != addrs[2] {
		t.Errorf("function address loads %x, want %x", imm, addrs[2])
	}
	// A function address that encodes shorter than the placeholder is an error.
	short := []uint64{0x1000, 0x2000, 0x3000}
	buf := make([]byte, l.Size(0))
	if _, err := l.Write(0, buf, short[0], short); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("short function address: %v", err)
	}
	// The same layout written twice at different addresses differs only
	// in the relative call to the helper.
	b1, b2 := make([]byte, l.Size(2)), make([]byte, l.Size(2))
	f1w, _ := l.Write(2, b1, 0x7f0000001000, addrs)
	f2w, _ := l.Write(2, b2, 0x7f0000002000, addrs)
	if !bytes.Equal(f1w.Code, f2w.Code) {
		t.Error("position-independent function differs between addresses")
	}
}

// TestListing lists a golden-like program and checks that every BPF
// instruction and the x86 code appear.
func TestListing(t *testing.T) {
	p := prog("l", mov64(ir.R0, 1), lddw(ir.R1, 0x100000000), jk(ir.ClassJMP, ir.JumpJEQ, 1, 0, 1), a64k(ir.ALUAdd, 0, 2), exit())
	im := compileT(t, p, Linux618())
	var sb strings.Builder
	if err := Listing(&sb, p, im, nil); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, want := range []string{"func 0 at 0x0", "; 0: ", "; 1: ", "; 3: ", "; 4: ", "; 5: ", "mov r9, 0x100000000"[:3], "push rbp", "leave"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "; 2: ") {
		t.Errorf("listing shows the second half of ld_imm64:\n%s", out)
	}
}
