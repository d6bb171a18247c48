package passes

import "github.com/bpfc/bpfc/ir"

// stripRnd removes the BPF_F_TEST_RND_HI32 patches (r11 = rnd; r11 <<= 32;
// rX |= r11) from an xlated program and reports, per remaining instruction,
// whether such a patch followed it.
func stripRnd(p *ir.Program) ([]ir.Instruction, []bool) {
	var out []ir.Instruction
	var rnd []bool
	for i := 0; i < p.Len(); i++ {
		ins := p.Insns[i]
		if i+2 < p.Len() && ins.Op == 0xb7 && ins.Dst == ir.RAX &&
			p.Insns[i+1].Op == 0x67 && p.Insns[i+1].Dst == ir.RAX && p.Insns[i+1].Imm == 32 &&
			p.Insns[i+2].Op == 0x4f && p.Insns[i+2].Src == ir.RAX && len(rnd) > 0 {
			rnd[len(rnd)-1] = true
			i += 2
			continue
		}
		out = append(out, ins)
		rnd = append(rnd, false)
	}
	return out, rnd
}

// decodeXlated decodes a kernel xlated dump into the form our passes
// produce: a bpf-to-bpf call's distance moves from off (where the kernel
// keeps it after jit_subprogs) back to imm.
func decodeXlated(b []byte) (*ir.Program, error) {
	b = append([]byte(nil), b...)
	for i := 0; i+8 <= len(b); i += 8 {
		if b[i] == ir.OpCall && b[i+1]>>4 == uint8(ir.CallLocal) {
			off := int32(int16(uint16(b[i+2]) | uint16(b[i+3])<<8))
			b[i+2], b[i+3] = 0, 0
			b[i+4], b[i+5], b[i+6], b[i+7] = byte(off), byte(off>>8), byte(off>>16), byte(off>>24)
		}
	}
	return ir.DecodeWith(b, ir.DecodeOptions{Xlated: true})
}
