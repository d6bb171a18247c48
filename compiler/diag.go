package compiler

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bpfc/bpfc/ir"
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
// It returns "" when the error names no instruction of a known program (a
// file that does not open, an unknown format, a decode error).
func ErrorContext(err error, radius int) string {
	var ce *Error
	var ie *ir.Error
	if !errors.As(err, &ce) || ce.Prog == nil || !errors.As(err, &ie) {
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
