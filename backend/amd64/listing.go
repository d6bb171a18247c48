package amd64

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
)

// ListingOptions control Listing.
type ListingOptions struct {
	// NoBytes leaves out the hex bytes of each x86 instruction.
	NoBytes bool
	// Symbols names absolute call/jump targets (helpers, thunks); may be nil.
	Symbols func(addr uint64) (string, bool)
	// Print formats BPF instruction i (default: p.Format).
	Print func(p *ir.Program, i int) string
}

// Listing writes a disassembly of im: for every function its name and exec
// address, then each BPF instruction followed by the x86 instructions it
// became (offset, bytes, Intel syntax), like `bpftool prog dump jited
// linum`. The prologue comes first, unattributed; the extable follows the
// code. Bytes that do not decode are an error (the code is broken).
func Listing(w io.Writer, p *ir.Program, im *Image, opts *ListingOptions) error {
	if opts == nil {
		opts = &ListingOptions{}
	}
	printBPF := opts.Print
	if printBPF == nil {
		printBPF = func(p *ir.Program, i int) string { return p.Format(i) }
	}
	var b strings.Builder
	for k := range im.Funcs {
		f := &im.Funcs[k]
		fmt.Fprintf(&b, "func %d at %#x (%d bytes):\n", k, f.ExecAddr, len(f.Code))
		n := len(f.Addrs) - 1
		next, second := 0, false
		flush := func(upto int) { // print the BPF instructions starting at or before upto
			for next < n && int(f.Addrs[next]) <= upto {
				gi := f.Start + next
				if second {
					second = false
				} else if gi < len(p.Insns) {
					fmt.Fprintf(&b, "; %d: %s\n", gi, printBPF(p, gi))
					second = p.Insns[gi].IsLdImm64()
				}
				next++
			}
		}
		pc := 0
		for pc < len(f.Code) {
			flush(pc)
			in, err := x86asm.Decode(f.Code[pc:], 64)
			if err != nil {
				return fmt.Errorf("function %d: x86 code at offset %#x does not decode: %v", k, pc, err)
			}
			text := x86asm.IntelSyntax(in, f.ExecAddr+uint64(pc), func(a uint64) (string, uint64) {
				if opts.Symbols != nil {
					if s, ok := opts.Symbols(a); ok {
						return s, a
					}
				}
				return "", 0
			})
			if opts.NoBytes {
				fmt.Fprintf(&b, "%6x:  %s\n", pc, text)
			} else {
				fmt.Fprintf(&b, "%6x:  %-30x %s\n", pc, f.Code[pc:pc+in.Len], text)
			}
			pc += in.Len
		}
		flush(len(f.Code))
		for q, e := range f.Extable {
			fmt.Fprintf(&b, "; extable[%d] -> %#x: %v\n", q, f.Table().InsnAddr(q)-f.ExecAddr, e)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		b.Reset()
	}
	return nil
}
