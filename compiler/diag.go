package compiler

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

// ErrorContext shows where an error from Load or Compile happened, the way
// a compiler quotes the source around an error: the program as it stood
// when the error happened (after the passes that ran, for a pass or
// backend error), radius instructions before and after the one the error
// names, that one marked with '>' and followed by the error's reason, and
// the C source lines above the instructions they produced when the object
// has line info.
//
//	 ; maps.c:30: return *v + 1;
//	     5: (61) r0 = *(u32 *)(r0 +0)
//	>    6: (07) r0 += 1
//	        ^ instruction 6: ...
//
// For assembly input that does not parse, it shows the lines around the
// one the error names. For raw input that does not decode, it shows the 8-byte slots around the
// one the error names in hex, with the text of those that decode on their
// own (jumps, whose targets are elsewhere, do not). It returns "" when the error names no instruction (a file that does
// not open, an empty or truncated program, an unknown format).
func ErrorContext(err error, radius int) string {
	var ce *Error
	var ie *ir.Error
	var ae *asm.Error
	if errors.As(err, &ce) && ce.Text != nil && errors.As(err, &ae) {
		return textContext(ce.Text, ae, radius)
	}
	if ce == nil || !errors.As(err, &ie) {
		return ""
	}
	if ce.Prog == nil && ce.Raw != nil {
		return rawContext(ce.Raw, ie, radius)
	}
	if ce.Prog == nil {
		return ""
	}
	p := ce.Prog
	if ie.Index < 0 || ie.Index >= p.Len() {
		return ""
	}
	at := ie.Index
	if at > 0 && p.Insns[at-1].IsLdImm64() {
		at-- // the second slot of a ld_imm64: show the instruction
	}
	// Instruction starts, so that the radius counts instructions.
	var starts []int
	k := -1
	for i := 0; i < p.Len(); i++ {
		if i == at {
			k = len(starts)
		}
		starts = append(starts, i)
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	if k < 0 {
		return ""
	}
	lo, hi := max(0, k-radius), min(len(starts), k+radius+1)
	po := PrintOptions(p)
	var b strings.Builder
	var last *ir.SourceLine
	// The line in force at the first instruction shown (line info is sparse).
	for i := starts[lo]; i >= 0; i-- {
		if l := p.Aux[i].Line; l != nil {
			if i != starts[lo] {
				fmt.Fprintf(&b, "   ; %s:%d: %s\n", filepath.Base(l.File), l.Line, strings.TrimSpace(l.Text))
				last = l
			}
			break
		}
	}
	for _, i := range starts[lo:hi] {
		if l := p.Aux[i].Line; l != nil && (last == nil || l.Line != last.Line || l.File != last.File) {
			fmt.Fprintf(&b, "   ; %s:%d: %s\n", filepath.Base(l.File), l.Line, strings.TrimSpace(l.Text))
			last = l
		}
		mark := " "
		if i == at {
			mark = ">"
		}
		text := fmt.Sprintf("  %s %5d: %s", mark, i, p.KernelText(i, po))
		b.WriteString(text)
		b.WriteByte('\n')
		if i == at {
			fmt.Fprintf(&b, "  %s ^ %s\n", strings.Repeat(" ", 7), ie.Error())
		}
	}
	return b.String()
}

// rawContext shows the 8-byte slots of undecodable raw input around the
// one an error names, in hex, with the text of those that decode alone.
func rawContext(raw []byte, ie *ir.Error, radius int) string {
	n := len(raw) / ir.InsnSize
	if ie.Index < 0 || ie.Index >= n {
		return ""
	}
	var b strings.Builder
	for i := max(0, ie.Index-radius); i <= min(n-1, ie.Index+radius); i++ {
		slot := raw[i*ir.InsnSize : (i+1)*ir.InsnSize]
		text := ""
		// Alone, followed by an exit (programs must not fall off their end).
		exit := ir.Encode(&ir.Program{Insns: []ir.Instruction{{Op: ir.OpExit}}})
		if p, err := ir.Decode(append(slices.Clip(slot), exit...)); err == nil {
			text = p.KernelText(0, nil)
		}
		mark := " "
		if i == ie.Index {
			mark = ">"
		}
		fmt.Fprintf(&b, "  %s %5d: % x  %s\n", mark, i, slot, text)
		if i == ie.Index {
			fmt.Fprintf(&b, "  %s ^ %s\n", strings.Repeat(" ", 7), ie.Error())
		}
	}
	return b.String()
}

// textContext shows the lines of assembly text around the one an error
// names.
func textContext(text []byte, ae *asm.Error, radius int) string {
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	at := ae.Line - 1
	if at < 0 || at >= len(lines) {
		return ""
	}
	var b strings.Builder
	for i := max(0, at-radius); i <= min(len(lines)-1, at+radius); i++ {
		mark := " "
		if i == at {
			mark = ">"
		}
		fmt.Fprintf(&b, "  %s %5d | %s\n", mark, i+1, strings.TrimRight(lines[i], "\r"))
		if i == at {
			fmt.Fprintf(&b, "  %s ^ %s\n", strings.Repeat(" ", 7), ae.Error())
		}
	}
	return b.String()
}
