package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestLiveThrough: the inline forms give what defs and uses64 give, for
// every opcode, register pair and a spread of immediates and offsets.
func TestLiveThrough(t *testing.T) {
	regsets := []ir.RegSet{0, 0xffff, 1 << ir.R0, 1<<ir.R1 | 1<<ir.R10, 0x5a5}
	n := 0
	for op := 0; op < 256; op++ {
		for dst := ir.Register(0); dst <= ir.RAX; dst++ {
			for src := ir.Register(0); src <= ir.RAX; src++ {
				for _, imm := range []int32{0, 1, 16, 32, 64, ir.AtomicCmpXchg, ir.AtomicLoadAcq, ir.AtomicAdd | ir.AtomicFetch, -1} {
					for _, off := range []int16{0, 1, 8, -8} {
						ins := ir.Instruction{Op: uint8(op), Dst: dst, Src: src, Off: off, Imm: imm}
						for _, o := range regsets {
							want := o&^defs(ins) | uses64(ins)
							if got := liveThrough(o, ins); got != want {
								t.Fatalf("%+v, live %#x: %#x, want %#x", ins, o, got, want)
							}
							n++
						}
					}
				}
			}
		}
	}
	if n < 1_000_000 {
		t.Fatalf("only %d cases", n)
	}
}
