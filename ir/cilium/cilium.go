// Package cilium converts between cilium/ebpf's instruction lists
// (asm.Instructions, what its assembler DSL builds and its ELF loader
// returns in ProgramSpec.Instructions) and bpfc's ir.Program, in both
// directions, so that programs from the Go eBPF ecosystem go through
// bpfc's passes and backend, and programs bpfc built or rewrote can be
// loaded with cilium/ebpf.
//
//	spec, _ := ebpf.LoadCollectionSpec("prog.o")
//	p, _ := cilium.FromInstructions(spec.Programs["xdp_prog"].Instructions)
//	// p goes through compiler/pipeline/backend like any other program
//
//	insns, _ := cilium.ToInstructions(p) // and back, e.g. for ebpf.NewProgram
//
// # What is kept
//
// Encodings are exact both ways. cilium/ebpf's Instruction.Marshal resets
// the offset of every ALU instruction whose operation it does not model
// with an extended opcode: the address-space cast "r1 = addr_space_cast(r1,
// 0, 1)" (ALU64 MOV with offset 1) loses its offset and becomes a register
// move with a stray immediate, which the kernel rejects. FromInstructions
// does not go through that loss: it takes the offset from the instruction
// itself, so addr_space_cast, and the signed forms cilium does model
// (sdiv/smod as offset 1, movsx as offset 8/16/32), arrive in the
// ir.Program with the kernel's encoding.
//
// Metadata travels as far as the two models overlap:
//   - a symbol (Instruction.Symbol, a function's first instruction) names
//     the bpf-to-bpf calls and function-pointer loads that reference it
//     (ir.Aux.Symbol, ir.SymFunc), and the first one names the program;
//   - a reference on a map load (Instruction.Reference, as cilium's ELF
//     loader sets it) becomes ir.Aux.Symbol with ir.SymMap, so that
//     pipeline.Context.Symbols can give the map's address;
//   - a reference on a kfunc call names the kfunc (ir.SymKfunc), as
//     ToInstructions writes it;
//   - BTF line info (Instruction.Source() of type *btf.Line) becomes
//     ir.Aux.Line, so listings and diagnostics show the C lines.
//
// Not carried: the BTF of kfunc calls (cilium keeps it in unexported
// metadata; the call's immediate is kept), map objects and fds, CO-RE
// relocations (cilium applies them when it loads; a ProgramSpec's
// instructions still have clang's offsets).
//
// ToInstructions sets the reverse: Symbol on the first instruction of each
// function that a call names, Reference on calls (bpf-to-bpf and kfunc)
// and loads that name a symbol, and the C line as an asm.Comment source.
package cilium

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfc/bpfc/ir"
)

// FromInstructions converts cilium/ebpf instructions to a program. Calls
// and jumps that reference a symbol with a placeholder (-1) are resolved
// the way cilium/ebpf resolves them when it loads a program. The result's
// Aux.OrigIndex counts slots (a ld_imm64 takes two), as ir.Program does.
func FromInstructions(insns asm.Instructions) (*ir.Program, error) {
	// Marshal works on a copy: it writes resolved references back.
	cp := make(asm.Instructions, len(insns))
	copy(cp, insns)
	var buf bytes.Buffer
	if err := cp.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("cilium instructions: %w", err)
	}
	raw := buf.Bytes()
	// Put back the ALU offsets Marshal dropped (addr_space_cast's 1).
	slot := 0
	for k, ins := range insns {
		if slot*ir.InsnSize >= len(raw) {
			return nil, &ir.Error{Index: slot, Reason: fmt.Sprintf("cilium instruction %d: past the encoded program", k)}
		}
		if ins.OpCode.Class().IsALU() && ins.Offset != 0 {
			switch ins.OpCode.ALUOp() {
			case asm.SDiv, asm.SMod, asm.MovSX8, asm.MovSX16, asm.MovSX32:
				// modelled by cilium: Marshal wrote the offset
			default:
				binary.LittleEndian.PutUint16(raw[slot*ir.InsnSize+2:], uint16(ins.Offset))
			}
		}
		slot += int(ins.Width())
	}
	p, err := ir.Decode(raw)
	if err != nil {
		return nil, err
	}
	p.Name = insns.Name()
	// Metadata: symbols, references, line info.
	symbols := map[string]bool{}
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			symbols[s] = true
		}
	}
	slot = 0
	for _, ins := range insns {
		a := &p.Aux[slot]
		if ref := ins.Reference(); ref != "" {
			pi := p.Insns[slot]
			switch {
			case pi.IsPseudoCall() || (pi.IsLdImm64() && pi.Src == ir.PseudoFunc):
				a.Symbol, a.SymbolKind = ref, ir.SymFunc
			case pi.IsLdImm64() && pi.Src != ir.PseudoNone && pi.Src != ir.PseudoFunc:
				a.Symbol, a.SymbolKind = ref, ir.SymMap
			case pi.IsKfuncCall():
				a.Symbol, a.SymbolKind = ref, ir.SymKfunc
			}
		}
		switch src := ins.Source().(type) {
		case *btf.Line:
			a.Line = &ir.SourceLine{File: src.FileName(), Line: src.LineNumber(), Column: src.LineColumn(), Text: src.Line()}
		case nil:
		default:
			// A comment (e.g. from ToInstructions): "file:line: text" or text.
			a.Line = parseComment(src.String())
		}
		slot += int(ins.Width())
	}
	return p, nil
}

// ToInstructions converts a program to cilium/ebpf instructions. Every
// field of every instruction is kept (Instruction.Offset holds what the
// kernel's encoding has, including addr_space_cast's offset 1, which
// cilium's own Marshal would drop: use FromInstructions or ir.Encode on
// the program, not Marshal, when that matters). Kernel-internal forms (the
// PROBE_* modes, r11) are refused: cilium/ebpf has no encoding for them.
func ToInstructions(p *ir.Program) (asm.Instructions, error) {
	raw := ir.Encode(p)
	// The strict decoder refuses what only the kernel's xlated form has.
	if _, err := ir.Decode(raw); err != nil {
		return nil, fmt.Errorf("not a program cilium/ebpf can encode: %w", err)
	}
	insns, err := asm.AppendInstructions(nil, bytes.NewReader(raw), binary.LittleEndian, "linux")
	if err != nil {
		return nil, fmt.Errorf("cilium instructions: %w", err)
	}
	// Function symbols: the targets of calls that name their callee, and
	// the program's name on the first instruction.
	slotOf := make([]int, 0, len(insns)) // cilium index -> slot
	slot := 0
	for _, ins := range insns {
		slotOf = append(slotOf, slot)
		slot += int(ins.Width())
	}
	named := map[int]string{}
	if p.Name != "" {
		named[0] = p.Name
	}
	for i, ins := range p.Insns {
		a := p.Aux[i]
		if a.SymbolKind == ir.SymFunc && a.Symbol != "" && (ins.IsPseudoCall() || ins.IsLdImm64() && ins.Src == ir.PseudoFunc) {
			if t := i + 1 + int(ins.Imm); t >= 0 && t < p.Len() {
				if t != 0 || named[0] == "" {
					named[t] = a.Symbol
				}
			}
		}
	}
	for k := range insns {
		i := slotOf[k]
		a := p.Aux[i]
		if name, ok := named[i]; ok {
			insns[k] = insns[k].WithSymbol(name)
		}
		if a.Symbol != "" && (a.SymbolKind == ir.SymFunc || a.SymbolKind == ir.SymMap || a.SymbolKind == ir.SymKfunc) {
			insns[k] = insns[k].WithReference(a.Symbol)
		}
		if l := a.Line; l != nil {
			insns[k] = insns[k].WithSource(asm.Comment(fmt.Sprintf("%s:%d: %s", l.File, l.Line, l.Text)))
		}
	}
	return insns, nil
}

// parseComment reads the "file:line: text" comments ToInstructions writes;
// any other text is kept as the line's text.
func parseComment(s string) *ir.SourceLine {
	file, rest, ok := strings.Cut(s, ":")
	if ok {
		num, text, ok2 := strings.Cut(rest, ": ")
		var n uint32
		if _, err := fmt.Sscanf(num, "%d", &n); ok2 && err == nil && n > 0 {
			return &ir.SourceLine{File: file, Line: n, Text: text}
		}
	}
	return &ir.SourceLine{Text: s}
}
