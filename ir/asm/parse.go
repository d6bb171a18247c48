package asm

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bpfc/bpfc/ir"
)

// parsed is the result of one instruction line.
type parsed struct {
	insns []ir.Instruction // one slot, or two for lddw
	label string           // target label still to resolve ("" when none)
	inImm bool             // the target goes into imm (ja32, call local) rather than off
}

type pending struct {
	slot  int
	line  int
	label string
	inImm bool
}

// assemble runs both passes over the lines of an asm section.
func assemble(lines []srcLine) (*ir.Program, error) {
	var insns []ir.Instruction
	labels := map[string]int{}
	labelLine := map[string]int{}
	var refs []pending
	firstExit := -1
	for _, l := range lines {
		text := l.text
		// Leading labels: "name:" possibly followed by an instruction.
		for {
			i := strings.IndexByte(text, ':')
			if i < 0 || !isIdent(strings.TrimSpace(text[:i])) {
				break
			}
			name := strings.TrimSpace(text[:i])
			if prev, ok := labelLine[name]; ok {
				return nil, &Error{l.n, fmt.Sprintf("label %q already defined at line %d", name, prev)}
			}
			labels[name] = len(insns)
			labelLine[name] = l.n
			text = strings.TrimSpace(text[i+1:])
		}
		if text == "" {
			continue
		}
		pr, err := parseInsn(text)
		if err != nil {
			return nil, &Error{l.n, err.Error()}
		}
		if pr.label != "" {
			refs = append(refs, pending{slot: len(insns), line: l.n, label: pr.label, inImm: pr.inImm})
		}
		if firstExit < 0 && len(pr.insns) == 1 && pr.insns[0].IsExit() {
			firstExit = len(insns)
		}
		insns = append(insns, pr.insns...)
		if len(insns) > ir.MaxInsns {
			return nil, &Error{l.n, fmt.Sprintf("more than %d instructions", ir.MaxInsns)}
		}
	}
	if _, ok := labels["exit"]; !ok && firstExit >= 0 {
		labels["exit"] = firstExit
	}
	for _, r := range refs {
		t, ok := labels[r.label]
		if !ok {
			return nil, &Error{r.line, fmt.Sprintf("undefined label %q", r.label)}
		}
		d := t - r.slot - 1
		if r.inImm {
			insns[r.slot].Imm = int32(d)
		} else {
			if d < math.MinInt16 || d > math.MaxInt16 {
				return nil, &Error{r.line, fmt.Sprintf("jump to %q is %d instructions away, more than an off field holds", r.label, d)}
			}
			insns[r.slot].Off = int16(d)
		}
	}
	if len(insns) == 0 {
		return nil, &Error{1, "no instructions"}
	}
	return ir.NewProgram("", insns), nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// tokenize splits an instruction line at blanks and commas, keeping a
// bracketed memory operand in one piece even if it contains blanks.
func tokenize(s string) ([]string, error) {
	var out []string
	f := strings.Fields(strings.ReplaceAll(s, ",", " "))
	for i := 0; i < len(f); i++ {
		t := f[i]
		if strings.HasPrefix(t, "[") && !strings.Contains(t, "]") {
			for i+1 < len(f) && !strings.Contains(t, "]") {
				i++
				t += f[i]
			}
			if !strings.Contains(t, "]") {
				return nil, fmt.Errorf("unclosed memory operand %q", t)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

var aluOps = map[string]ir.ALUOp{
	"add": ir.ALUAdd, "sub": ir.ALUSub, "mul": ir.ALUMul, "div": ir.ALUDiv,
	"or": ir.ALUOr, "and": ir.ALUAnd, "lsh": ir.ALULsh, "rsh": ir.ALURsh,
	"mod": ir.ALUMod, "xor": ir.ALUXor, "mov": ir.ALUMov, "arsh": ir.ALUArsh,
	"sdiv": ir.ALUDiv, "smod": ir.ALUMod,
}

var jumpOps = map[string]ir.JumpOp{
	"jeq": ir.JumpJEQ, "jgt": ir.JumpJGT, "jge": ir.JumpJGE, "jset": ir.JumpJSET,
	"jne": ir.JumpJNE, "jsgt": ir.JumpJSGT, "jsge": ir.JumpJSGE, "jlt": ir.JumpJLT,
	"jle": ir.JumpJLE, "jslt": ir.JumpJSLT, "jsle": ir.JumpJSLE,
}

var sizeSuffix = map[string]ir.Size{"b": ir.SizeB, "h": ir.SizeH, "w": ir.SizeW, "dw": ir.SizeDW}

func hasSize(s string) bool { _, ok := sizeSuffix[s]; return ok }

var atomicOps = map[string]int32{
	"add": ir.AtomicAdd, "or": ir.AtomicOr, "and": ir.AtomicAnd, "xor": ir.AtomicXor,
	"xchg": ir.AtomicXchg, "cmpxchg": ir.AtomicCmpXchg,
}

func want(ops []string, n int, mn string) error {
	if len(ops) != n {
		return fmt.Errorf("%s takes %d operands, got %d", mn, n, len(ops))
	}
	return nil
}

// parseInsn parses one instruction (no label, no comment).
func parseInsn(text string) (parsed, error) {
	toks, err := tokenize(text)
	if err != nil {
		return parsed{}, err
	}
	if len(toks) == 0 {
		return parsed{}, fmt.Errorf("missing mnemonic in %q", text)
	}
	mn, ops := strings.ToLower(toks[0]), toks[1:]
	one := func(ins ir.Instruction) (parsed, error) { return parsed{insns: []ir.Instruction{ins}}, nil }

	switch {
	case mn == ".insn":
		if err := want(ops, 1, mn); err != nil {
			return parsed{}, err
		}
		v, err := parseInt64Wide(ops[0])
		if err != nil {
			return parsed{}, err
		}
		return one(slotFromU64(v))

	case mn == "exit":
		if err := want(ops, 0, mn); err != nil {
			return parsed{}, err
		}
		return one(ir.Instruction{Op: ir.OpExit})

	case mn == "lddw":
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return parsed{}, err
		}
		v, err := parseInt64Wide(ops[1])
		if err != nil {
			return parsed{}, err
		}
		s := ir.LdImm64(dst, v)
		return parsed{insns: s[:]}, nil

	case mn == "ja" || mn == "ja32":
		if err := want(ops, 1, mn); err != nil {
			return parsed{}, err
		}
		ins := ir.Instruction{Op: ir.OpJA}
		if mn == "ja32" {
			ins.Op = ir.OpGotoL
		}
		return target(ins, ops[0], mn == "ja32")

	case mn == "call":
		return parseCall(ops)

	case mn == "lock":
		return parseLock(ops)

	case strings.HasPrefix(mn, "le") || strings.HasPrefix(mn, "be") || strings.HasPrefix(mn, "swap") || strings.HasPrefix(mn, "bswap"):
		var op uint8
		var width string
		switch {
		case strings.HasPrefix(mn, "le"):
			op, width = uint8(ir.ClassALU)|uint8(ir.ALUEnd)|uint8(ir.EndToLE), mn[2:]
		case strings.HasPrefix(mn, "be"):
			op, width = uint8(ir.ClassALU)|uint8(ir.ALUEnd)|uint8(ir.EndToBE), mn[2:]
		case strings.HasPrefix(mn, "swap"):
			op, width = uint8(ir.ClassALU64)|uint8(ir.ALUEnd), mn[4:]
		default:
			op, width = uint8(ir.ClassALU64)|uint8(ir.ALUEnd), mn[5:]
		}
		if width != "16" && width != "32" && width != "64" {
			return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
		}
		if err := want(ops, 1, mn); err != nil {
			return parsed{}, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return parsed{}, err
		}
		w, _ := strconv.Atoi(width)
		return one(ir.Instruction{Op: op, Dst: dst, Imm: int32(w)})

	case strings.HasPrefix(mn, "ldx"):
		name := mn[3:]
		mode := ir.ModeMEM
		if strings.HasPrefix(name, "s") && name != "" {
			mode, name = ir.ModeMEMSX, name[1:]
		}
		size, ok := sizeSuffix[name]
		if !ok || (mode == ir.ModeMEMSX && size == ir.SizeDW) {
			return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
		}
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return parsed{}, err
		}
		src, off, err := parseMem(ops[1])
		if err != nil {
			return parsed{}, err
		}
		return one(ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(size) | uint8(mode), Dst: dst, Src: src, Off: off})

	case strings.HasPrefix(mn, "stx"):
		size, ok := sizeSuffix[mn[3:]]
		if !ok {
			return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
		}
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		dst, off, err := parseMem(ops[0])
		if err != nil {
			return parsed{}, err
		}
		src, err := parseReg(ops[1])
		if err != nil {
			return parsed{}, err
		}
		return one(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(ir.ModeMEM), Dst: dst, Src: src, Off: off})

	case strings.HasPrefix(mn, "st") && hasSize(mn[2:]):
		size := sizeSuffix[mn[2:]]
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		dst, off, err := parseMem(ops[0])
		if err != nil {
			return parsed{}, err
		}
		imm, err := parseImm32(ops[1])
		if err != nil {
			return parsed{}, err
		}
		return one(ir.Instruction{Op: uint8(ir.ClassST) | uint8(size) | uint8(ir.ModeMEM), Dst: dst, Off: off, Imm: imm})

	case strings.HasPrefix(mn, "movsx"):
		// movsx<from><to>: movsx832, movsx864, movsx1632, movsx1664, movsx3264.
		var class ir.Class
		var from string
		switch {
		case strings.HasSuffix(mn, "32"):
			class, from = ir.ClassALU, mn[5:len(mn)-2]
		case strings.HasSuffix(mn, "64"):
			class, from = ir.ClassALU64, mn[5:len(mn)-2]
		default:
			return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
		}
		if from != "8" && from != "16" && !(from == "32" && class == ir.ClassALU64) {
			return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
		}
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return parsed{}, err
		}
		src, err := parseReg(ops[1])
		if err != nil {
			return parsed{}, fmt.Errorf("%s needs a source register: %v", mn, err)
		}
		off, _ := strconv.Atoi(from)
		return one(ir.Instruction{Op: uint8(class) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: dst, Src: src, Off: int16(off)})
	}

	// Plain ALU and conditional jumps, with an optional 32/64 suffix.
	base, class32, class64 := mn, false, false
	if strings.HasSuffix(mn, "32") {
		base, class32 = mn[:len(mn)-2], true
	} else if strings.HasSuffix(mn, "64") {
		base, class64 = mn[:len(mn)-2], true
	}
	if base == "neg" {
		if err := want(ops, 1, mn); err != nil {
			return parsed{}, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return parsed{}, err
		}
		class := ir.ClassALU64
		if class32 {
			class = ir.ClassALU
		}
		return one(ir.Instruction{Op: uint8(class) | uint8(ir.ALUNeg), Dst: dst})
	}
	if aop, ok := aluOps[base]; ok {
		if err := want(ops, 2, mn); err != nil {
			return parsed{}, err
		}
		class := ir.ClassALU64
		if class32 {
			class = ir.ClassALU
		}
		ins := ir.Instruction{Op: uint8(class) | uint8(aop)}
		if base == "sdiv" || base == "smod" {
			ins.Off = ir.OffSigned
		}
		var err error
		if ins.Dst, err = parseReg(ops[0]); err != nil {
			return parsed{}, err
		}
		if err := operand(&ins, ops[1]); err != nil {
			return parsed{}, err
		}
		return one(ins)
	}
	if jop, ok := jumpOps[base]; ok && !class64 {
		if err := want(ops, 3, mn); err != nil {
			return parsed{}, err
		}
		class := ir.ClassJMP
		if class32 {
			class = ir.ClassJMP32
		}
		ins := ir.Instruction{Op: uint8(class) | uint8(jop)}
		var err error
		if ins.Dst, err = parseReg(ops[0]); err != nil {
			return parsed{}, err
		}
		if err := operand(&ins, ops[1]); err != nil {
			return parsed{}, err
		}
		return target(ins, ops[2], false)
	}
	return parsed{}, fmt.Errorf("unknown mnemonic %q", mn)
}

// operand sets the second operand of an ALU or jump: a register (source X)
// or an immediate (source K).
func operand(ins *ir.Instruction, s string) error {
	if isReg(s) {
		r, err := parseReg(s)
		if err != nil {
			return err
		}
		ins.Op |= uint8(ir.SourceX)
		ins.Src = r
		return nil
	}
	v, err := parseImm32(s)
	if err != nil {
		return err
	}
	ins.Imm = v
	return nil
}

// target sets a jump target: +N / -N now, a label later.
func target(ins ir.Instruction, s string, inImm bool) (parsed, error) {
	pr := parsed{insns: []ir.Instruction{ins}, inImm: inImm}
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		v, err := parseSigned(s)
		if err != nil {
			return parsed{}, err
		}
		if inImm {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return parsed{}, fmt.Errorf("jump offset %s does not fit in 32 bits", s)
			}
			pr.insns[0].Imm = int32(v)
		} else {
			if v < math.MinInt16 || v > math.MaxInt16 {
				return parsed{}, fmt.Errorf("jump offset %s does not fit in 16 bits", s)
			}
			pr.insns[0].Off = int16(v)
		}
		return pr, nil
	}
	if !isIdent(s) {
		return parsed{}, fmt.Errorf("bad jump target %q", s)
	}
	pr.label = s
	return pr, nil
}

// parseCall handles "call N" / "call %rN" (callx) / "call helper X" /
// "call local L|+N" / "call runtime N" (kfunc by BTF id).
func parseCall(ops []string) (parsed, error) {
	mode := "helper"
	switch len(ops) {
	case 1:
	case 2:
		mode, ops = ops[0], ops[1:]
	default:
		return parsed{}, fmt.Errorf("call takes 1 or 2 operands, got %d", len(ops))
	}
	arg := ops[0]
	switch mode {
	case "helper":
		if isReg(arg) {
			r, err := parseReg(arg)
			if err != nil {
				return parsed{}, err
			}
			return parsed{insns: []ir.Instruction{{Op: ir.OpCallX, Dst: r}}}, nil
		}
		imm, err := parseImm32(arg)
		if err != nil {
			return parsed{}, err
		}
		return parsed{insns: []ir.Instruction{{Op: ir.OpCall, Src: ir.CallHelper, Imm: imm}}}, nil
	case "local":
		return target(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal}, arg, true)
	case "runtime":
		imm, err := parseImm32(arg)
		if err != nil {
			return parsed{}, err
		}
		return parsed{insns: []ir.Instruction{{Op: ir.OpCall, Src: ir.CallKfunc, Imm: imm}}}, nil
	}
	return parsed{}, fmt.Errorf("unknown call mode %q (want helper, local or runtime)", mode)
}

// parseLock handles "lock [fetch] op[32] [%rD+off], %rS".
func parseLock(ops []string) (parsed, error) {
	fetch := false
	if len(ops) > 0 && ops[0] == "fetch" {
		fetch, ops = true, ops[1:]
	}
	if len(ops) != 3 {
		return parsed{}, fmt.Errorf("lock takes [fetch] op [mem], reg")
	}
	name := ops[0]
	size := ir.SizeDW
	if strings.HasSuffix(name, "32") {
		name, size = name[:len(name)-2], ir.SizeW
	} else if strings.HasSuffix(name, "64") {
		name = name[:len(name)-2]
	}
	imm, ok := atomicOps[name]
	if !ok {
		return parsed{}, fmt.Errorf("unknown atomic operation %q", ops[0])
	}
	if fetch {
		imm |= ir.AtomicFetch
	}
	dst, off, err := parseMem(ops[1])
	if err != nil {
		return parsed{}, err
	}
	src, err := parseReg(ops[2])
	if err != nil {
		return parsed{}, err
	}
	return parsed{insns: []ir.Instruction{{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(ir.ModeATOMIC), Dst: dst, Src: src, Off: off, Imm: imm}}}, nil
}

func isReg(s string) bool {
	return strings.HasPrefix(s, "%") || (len(s) >= 2 && s[0] == 'r' && s[1] >= '0' && s[1] <= '9')
}

// parseReg reads %rN (or rN), N in 0..15: the encoding holds 4 bits and the
// suite uses r11..r15 in negative tests; validation is left to ir.Validate.
func parseReg(s string) (ir.Register, error) {
	t := strings.TrimPrefix(s, "%")
	if !strings.HasPrefix(t, "r") {
		return 0, fmt.Errorf("bad register %q", s)
	}
	n, err := strconv.Atoi(t[1:])
	if err != nil || n < 0 || n > 15 || t[1:] != strconv.Itoa(n) {
		return 0, fmt.Errorf("bad register %q", s)
	}
	return ir.Register(n), nil
}

// parseMem reads [%rN], [%rN+off] or [%rN-off].
func parseMem(s string) (ir.Register, int16, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return 0, 0, fmt.Errorf("bad memory operand %q", s)
	}
	in := s[1 : len(s)-1]
	i := strings.IndexAny(in, "+-")
	regText, offText := in, ""
	if i >= 0 {
		regText, offText = in[:i], in[i:]
	}
	r, err := parseReg(strings.TrimSpace(regText))
	if err != nil {
		return 0, 0, fmt.Errorf("bad memory operand %q: %v", s, err)
	}
	if offText == "" {
		return r, 0, nil
	}
	v, err := parseSigned(offText)
	if err != nil || v < math.MinInt16 || v > math.MaxInt16 {
		return 0, 0, fmt.Errorf("bad memory offset in %q", s)
	}
	return r, int16(v), nil
}

// splitNum returns the sign, digits and base of a number: 0x-hex or decimal.
func splitNum(s string) (neg bool, digits string, base int, err error) {
	t := s
	if strings.HasPrefix(t, "-") {
		neg, t = true, t[1:]
	} else if strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	base = 10
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X") {
		base, t = 16, t[2:]
	}
	if t == "" || strings.ContainsAny(t, "_+-") {
		return false, "", 0, fmt.Errorf("bad number %q", s)
	}
	return neg, t, base, nil
}

// parseSigned reads a number in the int64 range.
func parseSigned(s string) (int64, error) {
	neg, d, base, err := splitNum(s)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(d, base, 64)
	if err != nil || (!neg && v > math.MaxInt64) || (neg && v > 1<<63) {
		return 0, fmt.Errorf("bad number %q", s)
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// parseInt64Wide reads a 64-bit value given either unsigned (up to 2^64-1)
// or signed (down to -2^63), returning its two's complement bits.
func parseInt64Wide(s string) (uint64, error) {
	neg, d, base, err := splitNum(s)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(d, base, 64)
	if err != nil || (neg && v > 1<<63) {
		return 0, fmt.Errorf("bad number %q: not a 64-bit value", s)
	}
	if neg {
		return -v, nil
	}
	return v, nil
}

// parseImm32 reads an immediate given either signed (-2^31..2^31-1) or as
// its unsigned 32-bit pattern (up to 2^32-1).
func parseImm32(s string) (int32, error) {
	v, err := parseSigned(s)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxUint32 {
		return 0, fmt.Errorf("immediate %s does not fit in 32 bits", s)
	}
	return int32(uint32(v)), nil
}
