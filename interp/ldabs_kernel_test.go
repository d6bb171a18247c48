package interp

import (
	"errors"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// ldabsPacket is the test packet (Ethernet header included).
var ldabsPacket = func() []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(0x10 + i*7)
	}
	return b
}()

// ldabsPrograms: r6 = ctx, then legacy packet loads. LD_ABS/IND offsets
// are relative to skb->data, which for a socket filter's test run starts
// after the 14-byte Ethernet header.
func ldabsPrograms() map[string]*ir.Program {
	prog := func(body ...ir.Instruction) *ir.Program {
		insns := append([]ir.Instruction{{Op: 0xbf, Dst: ir.R6, Src: ir.R1}}, body...)
		insns = append(insns, ir.Instruction{Op: ir.OpExit})
		return ir.NewProgram("ldabs", insns)
	}
	abs := func(size ir.Size, off int32) ir.Instruction {
		return ir.Instruction{Op: uint8(ir.ClassLD) | uint8(size) | uint8(ir.ModeABS), Imm: off}
	}
	ind := func(size ir.Size, src ir.Register, off int32) ir.Instruction {
		return ir.Instruction{Op: uint8(ir.ClassLD) | uint8(size) | uint8(ir.ModeIND), Src: src, Imm: off}
	}
	return map[string]*ir.Program{
		"abs_b":   prog(abs(ir.SizeB, 3)),
		"abs_h":   prog(abs(ir.SizeH, 5)),
		"abs_w":   prog(abs(ir.SizeW, 9)),
		"abs_oob": prog(ir.Instruction{Op: 0xb7, Dst: ir.R0, Imm: 77}, abs(ir.SizeW, 48), ir.Instruction{Op: 0xb7, Dst: ir.R0, Imm: 5}),
		"ind_w": prog(ir.Instruction{Op: 0xb7, Dst: ir.R7, Imm: 6}, ind(ir.SizeW, ir.R7, 2),
			ir.Instruction{Op: 0xbf, Dst: ir.R8, Src: ir.R0}, ind(ir.SizeH, ir.R7, -4), ir.Instruction{Op: 0xaf, Dst: ir.R0, Src: ir.R8}),
		"ind_neg": prog(ir.Instruction{Op: 0xb7, Dst: ir.R7, Imm: -1}, ind(ir.SizeB, ir.R7, 0)),
	}
}

// TestLdAbsMatchesKernel compares legacy packet loads with the kernel.
func TestLdAbsMatchesKernel(t *testing.T) {
	// Recorded from the live kernel (Linux 6.18, socket filter test run);
	// with BPF available the test compares against the kernel too.
	want := map[string]uint32{
		"abs_b": 0x87, "abs_h": 0x959c, "abs_w": 0xb1b8bfc6, "abs_oob": 0, "ind_w": 0xaab13838, "ind_neg": 0,
	}
	ok, _ := kernelAvailable()
	for name, p := range ldabsPrograms() {
		q := prepare(t, p, Options{})
		res, err := q.Run(RunOptions{Packet: ldabsPacket[14:], Ctx: make([]byte, 192)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := uint32(res.R0)
		if ok {
			l, err := kernel.Load(&kernel.Spec{Name: name, Type: kernel.SocketFilter, Program: p, NoLineInfo: true})
			var le *kernel.LoadError
			if errors.As(err, &le) {
				t.Fatalf("%s: kernel rejects: %v", name, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			kr, err := l.TestRun(kernel.RunOptions{Data: ldabsPacket})
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			if kr.Retval != got {
				t.Errorf("%s: interpreter %#x, kernel %#x", name, got, kr.Retval)
			}
			if kr.Retval != want[name] {
				t.Errorf("%s: kernel gives %#x, the recorded value is %#x", name, kr.Retval, want[name])
			}
		}
		if got != want[name] {
			t.Errorf("%s: interpreter %#x, want %#x", name, got, want[name])
		}
	}
}
