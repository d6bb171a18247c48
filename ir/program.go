package ir

import "fmt"

// PtrType is the kind of value a load/store/atomic accesses memory through,
// as the verifier records it (insn_aux_data.ptr_type).
type PtrType uint8

const (
	PtrUnknown PtrType = iota
	PtrStack
	PtrCtx
	PtrMapValue
	PtrPacket
	PtrBTF   // a BTF object: the access becomes PROBE_MEM
	PtrArena // an arena pointer: the access becomes PROBE_MEM32
	PtrMem   // other memory (ringbuf, alloc_obj, supplied regions)
)

func (t PtrType) String() string {
	return [...]string{"unknown", "stack", "ctx", "map_value", "packet", "btf", "arena", "mem"}[t]
}

// SymbolKind says what a relocation symbol names.
type SymbolKind uint8

const (
	SymNone  SymbolKind = iota
	SymMap              // ld_imm64 of a map (PseudoMapFD) or map value (PseudoMapValue)
	SymKfunc            // call of a kernel function (CallKfunc)
	SymFunc             // bpf-to-bpf call or ld_imm64 of a function by name
	SymArena            // ld_imm64 of an address in the arena's globals (.addr_space.1)
)

func (k SymbolKind) String() string {
	return [...]string{"", "map", "kfunc", "func", "arena"}[k]
}

// SourceLine is where an instruction came from in the C source (BTF line info).
type SourceLine struct {
	File   string
	Line   uint32
	Column uint32
	Text   string
}

// Aux is per-instruction data that passes attach, like the verifier's
// insn_aux_data. There is one Aux per slot (the second half of a ld_imm64 has
// its own, unused entry).
type Aux struct {
	// OrigIndex is the index of the instruction in the program as loaded, or
	// -1 for an instruction a pass inserted.
	OrigIndex int32
	// ZextDst: the upper 32 bits of this 32-bit definition are read later as
	// part of a 64-bit value, so they must really be zero.
	ZextDst bool
	// PtrType is the pointer kind a memory access goes through.
	PtrType PtrType
	// Symbol names the map, kfunc, function or arena global this instruction
	// refers to, when it came from an object file with relocations.
	Symbol     string
	SymbolKind SymbolKind
	// Line is the source line, when the object carried line info.
	Line *SourceLine
	// ArgArena, on the first instruction of a global function, is the set
	// of argument registers (R1..R5) tagged arg:arena in BTF (decl tags):
	// the verifier starts the function with those registers holding arena
	// pointers. Set by the object loader; read by the arena pass.
	ArgArena RegSet
	// GlobalFunc, on the first instruction of a function other than the
	// main program, says the function has global linkage in BTF: the
	// verifier checks it on its own (arguments from BTF, a 64-bit scalar
	// result) instead of in its callers' context. Set by the object loader.
	GlobalFunc bool
}

// Program is an eBPF program: one Instruction per 8-byte slot and one Aux per
// instruction. Jump and call offsets are in slots, as in the kernel.
type Program struct {
	Name  string
	Insns []Instruction
	Aux   []Aux

	// Funcs are the functions of the program, filled in by FindFuncs and
	// the passes (stack depth, callee-saved registers, tail calls); nil
	// until a pass sets them.
	Funcs []Func
	// UsesArena: some instruction accesses the BPF arena, so the prologue
	// loads kern_vm_start into r12.
	UsesArena bool
}

// NewProgram wraps instructions in a Program with fresh aux data.
func NewProgram(name string, insns []Instruction) *Program {
	aux := make([]Aux, len(insns))
	for i := range aux {
		aux[i].OrigIndex = int32(i)
	}
	return &Program{Name: name, Insns: insns, Aux: aux}
}

// Len returns the number of slots.
func (p *Program) Len() int { return len(p.Insns) }

// Clone returns a deep copy (SourceLine pointers are shared; they are immutable).
func (p *Program) Clone() *Program {
	q := &Program{Name: p.Name}
	q.Insns = append([]Instruction(nil), p.Insns...)
	q.Aux = append([]Aux(nil), p.Aux...)
	q.Funcs = append([]Func(nil), p.Funcs...)
	q.UsesArena = p.UsesArena
	return q
}

// Target returns the slot index a jump, bpf-to-bpf call or pseudo-func load
// at index i refers to.
func (p *Program) Target(i int) int {
	return i + 1 + int(p.Insns[i].JumpDelta())
}

// Error is a problem with one instruction of a program.
type Error struct {
	Index  int // slot index, or -1 for the whole program
	Reason string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return e.Reason
	}
	return fmt.Sprintf("instruction %d: %s", e.Index, e.Reason)
}

func errAt(i int, format string, args ...any) error {
	return &Error{Index: i, Reason: fmt.Sprintf(format, args...)}
}
