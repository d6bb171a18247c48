package asm

import (
	"fmt"
	"strings"

	"github.com/bpfc/bpfc/ir"
)

// Format writes p as assembly text in the conformance syntax, one
// instruction a line, with labels "L<slot>:" before jump and local-call
// targets. Instructions the syntax cannot express are written as
// ".insn 0x<u64>" lines (one per slot). Parse/Assemble read it back to the
// same instructions.
func Format(p *ir.Program) string {
	n := len(p.Insns)
	type line struct {
		slot   int
		text   string // without target
		target int    // slot the instruction refers to, or -1
		hasTgt bool
		nslots int
	}
	var lines []line
	starts := make([]bool, n+1)
	for i := 0; i < n; {
		ins := p.Insns[i]
		l := line{slot: i, target: -1, nslots: 1}
		if ins.IsLdImm64() && i+1 < n {
			second := p.Insns[i+1]
			txt := fmt.Sprintf("lddw %s, 0x%x", reg(ins.Dst), ir.Imm64(ins, second))
			if checkLine(txt, []ir.Instruction{ins, second}) {
				l.text, l.nslots = txt, 2
			}
		} else if txt, hasTarget, _ := insnText(ins); txt != "" {
			if hasTarget {
				d := ins.JumpDelta()
				if checkLine(txt+" "+rel(d), []ir.Instruction{ins}) {
					l.text, l.hasTgt = txt, true
					l.target = i + 1 + int(d)
				}
			} else if checkLine(txt, []ir.Instruction{ins}) {
				l.text = txt
			}
		}
		if l.text == "" {
			l.text = rawLine(ins)
		}
		starts[i] = true
		lines = append(lines, l)
		i += l.nslots
	}
	// Label every target that starts a line; others stay relative.
	labelled := map[int]bool{}
	for _, l := range lines {
		if l.hasTgt && l.target >= 0 && l.target < n && starts[l.target] {
			labelled[l.target] = true
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if labelled[l.slot] {
			fmt.Fprintf(&b, "L%d:\n", l.slot)
		}
		b.WriteString(l.text)
		if l.hasTgt {
			t := l.target
			if labelled[t] {
				fmt.Fprintf(&b, " L%d", t)
			} else {
				b.WriteString(" " + rel(int64(t-l.slot-1)))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func rel(d int64) string {
	if d >= 0 {
		return fmt.Sprintf("+%d", d)
	}
	return fmt.Sprintf("%d", d)
}

func rawLine(ins ir.Instruction) string { return fmt.Sprintf(".insn 0x%016x", slotToU64(ins)) }

// checkLine parses txt and reports whether it gives exactly want.
func checkLine(txt string, want []ir.Instruction) bool {
	pr, err := parseInsn(txt)
	if err != nil || pr.label != "" || len(pr.insns) != len(want) {
		return false
	}
	for k := range want {
		if pr.insns[k] != want[k] {
			return false
		}
	}
	return true
}

func reg(r ir.Register) string { return fmt.Sprintf("%%r%d", uint8(r)) }

func imm(v int32) string {
	if v > -4096 && v < 4096 {
		return fmt.Sprintf("%d", v)
	}
	return fmt.Sprintf("0x%x", uint32(v))
}

func mem(r ir.Register, off int16) string {
	switch {
	case off == 0:
		return fmt.Sprintf("[%s]", reg(r))
	case off > 0:
		return fmt.Sprintf("[%s+%d]", reg(r), off)
	}
	return fmt.Sprintf("[%s%d]", reg(r), off)
}

var sizeName = map[ir.Size]string{ir.SizeB: "b", ir.SizeH: "h", ir.SizeW: "w", ir.SizeDW: "dw"}

var aluName = map[ir.ALUOp]string{
	ir.ALUAdd: "add", ir.ALUSub: "sub", ir.ALUMul: "mul", ir.ALUDiv: "div", ir.ALUOr: "or",
	ir.ALUAnd: "and", ir.ALULsh: "lsh", ir.ALURsh: "rsh", ir.ALUMod: "mod", ir.ALUXor: "xor",
	ir.ALUMov: "mov", ir.ALUArsh: "arsh",
}

var jumpName = map[ir.JumpOp]string{
	ir.JumpJEQ: "jeq", ir.JumpJGT: "jgt", ir.JumpJGE: "jge", ir.JumpJSET: "jset", ir.JumpJNE: "jne",
	ir.JumpJSGT: "jsgt", ir.JumpJSGE: "jsge", ir.JumpJLT: "jlt", ir.JumpJLE: "jle", ir.JumpJSLT: "jslt",
	ir.JumpJSLE: "jsle",
}

var atomicName = map[int32]string{
	ir.AtomicAdd: "add", ir.AtomicOr: "or", ir.AtomicAnd: "and", ir.AtomicXor: "xor",
	ir.AtomicAdd | ir.AtomicFetch: "fetch add", ir.AtomicOr | ir.AtomicFetch: "fetch or",
	ir.AtomicAnd | ir.AtomicFetch: "fetch and", ir.AtomicXor | ir.AtomicFetch: "fetch xor",
	ir.AtomicXchg: "xchg", ir.AtomicCmpXchg: "cmpxchg",
}

// insnText renders one slot. For instructions with a target it returns the
// text up to the target (ending in "," or the bare mnemonic) and
// hasTarget; the caller appends a label or +N. It returns "" for slots the
// syntax cannot express; the caller checks every result by parsing it.
func insnText(ins ir.Instruction) (text string, hasTarget, inImm bool) {
	switch ins.Class() {
	case ir.ClassALU, ir.ClassALU64:
		suffix := ""
		if ins.Class() == ir.ClassALU {
			suffix = "32"
		}
		op := ins.ALUOp()
		switch op {
		case ir.ALUEnd:
			switch {
			case ins.Class() == ir.ClassALU64:
				return fmt.Sprintf("bswap%d %s", ins.Imm, reg(ins.Dst)), false, false
			case ins.Source() == ir.EndToBE:
				return fmt.Sprintf("be%d %s", ins.Imm, reg(ins.Dst)), false, false
			}
			return fmt.Sprintf("le%d %s", ins.Imm, reg(ins.Dst)), false, false
		case ir.ALUNeg:
			return fmt.Sprintf("neg%s %s", suffix, reg(ins.Dst)), false, false
		}
		name, ok := aluName[op]
		if !ok {
			return "", false, false
		}
		if op == ir.ALUMov && ins.Source() == ir.SourceX && ins.Off != 0 {
			to := "64"
			if ins.Class() == ir.ClassALU {
				to = "32"
			}
			return fmt.Sprintf("movsx%d%s %s, %s", ins.Off, to, reg(ins.Dst), reg(ins.Src)), false, false
		}
		if (op == ir.ALUDiv || op == ir.ALUMod) && ins.Off == ir.OffSigned {
			name = "s" + name
		}
		if ins.Source() == ir.SourceX {
			return fmt.Sprintf("%s%s %s, %s", name, suffix, reg(ins.Dst), reg(ins.Src)), false, false
		}
		return fmt.Sprintf("%s%s %s, %s", name, suffix, reg(ins.Dst), imm(ins.Imm)), false, false

	case ir.ClassJMP, ir.ClassJMP32:
		switch {
		case ins.Op == ir.OpExit:
			return "exit", false, false
		case ins.Op == ir.OpJA:
			return "ja", true, false
		case ins.Op == ir.OpGotoL:
			return "ja32", true, true
		case ins.Op == ir.OpCallX:
			return "call " + reg(ins.Dst), false, false
		case ins.Op == ir.OpCall:
			switch ins.Src {
			case ir.CallHelper:
				return fmt.Sprintf("call %d", ins.Imm), false, false
			case ir.CallLocal:
				return "call local", true, true
			case ir.CallKfunc:
				return fmt.Sprintf("call runtime %d", ins.Imm), false, false
			}
			return "", false, false
		}
		name, ok := jumpName[ins.JumpOp()]
		if !ok {
			return "", false, false
		}
		if ins.Class() == ir.ClassJMP32 {
			name += "32"
		}
		if ins.Source() == ir.SourceX {
			return fmt.Sprintf("%s %s, %s,", name, reg(ins.Dst), reg(ins.Src)), true, false
		}
		return fmt.Sprintf("%s %s, %s,", name, reg(ins.Dst), imm(ins.Imm)), true, false

	case ir.ClassLDX:
		sz := sizeName[ins.Size()]
		switch ins.Mode() {
		case ir.ModeMEM:
			return fmt.Sprintf("ldx%s %s, %s", sz, reg(ins.Dst), mem(ins.Src, ins.Off)), false, false
		case ir.ModeMEMSX:
			return fmt.Sprintf("ldxs%s %s, %s", sz, reg(ins.Dst), mem(ins.Src, ins.Off)), false, false
		}
	case ir.ClassST:
		if ins.Mode() == ir.ModeMEM {
			return fmt.Sprintf("st%s %s, %s", sizeName[ins.Size()], mem(ins.Dst, ins.Off), imm(ins.Imm)), false, false
		}
	case ir.ClassSTX:
		switch ins.Mode() {
		case ir.ModeMEM:
			return fmt.Sprintf("stx%s %s, %s", sizeName[ins.Size()], mem(ins.Dst, ins.Off), reg(ins.Src)), false, false
		case ir.ModeATOMIC:
			name, ok := atomicName[ins.Imm]
			if !ok {
				return "", false, false
			}
			if ins.Size() == ir.SizeW {
				name += "32"
			}
			return fmt.Sprintf("lock %s %s, %s", name, mem(ins.Dst, ins.Off), reg(ins.Src)), false, false
		}
	}
	return "", false, false
}

// FormatFile writes f as a conformance test file: an asm section (or, when
// f has raw bytes, also a raw section), mem as hex bytes 16 a line, the
// result and the expected error. Parse reads it back to the same File
// contents.
func FormatFile(f *File) string {
	var b strings.Builder
	if f.Asm != nil || (f.Program != nil && f.Raw == nil) {
		p := f.Asm
		if p == nil {
			p = f.Program
		}
		b.WriteString("-- asm\n")
		b.WriteString(Format(p))
	}
	if f.Raw != nil && f.Program != nil {
		b.WriteString("-- raw\n")
		b.WriteString(RawText(f.Program))
	}
	if len(f.Mem) > 0 {
		b.WriteString("-- mem\n")
		for k, c := range f.Mem {
			switch {
			case k%16 == 15 || k == len(f.Mem)-1:
				fmt.Fprintf(&b, "%02x\n", c)
			default:
				fmt.Fprintf(&b, "%02x ", c)
			}
		}
	}
	if f.HasResult {
		fmt.Fprintf(&b, "-- result\n0x%x\n", f.Result)
	}
	if f.Error != "" {
		fmt.Fprintf(&b, "-- error\n%s\n", f.Error)
	}
	return b.String()
}
