// Package asm reads and writes the assembly syntax of the bpf_conformance
// suite (github.com/Alan-Jowett/bpf_conformance): test files made of
// sections ("-- asm", "-- mem", "-- result", "-- error", "-- raw") and an
// instruction syntax with %rN registers, [%rN+off] memory operands, labels and
// +N/-N jump offsets.
//
// Design: the assembler is a two-pass line assembler. The first pass turns
// each line into one instruction slot (two for lddw) and remembers the label a
// jump or local call names; the second pass resolves the labels into slot
// offsets (off for jumps, imm for ja32 and "call local"), exactly as the
// suite's own assembler does, including its implicit label "exit" (the first
// exit instruction, unless a label of that name is defined). Numbers are
// decimal or 0x-hex, optionally signed; unlike the suite's assembler, values
// that do not fit their field are errors instead of being truncated. Every
// error names the line.
//
// The writer (Format) emits one line per instruction with labels for jump
// and call targets. Each line it writes is parsed back before it is used; an
// instruction the syntax cannot express (a pseudo ld_imm64, a kernel-internal
// mode, a reserved field set) is written as ".insn 0x<u64>", an extension
// of this package that holds one raw slot in the raw section's notation, so
// Parse(Format(p)) always gives back p's instructions.
//
// callx ("call %r2") is encoded with the register in dst_reg and imm 0: that
// is what the suite's assembler writes and what LLVM 19 emits for "callx r2"
// (encoding 8d 02 00 00 00 00 00 00).
package asm

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bpfc/bpfc/ir"
)

// File is one conformance test file.
type File struct {
	// Program is what the test runs: the raw section's instructions when
	// the file has one, else the assembled asm section. Nil when the file
	// has neither.
	Program *ir.Program
	// Asm is the assembled asm section (nil without one). When there is no
	// raw section it is the same pointer as Program.
	Asm *ir.Program
	// Mem is the input memory (r1 = pointer to it, r2 = its length).
	Mem []byte
	// Result is the expected r0, valid when HasResult.
	Result    uint64
	HasResult bool
	// Error is the expected error text ("" for none).
	Error string
	// Raw holds the little-endian bytes of the raw section (nil without one).
	Raw []byte
	// Sections lists the section names in file order.
	Sections []string
}

// Error is a problem at one line of the input.
type Error struct {
	Line int // 1-based line number
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ErrUnknownSection is wrapped by the error Parse returns for a section it
// does not know; the suite's runner skips such files.
var ErrUnknownSection = errors.New("unknown section")

type unknownSection struct {
	line int
	name string
}

func (e *unknownSection) Error() string {
	return fmt.Sprintf("line %d: %v %q", e.line, ErrUnknownSection, e.name)
}
func (e *unknownSection) Unwrap() error { return ErrUnknownSection }

type srcLine struct {
	n    int
	text string
}

// Parse reads a conformance test file.
func Parse(src []byte) (*File, error) {
	f := &File{}
	sections := map[string][]srcLine{}
	seen := map[string]int{}
	cur := ""
	for n, line := range strings.Split(string(src), "\n") {
		num := n + 1
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "--") {
			name := strings.TrimSpace(stripComment(line[2:]))
			switch name {
			case "asm", "mem", "result", "error", "raw", "c", "no register offset":
			default:
				return nil, &unknownSection{line: num, name: name}
			}
			if prev, ok := seen[name]; ok {
				return nil, &Error{num, fmt.Sprintf("section %q repeats the one at line %d", name, prev)}
			}
			seen[name] = num
			f.Sections = append(f.Sections, name)
			cur = name
			if _, ok := sections[name]; !ok {
				sections[name] = nil
			}
			continue
		}
		if cur == "c" || cur == "no register offset" {
			continue // free text, ignored
		}
		text := strings.TrimSpace(stripComment(line))
		if cur == "" {
			if text != "" {
				return nil, &Error{num, "text before the first section"}
			}
			continue
		}
		sections[cur] = append(sections[cur], srcLine{num, text})
	}

	if lines, ok := sections["asm"]; ok {
		p, err := assemble(lines)
		if err != nil {
			return nil, err
		}
		f.Asm = p
		f.Program = p
	}
	for _, l := range sections["mem"] {
		for _, tok := range strings.Fields(l.text) {
			v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(tok, "0x"), "0X"), 16, 8)
			if err != nil {
				return nil, &Error{l.n, fmt.Sprintf("mem: bad byte %q", tok)}
			}
			f.Mem = append(f.Mem, byte(v))
		}
	}
	if lines, ok := sections["result"]; ok {
		var toks []string
		var at int
		for _, l := range lines {
			if l.text != "" {
				if at == 0 {
					at = l.n
				}
				toks = append(toks, strings.Fields(l.text)...)
			}
		}
		if len(toks) != 1 {
			return nil, &Error{seen["result"], fmt.Sprintf("result section has %d values, want 1", len(toks))}
		}
		v, err := parseInt64Wide(toks[0])
		if err != nil {
			return nil, &Error{at, fmt.Sprintf("result: %v", err)}
		}
		f.Result, f.HasResult = v, true
	}
	if lines, ok := sections["error"]; ok {
		var parts []string
		for _, l := range lines {
			if l.text != "" {
				parts = append(parts, l.text)
			}
		}
		f.Error = strings.Join(parts, "\n")
	}
	if lines, ok := sections["raw"]; ok {
		var insns []ir.Instruction
		raw := []byte{}
		for _, l := range lines {
			for _, tok := range strings.Fields(l.text) {
				v, err := parseInt64Wide(tok)
				if err != nil {
					return nil, &Error{l.n, fmt.Sprintf("raw: %v", err)}
				}
				ins := slotFromU64(v)
				insns = append(insns, ins)
				raw = ins.AppendBinary(raw)
			}
		}
		if len(insns) == 0 {
			return nil, &Error{seen["raw"], "raw section is empty"}
		}
		f.Raw = raw
		f.Program = ir.NewProgram("", insns)
	}
	return f, nil
}

// Assemble reads instructions only (the contents of an asm section). Line
// numbers in errors count from 1 at the start of text.
func Assemble(text string) (*ir.Program, error) {
	var lines []srcLine
	for n, line := range strings.Split(text, "\n") {
		lines = append(lines, srcLine{n + 1, strings.TrimSpace(stripComment(strings.TrimRight(line, "\r")))})
	}
	return assemble(lines)
}

func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

// slotFromU64 unpacks one slot written as a u64 in the raw section's
// notation: opcode in the low byte, then the register byte, off, imm.
func slotFromU64(v uint64) ir.Instruction {
	return ir.Instruction{
		Op:  uint8(v),
		Dst: ir.Register(v >> 8 & 0xf),
		Src: ir.Register(v >> 12 & 0xf),
		Off: int16(uint16(v >> 16)),
		Imm: int32(uint32(v >> 32)),
	}
}

// slotToU64 is the inverse of slotFromU64.
func slotToU64(ins ir.Instruction) uint64 {
	return uint64(ins.Op) | uint64(ins.Dst&0xf)<<8 | uint64(ins.Src&0xf)<<12 |
		uint64(uint16(ins.Off))<<16 | uint64(uint32(ins.Imm))<<32
}

// RawText returns a program as the lines of a raw section.
func RawText(p *ir.Program) string {
	var b bytes.Buffer
	for _, ins := range p.Insns {
		fmt.Fprintf(&b, "0x%016x\n", slotToU64(ins))
	}
	return b.String()
}
