package vm

import (
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// FixupsPass ("vm-fixups") is the vm's fallback for the verifier rewrites
// that make x86 division and cmpxchg safe, used by DefaultPipeline only
// while no "fixups" / "zext" pass is registered. It writes the patchlets of
// Linux 6.18's do_misc_fixups (guards for division and modulo by zero and
// for INT_MIN / -1, which would raise #DE on x86) and the zero-extension of
// r0 after a 32-bit cmpxchg (opt_subreg_zext_lo32_rnd_hi32). An immediate
// divisor of 0, which the verifier rejects, gets the run-time semantics of
// RFC 9669 (div: 0, mod: dst unchanged).
type FixupsPass struct {
	// Div and CmpXchg select the two parts.
	Div, CmpXchg bool
}

// Name implements pipeline.Pass.
func (FixupsPass) Name() string { return "vm-fixups" }

// Describe implements pipeline.Describer.
func (FixupsPass) Describe() string {
	return "vm fallback: div/mod by zero and INT_MIN/-1 guards, zext after 32-bit cmpxchg"
}

func aluOp(is64 bool, op ir.ALUOp, src ir.Source) uint8 {
	c := ir.ClassALU
	if is64 {
		c = ir.ClassALU64
	}
	return uint8(c) | uint8(op) | uint8(src)
}

func jmpOp(is64 bool, op ir.JumpOp) uint8 {
	c := ir.ClassJMP32
	if is64 {
		c = ir.ClassJMP
	}
	return uint8(c) | uint8(op) | uint8(ir.SourceK)
}

var (
	ja1 = ir.Instruction{Op: ir.OpJA, Off: 1}
)

func mov32Reg(r ir.Register) ir.Instruction {
	return ir.Instruction{Op: aluOp(false, ir.ALUMov, ir.SourceX), Dst: r, Src: r}
}

// divPatch returns the replacement of a division or modulo, or nil.
func divPatch(ins ir.Instruction) []ir.Instruction {
	c := ins.Class()
	if !c.IsALU() || (ins.ALUOp() != ir.ALUDiv && ins.ALUOp() != ir.ALUMod) {
		return nil
	}
	is64 := c == ir.ClassALU64
	isDiv := ins.ALUOp() == ir.ALUDiv
	signed := ins.Off == 1
	dst := ins.Dst
	if ins.Source() == ir.SourceK {
		switch {
		case ins.Imm == 0 && isDiv:
			return []ir.Instruction{{Op: aluOp(is64, ir.ALUMov, ir.SourceK), Dst: dst}}
		case ins.Imm == 0:
			if is64 {
				return []ir.Instruction{{Op: ir.OpJA}} // dst unchanged
			}
			return []ir.Instruction{mov32Reg(dst)}
		case signed && ins.Imm == -1 && isDiv:
			return []ir.Instruction{{Op: aluOp(is64, ir.ALUNeg, ir.SourceK), Dst: dst}}
		case signed && ins.Imm == -1:
			return []ir.Instruction{{Op: aluOp(false, ir.ALUMov, ir.SourceK), Dst: dst}}
		}
		return nil
	}
	src := ins.Src
	switch {
	case signed && isDiv: // chk_and_sdiv
		return []ir.Instruction{
			{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: ir.RAX, Src: src},
			{Op: aluOp(is64, ir.ALUAdd, ir.SourceK), Dst: ir.RAX, Imm: 1},
			{Op: jmpOp(is64, ir.JumpJGT), Dst: ir.RAX, Off: 4, Imm: 1},
			{Op: jmpOp(is64, ir.JumpJEQ), Dst: ir.RAX, Off: 1, Imm: 0},
			{Op: aluOp(is64, ir.ALUMov, ir.SourceK), Dst: dst},
			{Op: aluOp(is64, ir.ALUNeg, ir.SourceK), Dst: dst},
			ja1,
			ins,
		}
	case signed: // chk_and_smod
		off := int16(3)
		if !is64 {
			off = 4
		}
		p := []ir.Instruction{
			{Op: aluOp(true, ir.ALUMov, ir.SourceX), Dst: ir.RAX, Src: src},
			{Op: aluOp(is64, ir.ALUAdd, ir.SourceK), Dst: ir.RAX, Imm: 1},
			{Op: jmpOp(is64, ir.JumpJGT), Dst: ir.RAX, Off: 3, Imm: 1},
			{Op: jmpOp(is64, ir.JumpJEQ), Dst: ir.RAX, Off: off, Imm: 1},
			{Op: aluOp(false, ir.ALUMov, ir.SourceK), Dst: dst},
			ja1,
			ins,
		}
		if !is64 {
			p = append(p, ja1, mov32Reg(dst))
		}
		return p
	case isDiv: // chk_and_div
		return []ir.Instruction{
			{Op: jmpOp(is64, ir.JumpJNE), Dst: src, Off: 2},
			{Op: aluOp(false, ir.ALUXor, ir.SourceX), Dst: dst, Src: dst},
			ja1,
			ins,
		}
	default: // chk_and_mod
		off := int16(1)
		if !is64 {
			off = 2
		}
		p := []ir.Instruction{
			{Op: jmpOp(is64, ir.JumpJEQ), Dst: src, Off: off},
			ins,
		}
		if !is64 {
			p = append(p, ja1, mov32Reg(dst))
		}
		return p
	}
}

// Run implements pipeline.Pass.
func (fp FixupsPass) Run(p *ir.Program, _ *pipeline.Context) error {
	for i := 0; i < len(p.Insns); i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		var repl []ir.Instruction
		if fp.Div {
			repl = divPatch(ins)
		}
		if fp.CmpXchg && ins.IsAtomic() && ins.Imm == ir.AtomicCmpXchg && ins.Size() == ir.SizeW {
			repl = []ir.Instruction{ins, {Op: aluOp(false, ir.ALUMov, ir.SourceX), Dst: ir.R0, Src: ir.R0, Imm: 1}}
		}
		if repl == nil {
			continue
		}
		if err := p.Patch(i, repl); err != nil {
			return err
		}
		i += len(repl) - 1
	}
	return nil
}
