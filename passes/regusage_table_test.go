package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestRegUsageTable checks RegUsage's fast path: an opcode ruSlow leaves
// out is, whatever its fields, never a ld_imm64, a tail call or an arena
// access/cast (the cases the full loop body looks for), and ruCallee gives
// exactly R6..R9.
func TestRegUsageTable(t *testing.T) {
	checked := 0
	for op := range 256 {
		if ruSlow[op] {
			continue
		}
		for _, src := range []ir.Register{0, 1, 2, 4, 6} {
			for _, off := range []int16{0, 1, -1, ir.OffAddrSpaceCast} {
				for _, imm := range []int32{0, 1, ir.HelperTailCall, ir.CastToKernel, ir.CastToUser} {
					ins := ir.Instruction{Op: uint8(op), Dst: ir.R1, Src: src, Off: off, Imm: imm}
					c, m := ins.Class(), ins.Mode()
					arena := c == ir.ClassLDX && (m == ir.ModeProbeMem32 || m == ir.ModeProbeMem32SX) ||
						(c == ir.ClassST || c == ir.ClassSTX) && m == ir.ModeProbeMem32 ||
						c == ir.ClassSTX && m == ir.ModeProbeAtomic || ins.IsAddrSpaceCast()
					if ins.IsLdImm64() || ins.IsTailCall() || arena {
						t.Fatalf("%#02x src %v off %d imm %d: on the fast path but ldimm64/tail call/arena", op, src, off, imm)
					}
					checked++
				}
			}
		}
	}
	for r := range 256 {
		want := ir.RegSet(0)
		if reg := ir.Register(r); reg >= ir.R6 && reg <= ir.R9 {
			want = want.Add(reg)
		}
		if ruCallee[r] != want {
			t.Fatalf("ruCallee[%d] = %v, want %v", r, ruCallee[r], want)
		}
	}
	if ruSlow[uint8(ir.ClassALU64)|uint8(ir.ALUAdd)] || !ruSlow[ir.OpLdImm64] || !ruSlow[ir.OpCall] {
		t.Fatal("ruSlow: add64 is fast, ld_imm64 and call slow")
	}
	t.Logf("%d fast-path instructions checked", checked)
}
