package asm

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/bpfc/bpfc/ir"
)

// ParseKernel reads the kernel's verifier-log syntax as ir.Program.String
// and `bpftool prog dump xlated` print it: one instruction a line,
// optionally preceded by "N:" and the "(op)" column, optionally followed by
// "; comment". Blank lines and bpftool's "int f(...):" function headers are
// skipped. When a line has the opcode column, the parsed instruction must
// have that opcode.
//
// The syntax loses a few fields, which ParseKernel cannot restore: the
// callee of a kfunc call printed under a symbol name reads as a helper call
// (src 0), a bpftool "call pc+N#sym" reads N into imm, callx (which the
// kernel prints as "call bpf_unspec#0") reads as helper 0, the verifier's
// zero-extension "w1 = w1" reads as a plain mov (imm 0), and ld_imm64 of a
// map by fd_array index or of a BTF id (printed as plain constants) read as
// constants.
func ParseKernel(text string) (*ir.Program, error) {
	var insns []ir.Instruction
	for n, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(strings.TrimRight(line, "\r"))
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			continue
		}
		// "N:" index column.
		if m := kIndex.FindStringSubmatch(s); m != nil {
			s = m[1]
		} else if strings.HasSuffix(s, ":") || strings.HasPrefix(s, "func#") {
			continue // function header or verifier note
		}
		op := -1
		if m := kOpcode.FindStringSubmatch(s); m != nil {
			v, _ := strconv.ParseUint(m[1], 16, 8)
			op, s = int(v), m[2]
		}
		if s == "" || kState.MatchString(s) {
			continue // verifier state line ("0: R1=ctx() R10=fp0")
		}
		got, err := kernelInsn(s)
		if err != nil {
			return nil, &Error{n + 1, err.Error()}
		}
		if op == int(ir.OpCallX) && got[0].Op == ir.OpCall && got[0].Src == ir.CallHelper {
			got[0].Op = ir.OpCallX // callx prints as a helper call; the register is lost
		}
		if op >= 0 && int(got[0].Op) != op {
			return nil, &Error{n + 1, fmt.Sprintf("text reads as opcode 0x%02x, the opcode column says 0x%02x", got[0].Op, op)}
		}
		insns = append(insns, got...)
		if len(insns) > ir.MaxInsns {
			return nil, &Error{n + 1, fmt.Sprintf("more than %d instructions", ir.MaxInsns)}
		}
	}
	if len(insns) == 0 {
		return nil, &Error{1, "no instructions"}
	}
	return ir.NewProgram("", insns), nil
}

var (
	kIndex  = regexp.MustCompile(`^\d+:\s*(.*)$`)
	kOpcode = regexp.MustCompile(`^\(([0-9a-f]{2})\)\s*(.*)$`)
	kState  = regexp.MustCompile(`^(R\d|fp-|frame\d)`)

	kReg    = `([rw])(\d+)`
	kMemRef = `\*\(([us]\d+|\(null\)) \*\)\(r(\d+) ([+-]\d+)\)`
	kNote   = `(?: (probe_mem|probe_memsx|probe_mem32|probe_mem32sx|probe_atomic))?`

	kBswap   = regexp.MustCompile(`^r(\d+) = (bswap|le|be)(\d+) r(\d+)$`)
	kNeg     = regexp.MustCompile(`^` + kReg + ` = -` + kReg + `$`)
	kCast    = regexp.MustCompile(`^r(\d+) = addr_space_cast\(r(\d+), (\d+), (\d+)\)$`)
	kPercpu  = regexp.MustCompile(`^r(\d+) = &\(void __percpu \*\)\(r(\d+)\)$`)
	kALUX    = regexp.MustCompile(`^` + kReg + ` (\S+) (\(s8\)|\(s16\)|\(s32\))?` + kReg + `$`)
	kALUK    = regexp.MustCompile(`^` + kReg + ` (\S+) (-?\d+)$`)
	kStore   = regexp.MustCompile(`^` + kMemRef + ` = (r\d+|-?\d+)` + kNote + `$`)
	kLoad    = regexp.MustCompile(`^r(\d+) = ` + kMemRef + kNote + `$`)
	kLock    = regexp.MustCompile(`^lock ` + kMemRef + ` (\S+) r(\d+)` + kNote + `$`)
	kFetch   = regexp.MustCompile(`^r(\d+) = atomic(64)?_(fetch_add|fetch_and|fetch_or|fetch_xor|xchg)\(\(([us]\d+) \*\)\(r(\d+) ([+-]\d+)\), r(\d+)\)` + kNote + `$`)
	kCmpxchg = regexp.MustCompile(`^r0 = atomic(64)?_cmpxchg\(\(([us]\d+) \*\)\(r(\d+) ([+-]\d+)\), r0, r(\d+)\)` + kNote + `$`)
	kLoadAcq = regexp.MustCompile(`^r(\d+) = load_acquire\(\(([us]\d+) \*\)\(r(\d+) ([+-]\d+)\)\)` + kNote + `$`)
	kStRel   = regexp.MustCompile(`^store_release\(\(([us]\d+) \*\)\(r(\d+) ([+-]\d+)\), r(\d+)\)` + kNote + `$`)
	kLdAbs   = regexp.MustCompile(`^r0 = \*\((u\d+) \*\)skb\[(-?\d+)\]$`)
	kLdInd   = regexp.MustCompile(`^r0 = \*\((u\d+) \*\)skb\[r(\d+) \+ (-?\d+)\]$`)
	kLd64    = regexp.MustCompile(`^r(\d+) = (0x[0-9a-f]+|map\[id:(\d+)\](?:\[0\]\+(\d+))?|map\[idx:(\d+)\]\+(\d+)|subprog\[([+-]\d+)\])$`)
	kCall    = regexp.MustCompile(`^call (pc([+-]\d+)(?:#\S*)?|(\S+)#(-?\d+))$`)
	kGoto    = regexp.MustCompile(`^(goto|gotol|may_goto) pc([+-]\d+)$`)
	kGotox   = regexp.MustCompile(`^gotox r(\d+)$`)
	kCond    = regexp.MustCompile(`^if ` + kReg + ` (\S+) (?:([rw])(\d+)|0x([0-9a-f]+)) goto pc([+-]\d+)$`)
)

var kALUOps = map[string]struct {
	op     ir.ALUOp
	signed bool
}{
	"+=": {ir.ALUAdd, false}, "-=": {ir.ALUSub, false}, "*=": {ir.ALUMul, false}, "/=": {ir.ALUDiv, false},
	"|=": {ir.ALUOr, false}, "&=": {ir.ALUAnd, false}, "<<=": {ir.ALULsh, false}, ">>=": {ir.ALURsh, false},
	"%=": {ir.ALUMod, false}, "^=": {ir.ALUXor, false}, "=": {ir.ALUMov, false}, "s>>=": {ir.ALUArsh, false},
	"s/=": {ir.ALUDiv, true}, "s%=": {ir.ALUMod, true},
}

var kJmpOps = map[string]ir.JumpOp{
	"==": ir.JumpJEQ, ">": ir.JumpJGT, "<": ir.JumpJLT, ">=": ir.JumpJGE, "<=": ir.JumpJLE, "&": ir.JumpJSET,
	"!=": ir.JumpJNE, "s>": ir.JumpJSGT, "s<": ir.JumpJSLT, "s>=": ir.JumpJSGE, "s<=": ir.JumpJSLE,
}

var kSizes = map[string]ir.Size{"u8": ir.SizeB, "u16": ir.SizeH, "u32": ir.SizeW, "u64": ir.SizeDW,
	"s8": ir.SizeB, "s16": ir.SizeH, "s32": ir.SizeW}

// kernelInsn parses the text of one instruction (no columns).
func kernelInsn(s string) ([]ir.Instruction, error) {
	one := func(i ir.Instruction) ([]ir.Instruction, error) { return []ir.Instruction{i}, nil }
	var firstErr error
	num := func(t string, lo, hi int64) int64 {
		v, err := strconv.ParseInt(t, 10, 64)
		if err == nil && (v < lo || v > hi) {
			err = fmt.Errorf("%s is out of range", t)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("bad number %q", t)
		}
		return v
	}
	reg := func(t string) ir.Register { return ir.Register(num(t, 0, 15)) }
	off := func(t string) int16 { return int16(num(t, math.MinInt16, math.MaxInt16)) }
	imm := func(t string) int32 { return int32(num(t, math.MinInt32, math.MaxInt32)) }
	class := func(w string, c32, c64 ir.Class) ir.Class {
		if w == "w" {
			return c32
		}
		return c64
	}
	done := func(insns ...ir.Instruction) ([]ir.Instruction, error) {
		if firstErr != nil {
			return nil, firstErr
		}
		return insns, nil
	}
	probeMode := map[string]ir.Mode{"probe_mem": ir.ModeProbeMem, "probe_memsx": ir.ModeProbeMemSX,
		"probe_mem32": ir.ModeProbeMem32, "probe_mem32sx": ir.ModeProbeMem32SX, "probe_atomic": ir.ModeProbeAtomic}
	atomicMode := func(note string) ir.Mode {
		if note == "probe_atomic" {
			return ir.ModeProbeAtomic
		}
		return ir.ModeATOMIC
	}

	switch {
	case s == "exit":
		return one(ir.Instruction{Op: ir.OpExit})
	case s == "nospec":
		return one(ir.Instruction{Op: ir.OpNospec})
	case s == "tail_call":
		return one(ir.Instruction{Op: ir.OpTailCall})
	}
	if m := kBswap.FindStringSubmatch(s); m != nil && m[1] == m[4] {
		op := uint8(ir.ClassALU64) | uint8(ir.ALUEnd)
		switch m[2] {
		case "le":
			op = uint8(ir.ClassALU) | uint8(ir.ALUEnd) | uint8(ir.EndToLE)
		case "be":
			op = uint8(ir.ClassALU) | uint8(ir.ALUEnd) | uint8(ir.EndToBE)
		}
		return done(ir.Instruction{Op: op, Dst: reg(m[1]), Imm: imm(m[3])})
	}
	if m := kNeg.FindStringSubmatch(s); m != nil && m[1] == m[3] && m[2] == m[4] {
		return done(ir.Instruction{Op: uint8(class(m[1], ir.ClassALU, ir.ClassALU64)) | uint8(ir.ALUNeg), Dst: reg(m[2])})
	}
	if m := kCast.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: 0xbf, Dst: reg(m[1]), Src: reg(m[2]), Off: ir.OffAddrSpaceCast,
			Imm: int32(num(m[3], 0, 0xffff)<<16 | num(m[4], 0, 0xffff))})
	}
	if m := kPercpu.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: 0xbf, Dst: reg(m[1]), Src: reg(m[2]), Off: ir.OffPerCPUAddr})
	}
	if m := kLd64.FindStringSubmatch(s); m != nil {
		dst := reg(m[1])
		var v uint64
		src := ir.PseudoNone
		var lo, hi int32
		switch {
		case strings.HasPrefix(m[2], "0x"):
			var err error
			if v, err = strconv.ParseUint(m[2][2:], 16, 64); err != nil {
				return nil, fmt.Errorf("bad constant %q", m[2])
			}
			lo, hi = int32(uint32(v)), int32(uint32(v>>32))
		case m[3] != "" && m[4] == "":
			src, lo = ir.PseudoMapFD, int32(uint32(num(m[3], 0, math.MaxUint32)))
		case m[3] != "":
			src, lo, hi = ir.PseudoMapValue, int32(uint32(num(m[3], 0, math.MaxUint32))), int32(uint32(num(m[4], 0, math.MaxUint32)))
		case m[5] != "":
			src, lo, hi = ir.PseudoMapIdxValue, int32(uint32(num(m[5], 0, math.MaxUint32))), int32(uint32(num(m[6], 0, math.MaxUint32)))
		default:
			src, lo = ir.PseudoFunc, imm(m[7])
		}
		return done(ir.Instruction{Op: ir.OpLdImm64, Dst: dst, Src: src, Imm: lo}, ir.Instruction{Imm: hi})
	}
	if m := kLoad.FindStringSubmatch(s); m != nil {
		size, ok := kSizes[m[2]]
		mode := ir.ModeMEM
		if strings.HasPrefix(m[2], "s") {
			mode = ir.ModeMEMSX
		}
		if !ok {
			return nil, fmt.Errorf("bad access type %q", m[2])
		}
		switch m[5] {
		case "":
		case "probe_mem", "probe_mem32":
			if mode == ir.ModeMEMSX {
				mode = map[string]ir.Mode{"probe_mem": ir.ModeProbeMemSX, "probe_mem32": ir.ModeProbeMem32SX}[m[5]]
			} else {
				mode = probeMode[m[5]]
			}
		default:
			mode = probeMode[m[5]]
		}
		return done(ir.Instruction{Op: uint8(ir.ClassLDX) | uint8(size) | uint8(mode), Dst: reg(m[1]), Src: reg(m[3]), Off: off(m[4])})
	}
	if m := kStore.FindStringSubmatch(s); m != nil {
		size, ok := kSizes[m[1]]
		if !ok || strings.HasPrefix(m[1], "s") {
			return nil, fmt.Errorf("bad access type %q", m[1])
		}
		mode := ir.ModeMEM
		if m[5] == "probe_mem32" {
			mode = ir.ModeProbeMem32
		}
		ins := ir.Instruction{Dst: reg(m[2]), Off: off(m[3])}
		if strings.HasPrefix(m[4], "r") {
			ins.Op = uint8(ir.ClassSTX) | uint8(size) | uint8(mode)
			ins.Src = reg(m[4][1:])
		} else {
			ins.Op = uint8(ir.ClassST) | uint8(size) | uint8(mode)
			ins.Imm = imm(m[4])
		}
		return done(ins)
	}
	if m := kLock.FindStringSubmatch(s); m != nil {
		size := kSizes[m[1]]
		a := map[string]int32{"+=": ir.AtomicAdd, "&=": ir.AtomicAnd, "|=": ir.AtomicOr, "^=": ir.AtomicXor}
		v, ok := a[m[4]]
		if !ok {
			return nil, fmt.Errorf("bad atomic operation %q", m[4])
		}
		return done(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(atomicMode(m[6])), Dst: reg(m[2]), Src: reg(m[5]), Off: off(m[3]), Imm: v})
	}
	if m := kFetch.FindStringSubmatch(s); m != nil && m[1] == m[7] {
		size := kSizes[m[4]]
		if (m[2] == "64") != (size == ir.SizeDW) {
			return nil, fmt.Errorf("atomic%s on %s", m[2], m[4])
		}
		a := map[string]int32{"fetch_add": ir.AtomicAdd | ir.AtomicFetch, "fetch_and": ir.AtomicAnd | ir.AtomicFetch,
			"fetch_or": ir.AtomicOr | ir.AtomicFetch, "fetch_xor": ir.AtomicXor | ir.AtomicFetch, "xchg": ir.AtomicXchg}
		return done(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(atomicMode(m[8])), Dst: reg(m[5]), Src: reg(m[7]), Off: off(m[6]), Imm: a[m[3]]})
	}
	if m := kCmpxchg.FindStringSubmatch(s); m != nil {
		size := kSizes[m[2]]
		if (m[1] == "64") != (size == ir.SizeDW) {
			return nil, fmt.Errorf("atomic%s on %s", m[1], m[2])
		}
		return done(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(size) | uint8(atomicMode(m[6])), Dst: reg(m[3]), Src: reg(m[5]), Off: off(m[4]), Imm: ir.AtomicCmpXchg})
	}
	if m := kLoadAcq.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(kSizes[m[2]]) | uint8(atomicMode(m[5])), Dst: reg(m[1]), Src: reg(m[3]), Off: off(m[4]), Imm: ir.AtomicLoadAcq})
	}
	if m := kStRel.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(kSizes[m[1]]) | uint8(atomicMode(m[5])), Dst: reg(m[2]), Src: reg(m[4]), Off: off(m[3]), Imm: ir.AtomicStoreRel})
	}
	if m := kLdAbs.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: uint8(ir.ClassLD) | uint8(kSizes[m[1]]) | uint8(ir.ModeABS), Imm: imm(m[2])})
	}
	if m := kLdInd.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: uint8(ir.ClassLD) | uint8(kSizes[m[1]]) | uint8(ir.ModeIND), Src: reg(m[2]), Imm: imm(m[3])})
	}
	if m := kCall.FindStringSubmatch(s); m != nil {
		if m[2] != "" {
			return done(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: imm(m[2])})
		}
		ins := ir.Instruction{Op: ir.OpCall, Imm: imm(m[4])}
		if m[3] == "kernel-function" {
			ins.Src = ir.CallKfunc
		}
		return done(ins)
	}
	if m := kGoto.FindStringSubmatch(s); m != nil {
		switch m[1] {
		case "goto":
			return done(ir.Instruction{Op: ir.OpJA, Off: off(m[2])})
		case "may_goto":
			return done(ir.Instruction{Op: ir.OpMayGoto, Off: off(m[2])})
		}
		return done(ir.Instruction{Op: ir.OpGotoL, Imm: imm(m[2])})
	}
	if m := kGotox.FindStringSubmatch(s); m != nil {
		return done(ir.Instruction{Op: ir.OpJA | uint8(ir.SourceX), Dst: reg(m[1])})
	}
	if m := kCond.FindStringSubmatch(s); m != nil {
		jop, ok := kJmpOps[m[3]]
		if !ok {
			return nil, fmt.Errorf("unknown comparison %q", m[3])
		}
		ins := ir.Instruction{Op: uint8(class(m[1], ir.ClassJMP32, ir.ClassJMP)) | uint8(jop), Dst: reg(m[2]), Off: off(m[7])}
		if m[4] != "" {
			if m[4] != m[1] {
				return nil, fmt.Errorf("mixed register widths in %q", s)
			}
			ins.Op |= uint8(ir.SourceX)
			ins.Src = reg(m[5])
		} else {
			v, err := strconv.ParseUint(m[6], 16, 32)
			if err != nil {
				return nil, fmt.Errorf("bad constant 0x%s", m[6])
			}
			ins.Imm = int32(uint32(v))
		}
		return done(ins)
	}
	if m := kALUX.FindStringSubmatch(s); m != nil {
		a, ok := kALUOps[m[3]]
		if !ok || m[1] != m[5] {
			return nil, fmt.Errorf("cannot read %q", s)
		}
		ins := ir.Instruction{Op: uint8(class(m[1], ir.ClassALU, ir.ClassALU64)) | uint8(a.op) | uint8(ir.SourceX), Dst: reg(m[2]), Src: reg(m[6])}
		if a.signed {
			ins.Off = ir.OffSigned
		}
		if m[4] != "" {
			if a.op != ir.ALUMov {
				return nil, fmt.Errorf("cannot read %q", s)
			}
			ins.Off = map[string]int16{"(s8)": 8, "(s16)": 16, "(s32)": 32}[m[4]]
		}
		return done(ins)
	}
	if m := kALUK.FindStringSubmatch(s); m != nil {
		a, ok := kALUOps[m[3]]
		if !ok {
			return nil, fmt.Errorf("cannot read %q", s)
		}
		ins := ir.Instruction{Op: uint8(class(m[1], ir.ClassALU, ir.ClassALU64)) | uint8(a.op), Dst: reg(m[2]), Imm: imm(m[4])}
		if a.signed {
			ins.Off = ir.OffSigned
		}
		return done(ins)
	}
	return nil, fmt.Errorf("cannot read %q", s)
}
