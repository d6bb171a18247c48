package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestDef32Table checks that ZextMark's per-opcode table gives def32's
// answer for every opcode, register pair and the immediates and offsets
// that matter (byte swap widths, casts, atomic operations).
func TestDef32Table(t *testing.T) {
	imms := []int32{0, 1, 16, 32, 64, -1, ir.CastToKernel, ir.CastToUser, ir.AtomicCmpXchg, ir.AtomicLoadAcq, ir.AtomicStoreRel,
		ir.AtomicAdd, ir.AtomicAdd | ir.AtomicFetch, ir.AtomicOr | ir.AtomicFetch, ir.AtomicXchg}
	offs := []int16{0, 1, -1, ir.OffAddrSpaceCast, 8}
	checked := 0
	for op := range 256 {
		for _, d := range []ir.Register{ir.R0, ir.R3, ir.R10} {
			for _, s := range []ir.Register{ir.R0, ir.R5} {
				for _, imm := range imms {
					for _, off := range offs {
						ins := ir.Instruction{Op: uint8(op), Dst: d, Src: s, Imm: imm, Off: off}
						wr, wok := def32(ins)
						var r ir.Register
						ok := false
						switch def32Table[ins.Op] {
						case d32Dst:
							r, ok = ins.Dst, true
						case d32R0:
							r, ok = ir.R0, true
						case d32Slow:
							r, ok = def32(ins)
						}
						if ok != wok || (ok && r != wr) {
							t.Fatalf("%#02x dst %v src %v imm %d off %d: table gives %v %v, def32 %v %v", op, d, s, imm, off, r, ok, wr, wok)
						}
						checked++
					}
				}
			}
		}
	}
	if def32Table[uint8(ir.ClassALU)|uint8(ir.ALUAdd)] != d32Dst || def32Table[uint8(ir.ClassALU64)|uint8(ir.ALUAdd)] != d32None {
		t.Fatal("table: add32 must define dst, add64 nothing")
	}
	t.Logf("%d instructions checked", checked)
}
