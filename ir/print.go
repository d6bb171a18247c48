package ir

import "fmt"

// Format returns the text of instruction i in the kernel's verifier-log
// syntax. (Placeholder until the full printer lands: opcode and fields.)
func (p *Program) Format(i int) string {
	ins := p.Insns[i]
	return fmt.Sprintf("(%02x) dst=%v src=%v off=%d imm=%d", ins.Op, ins.Dst, ins.Src, ins.Off, ins.Imm)
}
