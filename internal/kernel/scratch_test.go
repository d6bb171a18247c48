package kernel

import (
	"fmt"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

func TestScratch(t *testing.T) {
	ok, why := Available()
	t.Log(ok, why)
	insns := []ir.Instruction{
		{Op: 0x79, Dst: 2, Src: 1, Off: 0},   // r2 = *(u64*)(r1+0)
		{Op: 0xb7, Dst: 0, Imm: 1},
		{Op: 0x3f, Dst: 0, Src: 2}, // r0 /= r2
		{Op: 0x18, Dst: 3, Imm: 1},
		{Imm: 2},
		{Op: 0x0f, Dst: 0, Src: 3},
		{Op: ir.OpExit},
	}
	l, err := Load(&Spec{Name: "scratch", Type: Syscall, Program: ir.NewProgram("s", insns)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := ProgInfo(l.FD)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%x\n%x\n%v %x %+v\n", info.Xlated, info.Jited, info.Lens, info.Ksyms, info.Lines)
}
