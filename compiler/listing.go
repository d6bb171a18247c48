package compiler

import (
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/ir"
)

// PrintOptions returns printer hooks that name what an object's relocations
// refer to: maps and globals by symbol, bpf-to-bpf calls by callee, kfuncs
// by name.
func PrintOptions(p *ir.Program) *ir.PrintOptions {
	return &ir.PrintOptions{
		CallName: func(p *ir.Program, i int) string {
			a := p.Aux[i]
			switch a.SymbolKind {
			case ir.SymFunc:
				return fmt.Sprintf("%+d#%s", p.Insns[i].Imm, a.Symbol)
			case ir.SymKfunc:
				return a.Symbol
			}
			return ""
		},
		ImmText: func(p *ir.Program, i int, v uint64) string {
			a := p.Aux[i]
			ins := p.Insns[i]
			off := int32(0)
			if i+1 < len(p.Insns) {
				off = p.Insns[i+1].Imm
			}
			switch {
			case a.Symbol != "" && ins.Src == ir.PseudoNone:
				// resolved by the passes: the address, with what it is
				return fmt.Sprintf("%#x <%s>", v, a.Symbol)
			case a.SymbolKind == ir.SymMap && ins.Src == ir.PseudoMapFD:
				return fmt.Sprintf("map[%s]", a.Symbol)
			case a.SymbolKind == ir.SymMap:
				return fmt.Sprintf("map[%s]+%d", a.Symbol, off)
			case a.SymbolKind == ir.SymArena:
				return fmt.Sprintf("arena[%s]+%d", a.Symbol, off)
			case a.SymbolKind == ir.SymFunc:
				return fmt.Sprintf("func[%s]", a.Symbol)
			}
			return ""
		},
	}
}

// Listing writes the machine code of a compiled program, function by
// function, with each BPF instruction (and, when the object had line info,
// its C source line) above the x86 instructions it became. Every x86
// instruction is decoded with x86asm; one that does not decode, or whose
// decoding runs past its BPF instruction's bytes, is an error.
func Listing(w io.Writer, r *Result) error {
	rows, err := listingRows(r)
	if err != nil {
		return err
	}
	b := &strings.Builder{}
	for _, row := range rows {
		b.WriteString(row.text)
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Kinds of listing rows.
const (
	rowHeader = iota // the program's summary
	rowFunc          // a function's label
	rowNote          // "; prologue", "; epilogue", the exception table
	rowSource        // a C source line
	rowBPF           // a BPF instruction
	rowX86           // an x86 instruction
	rowBlank         // the empty line before a function
)

// listRow is one line of a listing. insn is the index of the BPF
// instruction (in the compiled program) the row belongs to, -1 for the
// prologue, epilogue and labels; extable is set on x86 rows an exception
// table entry covers.
type listRow struct {
	kind    int
	insn    int
	text    string
	extable bool
}

// listingRows builds the listing line by line (Listing writes the text,
// the HTML report the rows).
func listingRows(r *Result) ([]listRow, error) {
	if r.Image == nil {
		return nil, fmt.Errorf("no machine code (the backend did not run)")
	}
	p := r.Prog
	po := PrintOptions(p)
	var rows []listRow
	add := func(kind, insn int, format string, args ...any) {
		rows = append(rows, listRow{kind: kind, insn: insn, text: fmt.Sprintf(format, args...)})
	}
	head := fmt.Sprintf("; %s: %s", r.Input.File, r.Input.Name)
	if r.Input.Section != "" {
		head += fmt.Sprintf(" (section %s)", r.Input.Section)
	}
	add(rowHeader, -1, "%s: %d BPF instructions, %d functions, %d bytes, %d layout passes, target %s",
		head, p.Len(), len(r.Image.Funcs), len(r.Image.Code()), r.Image.Passes, r.Target.Name)
	names := map[int]string{}
	if r.Input.ElfProg != nil {
		names = r.Input.ElfProg.Funcs
	}
	var lastLine *ir.SourceLine
	for k, f := range r.Image.Funcs {
		name := names[f.Start]
		if name == "" {
			name = fmt.Sprintf("func_%d", f.Start)
			if k == 0 {
				name = r.Input.Name
			}
		}
		add(rowBlank, -1, "")
		add(rowFunc, -1, "%s: ; exec %#x, %d bytes, %d extable entries", name, f.ExecAddr, len(f.Code), len(f.Extable))
		n := len(f.Addrs) - 1
		if n < 0 {
			return nil, fmt.Errorf("function %s: no address map", name)
		}
		marks := extableMarks(f)
		add(rowNote, -1, "  ; prologue")
		var err error
		if rows, err = listX86(rows, f, 0, int(f.Addrs[0]), -1, "prologue", marks); err != nil {
			return nil, fmt.Errorf("function %s: %w", name, err)
		}
		for j := 0; j < n; j++ {
			i := f.Start + j
			if i >= p.Len() {
				break
			}
			if l := p.Aux[i].Line; l != nil && (lastLine == nil || l.Line != lastLine.Line || l.File != lastLine.File) {
				add(rowSource, i, "; %s:%d: %s", filepath.Base(l.File), l.Line, strings.TrimSpace(l.Text))
				lastLine = l
			}
			if j > 0 && p.Insns[i-1].IsLdImm64() {
				continue // second slot: its code is with the first
			}
			add(rowBPF, i, "%5d: %s", i, p.KernelText(i, po))
			end := int(f.Addrs[j+1])
			if p.Insns[i].IsLdImm64() && j+2 <= n {
				end = int(f.Addrs[j+2])
			}
			if rows, err = listX86(rows, f, int(f.Addrs[j]), end, i, fmt.Sprintf("instruction %d", i), marks); err != nil {
				return nil, &ir.Error{Index: i, Reason: err.Error()}
			}
		}
		if int(f.Addrs[n]) < len(f.Code) {
			add(rowNote, -1, "  ; epilogue")
		}
		if rows, err = listX86(rows, f, int(f.Addrs[n]), len(f.Code), -1, "epilogue", marks); err != nil {
			return nil, fmt.Errorf("function %s: %w", name, err)
		}
		if len(f.Extable) > 0 {
			add(rowNote, -1, "  ; exception table at %#x: %d entries", f.ExtableAddr(), len(f.Extable))
		}
	}
	return rows, nil
}

// extableMarks maps function-relative code offsets to a description of
// the exception-table entry covering the instruction there.
func extableMarks(f amd64.Func) map[int]string {
	marks := map[int]string{}
	t := f.Table()
	for k, e := range f.Extable {
		off := int(int64(t.InsnAddr(k)) - int64(f.ExecAddr))
		what := "keep registers"
		if e.Clears() {
			what = "clear " + ptRegsName(e.ClearReg())
		}
		kind := "probe_mem"
		if e.IsArena() {
			kind = fmt.Sprintf("arena, base %s, off %d", ptRegsName(e.ArenaReg()), e.Off())
		}
		marks[off] = fmt.Sprintf("extable #%d (%s): on a fault %s, resume +%d", k, kind, what, e.InsnLen())
	}
	return marks
}

// ptRegsName names the x86 register at a struct pt_regs offset.
func ptRegsName(off uint8) string {
	names := map[uint8]string{80: "rax", 112: "rdi", 104: "rsi", 96: "rdx", 88: "rcx", 72: "r8", 40: "rbx", 16: "r13", 8: "r14", 0: "r15", 24: "r12", 32: "rbp", 48: "r11", 56: "r10", 64: "r9"}
	if n, ok := names[off]; ok {
		return n
	}
	return fmt.Sprintf("pt_regs+%d", off)
}

// listX86 appends the x86 instructions in f.Code[start:end] as rows of BPF
// instruction insn.
func listX86(rows []listRow, f amd64.Func, start, end, insn int, what string, marks map[int]string) ([]listRow, error) {
	if start < 0 || end > len(f.Code) || start > end {
		return rows, fmt.Errorf("%s: code range [%d, %d) outside the function's %d bytes", what, start, end, len(f.Code))
	}
	for pc := start; pc < end; {
		inst, err := x86asm.Decode(f.Code[pc:end], 64)
		if err != nil {
			return rows, fmt.Errorf("%s: x86 code at offset %#x does not decode: %v (% x)", what, pc, err, f.Code[pc:end])
		}
		addr := f.ExecAddr + uint64(pc)
		text := x86asm.IntelSyntax(inst, addr, nil)
		m, covered := marks[pc]
		if covered {
			text += "    ; " + m
		}
		rows = append(rows, listRow{kind: rowX86, insn: insn, extable: covered,
			text: fmt.Sprintf("    %#06x: %-24s %s", pc, hex.EncodeToString(f.Code[pc:pc+inst.Len]), text)})
		pc += inst.Len
	}
	return rows, nil
}
