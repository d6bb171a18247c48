package ir

import "testing"

// TestFastValid: every instruction fastValid accepts, the full checks
// accept too, with and without the xlated forms; and it takes the common
// forms.
func TestFastValid(t *testing.T) {
	accepted := 0
	for op := 0; op < 256; op++ {
		for dst := Register(0); dst < 16; dst++ {
			for src := Register(0); src < 16; src++ {
				for _, imm := range []int32{0, 1, 16, 64, -1} {
					for _, off := range []int16{0, 1, 8, -8} {
						ins := Instruction{Op: uint8(op), Dst: dst, Src: src, Off: off, Imm: imm}
						if !fastValid(ins) {
							continue
						}
						accepted++
						for _, xl := range []bool{false, true} {
							if err := (validator{opts: DecodeOptions{Xlated: xl}}).insn(ins); err != nil {
								t.Fatalf("%+v (xlated %v): fastValid accepts, validator says %v", ins, xl, err)
							}
						}
					}
				}
			}
		}
	}
	for _, ins := range []Instruction{
		{Op: 0x07, Dst: R1, Imm: 5}, {Op: 0xbf, Dst: R1, Src: R10}, {Op: 0xb4, Dst: R2, Imm: -1},
		{Op: 0x79, Dst: R0, Src: R10, Off: -8}, {Op: 0x7b, Dst: R10, Src: R1, Off: -8}, {Op: 0x62, Dst: R10, Off: -4, Imm: 1},
	} {
		if !fastValid(ins) {
			t.Errorf("%+v: not on the fast path", ins)
		}
	}
	for _, ins := range []Instruction{
		{Op: 0x07, Dst: R10, Imm: 5}, {Op: 0x37, Dst: R1, Imm: 0}, {Op: 0xbf, Dst: R1, Src: R1, Off: 1, Imm: 1},
		{Op: 0x79, Dst: R10, Src: R1}, {Op: 0x7b, Dst: R1, Src: RAX}, {Op: 0xd4, Dst: R1, Imm: 16},
	} {
		if fastValid(ins) {
			t.Errorf("%+v: on the fast path", ins)
		}
	}
	if accepted < 5000 {
		t.Fatalf("fastValid accepts only %d cases", accepted)
	}
}
