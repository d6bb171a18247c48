// Package elf loads eBPF programs from clang-built BPF object files
// (`clang -target bpf -c`) into ir.Programs, doing the part of a loader's work
// that does not need a kernel: it splits executable sections into programs
// and functions by their symbols, links bpf-to-bpf callees into each program
// the way libbpf does, and turns relocations into symbolic references that
// later stages resolve.
//
// # Design
//
// Instruction bytes are read from the ELF sections directly (debug/elf) and
// decoded slot by slot; they are never passed through cilium/ebpf's
// asm.Instruction, whose Marshal zeroes the offset of ALU instructions and so
// loses addr_space_cast (off=1) and sdiv/smod. cilium/ebpf is used for what it
// does well: BTF and .BTF.ext line info (btf.LoadSpecAndExtInfosFromReader),
// and the program types and map definitions of the object
// (ebpf.LoadCollectionSpecFromReader). cilium refuses objects with arena
// globals (section .addr_space.1); for those the map definitions are read
// from the BTF of the .maps section here and the program type from the
// section name.
//
// Relocations become:
//   - ld_imm64 of a map in .maps: src=PseudoMapFD, imm 0, Aux.Symbol = map
//     name, Aux.SymbolKind = ir.SymMap;
//   - ld_imm64 of a global in .data/.rodata/.bss (or another data section):
//     src=PseudoMapValue, first imm 0, second imm = offset in the section,
//     Aux.Symbol = section name (the name of libbpf's internal map), SymMap;
//   - ld_imm64 of an arena global (.addr_space.1): src=PseudoMapValue, second
//     imm = offset in the section, Aux.Symbol = ".addr_space.1",
//     Aux.SymbolKind = ir.SymArena. libbpf places the section at the end of
//     the arena (Object.Arena says how big it is);
//   - call of an extern function (a kfunc declared __ksym): src=CallKfunc,
//     imm = the BTF id in Options.KernelBTF when given, else 0;
//     Aux.Symbol = the kfunc name, ir.SymKfunc;
//   - bpf-to-bpf calls and function references (ld_imm64 src=PseudoFunc, for
//     callbacks): the callee function is appended after the program as
//     libbpf does (depth first, each function once) and the imm made relative
//     to it; Aux.Symbol = callee name, ir.SymFunc.
//
// Line info from .BTF.ext is attached to the instructions it names
// (Aux.Line: file, line, column and source text); like the kernel's line
// info it is sparse: an instruction without a record belongs to the line of
// the previous one that has one.
package elf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfc/bpfc/ir"
)

// ArenaSection is the section clang puts __arena globals in.
const ArenaSection = ".addr_space.1"

// Object is a loaded BPF object file.
type Object struct {
	File     string
	License  string
	Programs []*Program
	Maps     []*Map
	// Arena describes the arena globals, when the object has any.
	Arena *ArenaGlobals
	// BTF is the object's BTF, nil when it has none.
	BTF *btf.Spec
}

// ArenaGlobals is the content of the .addr_space.1 section.
type ArenaGlobals struct {
	Size int    // bytes of arena globals
	Data []byte // initial contents (zeros for a NOBITS section)
	// Map is the name of the object's arena map, "" if it declares none.
	Map string
}

// Program is one program of the object: a function in an executable section
// other than .text, with every function it calls linked after it.
type Program struct {
	Name       string // the function symbol
	Section    string // the ELF section, e.g. "xdp" or "socket"
	Type       ebpf.ProgramType
	AttachType ebpf.AttachType
	Prog       *ir.Program
	// Funcs names the functions of Prog by their first slot: 0 is the
	// program itself, the others are the linked callees.
	Funcs map[int]string
	// CORE lists the CO-RE relocations of the program's instructions
	// (.BTF.ext core_relo), which need the target kernel's BTF: bpfc does
	// not apply them, the instructions keep clang's local offsets.
	CORE []CORERelo
}

// CORERelo is one CO-RE relocation: the instruction (program slot) and
// cilium's description of what it relocates.
type CORERelo struct {
	Index int
	What  string
}

// Map is a map the object defines, or an internal map for a data section.
type Map struct {
	Name       string
	Section    string // ".maps" or the data section
	Type       ebpf.MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	MapExtra   uint64
	// Data is the initial content of a data-section map.
	Data []byte
}

// Options change how an object is loaded.
type Options struct {
	// KernelBTF, when set, resolves kfunc calls to their BTF ids in it.
	KernelBTF *btf.Spec
	// ResolveKfuncs resolves kfunc calls against the running kernel's BTF
	// (/sys/kernel/btf/vmlinux, read on the first kfunc call) when
	// KernelBTF is nil: a kfunc the kernel does not have is an error at
	// its call.
	ResolveKfuncs bool
}

// Error is a problem with an object file, optionally in one program and at
// one instruction.
type Error struct {
	File    string
	Program string // "" when the problem is not in one program
	Err     error  // an *ir.Error when the problem is one instruction
	// Line is the C source line of that instruction, when known.
	Line *ir.SourceLine
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Program != "" {
		b.WriteString(e.Program)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Line != nil {
		fmt.Fprintf(&b, " [%s:%d: %s]", path.Base(e.Line.File), e.Line.Line, strings.TrimSpace(e.Line.Text))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the object file at path.
func Load(path string) (*Object, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, opts Options) (*Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return LoadReader(f, path, opts)
}

// LoadReader reads an object from r; name is used in errors.
func LoadReader(r io.ReaderAt, name string, opts Options) (obj *Object, err error) {
	defer func() {
		// debug/elf and BTF parsing are meant not to panic on bad input;
		// this is the last line of defence, so that bpfc never does.
		if p := recover(); p != nil {
			obj, err = nil, &Error{File: name, Err: fmt.Errorf("malformed object file: %v", p)}
		}
	}()
	l := &loader{name: name, opts: opts}
	if err := l.load(r); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, &Error{File: name, Err: err}
	}
	return l.obj, nil
}

// Select returns the programs whose function name or section is name, or all
// programs when name is "".
func (o *Object) Select(name string) ([]*Program, error) {
	if name == "" {
		return o.Programs, nil
	}
	var out []*Program
	for _, p := range o.Programs {
		if p.Name == name {
			return []*Program{p}, nil
		}
	}
	for _, p := range o.Programs {
		if p.Section == name {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		names := make([]string, 0, len(o.Programs))
		for _, p := range o.Programs {
			names = append(names, p.Name+" ("+p.Section+")")
		}
		return nil, &Error{File: o.File, Err: fmt.Errorf("no program or section named %q (programs: %s)", name, strings.Join(names, ", "))}
	}
	return out, nil
}

// Program returns the program with the given function name, or nil.
func (o *Object) Program(name string) *Program {
	for _, p := range o.Programs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Relocation types of EM_BPF (llvm's BPF ELF relocation set).
const (
	rBPF64_64 = 1  // ld_imm64
	rBPF64_32 = 10 // call
)

type symbol struct {
	elf.Symbol
	index int
}

// function is a FUNC symbol's slot range in an executable section.
type function struct {
	name       string
	sec        int // section index
	start, end int // slots, section-relative
	global     bool
}

type secInfo struct {
	sec    *elf.Section
	insns  []ir.Instruction
	relocs map[int]reloc // by slot
	lines  map[int]*ir.SourceLine
	core   map[int]string // CO-RE relocations by slot
	funcs  []*function    // sorted by start
}

type reloc struct {
	sym  symbol
	kind uint32
}

type loader struct {
	name  string
	opts  Options
	f     *elf.File
	obj   *Object
	syms  []symbol // by ELF symbol index - 1
	execs map[int]*secInfo
	spec  *ebpf.CollectionSpec
	ext   *btf.ExtInfos
	maps  map[string]*Map // by name
}

// readerSize returns the size of r when it can tell (bytes.Reader,
// io.SectionReader, *os.File), else -1.
func readerSize(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case *os.File:
		if st, err := v.Stat(); err == nil {
			return st.Size()
		}
	}
	return -1
}

// checkHeader rejects, before debug/elf reads it, a 64-bit little-endian
// header whose section header table lies beyond the end of the file (which
// would otherwise make the reader allocate for it).
func checkHeader(r io.ReaderAt, size int64) error {
	if size < 0 {
		return nil
	}
	var h [64]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil // too short: debug/elf reports it
	}
	if string(h[:4]) != elf.ELFMAG || h[elf.EI_CLASS] != byte(elf.ELFCLASS64) || h[elf.EI_DATA] != byte(elf.ELFDATA2LSB) {
		return nil
	}
	shoff := binary.LittleEndian.Uint64(h[0x28:])
	shentsize := uint64(binary.LittleEndian.Uint16(h[0x3a:]))
	shnum := uint64(binary.LittleEndian.Uint16(h[0x3c:]))
	if shoff > uint64(size) || shnum*shentsize > uint64(size)-shoff {
		return fmt.Errorf("truncated: the section header table (%d entries at offset %d) lies beyond the end of the file (%d bytes)", shnum, shoff, size)
	}
	return nil
}

func (l *loader) load(r io.ReaderAt) error {
	size := readerSize(r)
	if err := checkHeader(r, size); err != nil {
		return err
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not an ELF object: %v", err)
	}
	l.f = f
	if size >= 0 {
		for _, sec := range f.Sections {
			if sec.Type != elf.SHT_NOBITS && sec.Type != elf.SHT_NULL && (sec.Offset > uint64(size) || sec.Size > uint64(size)-sec.Offset) {
				return fmt.Errorf("section %s: truncated: %d bytes at offset %d, but the file has %d bytes", sec.Name, sec.Size, sec.Offset, size)
			}
		}
	}
	if f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("ELF class %v, want ELFCLASS64", f.Class)
	}
	if f.Machine != elf.EM_BPF {
		return fmt.Errorf("machine %v, want EM_BPF (compile with clang -target bpf)", f.Machine)
	}
	if f.Data != elf.ELFDATA2LSB {
		return fmt.Errorf("%v objects are not supported, only little-endian (bpfel)", f.Data)
	}
	if f.Type != elf.ET_REL {
		return fmt.Errorf("ELF type %v, want a relocatable object (ET_REL)", f.Type)
	}
	l.obj = &Object{File: l.name}

	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("reading the symbol table: %v", err)
	}
	for i, s := range syms {
		l.syms = append(l.syms, symbol{Symbol: s, index: i + 1})
	}

	// BTF and line info; an object without BTF (no -g) is fine.
	spec, ext, err := btf.LoadSpecAndExtInfosFromReader(r)
	switch {
	case err == nil:
		l.obj.BTF, l.ext = spec, ext
	case errors.Is(err, btf.ErrNotFound):
		if f.Section(".BTF") != nil {
			return fmt.Errorf("corrupt BTF: %v", err)
		}
	default:
		return fmt.Errorf("corrupt BTF: %v", err)
	}

	if sec := f.Section("license"); sec != nil {
		data, err := sec.Data()
		if err != nil {
			return fmt.Errorf("section license: %v", err)
		}
		l.obj.License = string(bytes.TrimRight(data, "\x00"))
	}

	// Program types and maps through cilium where it understands the object.
	if cs, err := ebpf.LoadCollectionSpecFromReader(r); err == nil {
		l.spec = cs
	}
	if err := l.loadMaps(); err != nil {
		return err
	}
	if err := l.readExecSections(); err != nil {
		return err
	}
	return l.buildPrograms()
}

func (l *loader) secName(i int) string {
	if i > 0 && i < len(l.f.Sections) {
		return l.f.Sections[i].Name
	}
	return fmt.Sprintf("section#%d", i)
}

func (l *loader) readExecSections() error {
	l.execs = map[int]*secInfo{}
	for i, sec := range l.f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			return fmt.Errorf("section %s: %v", sec.Name, err)
		}
		if len(data)%ir.InsnSize != 0 {
			return fmt.Errorf("section %s: size %d is not a multiple of 8", sec.Name, len(data))
		}
		si := &secInfo{sec: sec, relocs: map[int]reloc{}, lines: map[int]*ir.SourceLine{}, core: map[int]string{}}
		si.insns = make([]ir.Instruction, len(data)/ir.InsnSize)
		for k := range si.insns {
			b := data[k*ir.InsnSize:]
			si.insns[k] = ir.Instruction{
				Op:  b[0],
				Dst: ir.Register(b[1] & 0xf),
				Src: ir.Register(b[1] >> 4),
				Off: int16(binary.LittleEndian.Uint16(b[2:])),
				Imm: int32(binary.LittleEndian.Uint32(b[4:])),
			}
		}
		l.execs[i] = si
	}
	// Functions by symbol.
	for _, s := range l.syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		si := l.execs[int(s.Section)]
		if si == nil {
			continue
		}
		n := uint64(len(si.insns))
		if s.Value%ir.InsnSize != 0 || s.Size%ir.InsnSize != 0 || s.Value/ir.InsnSize >= n || s.Size/ir.InsnSize > n-s.Value/ir.InsnSize {
			return fmt.Errorf("section %s: function %q at offset %d size %d is outside the section or misaligned", si.sec.Name, s.Name, s.Value, s.Size)
		}
		if s.Name == "" {
			return fmt.Errorf("section %s: function at offset %d has no name", si.sec.Name, s.Value)
		}
		fn := &function{name: s.Name, sec: int(s.Section), start: int(s.Value / ir.InsnSize), end: int((s.Value + s.Size) / ir.InsnSize),
			global: elf.ST_BIND(s.Info) == elf.STB_GLOBAL}
		si.funcs = append(si.funcs, fn)
	}
	for _, si := range l.execs {
		sort.Slice(si.funcs, func(a, b int) bool { return si.funcs[a].start < si.funcs[b].start })
		for k, fn := range si.funcs {
			if fn.end == fn.start { // size unknown: up to the next function
				fn.end = len(si.insns)
				if k+1 < len(si.funcs) {
					fn.end = si.funcs[k+1].start
				}
			}
			if k > 0 && fn.start < si.funcs[k-1].end {
				return fmt.Errorf("section %s: functions %q and %q overlap", si.sec.Name, si.funcs[k-1].name, fn.name)
			}
		}
	}
	// Relocations.
	for _, rs := range l.f.Sections {
		if rs.Type != elf.SHT_REL {
			continue
		}
		si := l.execs[int(rs.Info)]
		if si == nil {
			continue
		}
		data, err := rs.Data()
		if err != nil {
			return fmt.Errorf("section %s: %v", rs.Name, err)
		}
		if len(data)%16 != 0 {
			return fmt.Errorf("section %s: size %d is not a multiple of 16", rs.Name, len(data))
		}
		for k := 0; k < len(data); k += 16 {
			off := binary.LittleEndian.Uint64(data[k:])
			info := binary.LittleEndian.Uint64(data[k+8:])
			symIdx, typ := int(info>>32), uint32(info)
			if off%ir.InsnSize != 0 || off/ir.InsnSize >= uint64(len(si.insns)) {
				return fmt.Errorf("section %s: relocation at offset %d is outside the section or misaligned", si.sec.Name, off)
			}
			slot := int(off / ir.InsnSize)
			if symIdx <= 0 || symIdx > len(l.syms) {
				return &Error{File: l.name, Err: fmt.Errorf("section %s: %w", si.sec.Name,
					&ir.Error{Index: slot, Reason: fmt.Sprintf("relocation to unknown symbol #%d", symIdx)})}
			}
			si.relocs[slot] = reloc{sym: l.syms[symIdx-1], kind: typ}
		}
	}
	// Line info.
	if l.ext != nil {
		for _, i := range l.execOrder() {
			si := l.execs[i]
			_, lines, core := l.ext.Section(si.sec.Name)
			for _, c := range core {
				k := int(c.Offset)
				if k < 0 || k >= len(si.insns) {
					return fmt.Errorf("corrupt BTF: section %s: CO-RE relocation for instruction %d outside the section", si.sec.Name, k)
				}
				si.core[k] = c.Relo.String()
			}
			for _, lo := range lines {
				k := int(lo.Offset)
				if k < 0 || k >= len(si.insns) {
					return fmt.Errorf("corrupt BTF: section %s: line info for instruction %d outside the section", si.sec.Name, k)
				}
				si.lines[k] = &ir.SourceLine{File: lo.Line.FileName(), Line: lo.Line.LineNumber(),
					Column: lo.Line.LineColumn(), Text: lo.Line.Line()}
			}
		}
	}
	return nil
}

// execOrder returns the executable sections' indices in file order, so
// that programs and errors come out deterministically.
func (l *loader) execOrder() []int {
	idx := make([]int, 0, len(l.execs))
	for i := range l.execs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

func (l *loader) buildPrograms() error {
	for _, i := range l.execOrder() {
		si := l.execs[i]
		if si.sec.Name == ".text" {
			continue
		}
		if len(si.funcs) == 0 {
			return fmt.Errorf("section %s: executable section without a function symbol (missing program name)", si.sec.Name)
		}
		for _, fn := range si.funcs {
			p, err := l.link(fn)
			if err != nil {
				return &Error{File: l.name, Program: fn.name, Err: err, Line: l.lineOf(fn, err)}
			}
			l.obj.Programs = append(l.obj.Programs, p)
		}
	}
	return nil
}

// lineOf returns the source line of the instruction err names, when it is
// in the main function of the program (whose slots are the section's).
func (l *loader) lineOf(fn *function, err error) *ir.SourceLine {
	var ie *ir.Error
	if !errors.As(err, &ie) || ie.Index < 0 || ie.Index >= fn.end-fn.start {
		return nil
	}
	si := l.execs[fn.sec]
	for s := fn.start + ie.Index; s >= fn.start; s-- {
		if line := si.lines[s]; line != nil {
			return line
		}
	}
	return nil
}

// target is a function slot referenced by a call or function reference.
type target struct {
	sec, slot int
}

// linker builds one program.
type linker struct {
	l      *loader
	insns  []ir.Instruction
	aux    []ir.Aux
	core   []CORERelo
	placed map[*function]int // output slot of each placed function
	funcs  map[int]string
}

func (l *loader) link(main *function) (*Program, error) {
	k := &linker{l: l, placed: map[*function]int{}, funcs: map[int]string{}}
	if err := k.place(main); err != nil {
		return nil, err
	}
	prog := &ir.Program{Name: main.name, Insns: k.insns, Aux: k.aux}
	if err := ir.Validate(prog, ir.DecodeOptions{}); err != nil {
		return nil, err
	}
	p := &Program{Name: main.name, Section: l.secName(main.sec), Prog: prog, Funcs: k.funcs, CORE: k.core}
	p.Type, p.AttachType = l.progType(main.name, p.Section)
	return p, nil
}

// place appends fn to the program and resolves its references, appending
// callees depth first (as libbpf's bpf_object__reloc_code does).
func (k *linker) place(fn *function) error {
	si := k.l.execs[fn.sec]
	base := len(k.insns)
	if base+fn.end-fn.start > ir.MaxInsns {
		return &ir.Error{Index: -1, Reason: fmt.Sprintf("program is longer than %d instructions", ir.MaxInsns)}
	}
	k.placed[fn] = base
	k.funcs[base] = fn.name
	for s := fn.start; s < fn.end; s++ {
		k.insns = append(k.insns, si.insns[s])
		k.aux = append(k.aux, ir.Aux{OrigIndex: int32(base + s - fn.start), Line: si.lines[s]})
		if c, ok := si.core[s]; ok {
			k.core = append(k.core, CORERelo{Index: base + s - fn.start, What: c})
		}
	}
	global, argArena := k.l.funcLinkage(fn)
	k.aux[base].GlobalFunc = global && base > 0
	k.aux[base].ArgArena = argArena
	for s := fn.start; s < fn.end; s++ {
		i := base + s - fn.start
		ins := k.insns[i]
		r, hasReloc := si.relocs[s]
		if ins.IsLdImm64() {
			if s+1 >= fn.end {
				return &ir.Error{Index: i, Reason: "ld_imm64 is missing its second half"}
			}
			if hasReloc {
				if err := k.relocLd(i, fn, s, r); err != nil {
					return err
				}
			}
			s++
			continue
		}
		if !ins.IsCall() {
			if hasReloc {
				return &ir.Error{Index: i, Reason: fmt.Sprintf("relocation to %q on an instruction that is neither a call nor ld_imm64", r.sym.Name)}
			}
			continue
		}
		switch {
		case hasReloc:
			if err := k.relocCall(i, fn, s, r); err != nil {
				return err
			}
		case ins.Src == ir.CallLocal:
			if err := k.linkTo(i, target{fn.sec, s + 1 + int(ins.Imm)}, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *linker) relocCall(i int, fn *function, s int, r reloc) error {
	sym := r.sym
	if r.kind != rBPF64_32 {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("relocation type %d to %q on a call, want R_BPF_64_32", r.kind, sym.Name)}
	}
	switch {
	case sym.Section == elf.SHN_UNDEF:
		if elf.ST_TYPE(sym.Info) != elf.STT_FUNC && elf.ST_TYPE(sym.Info) != elf.STT_NOTYPE {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("call of extern %q that is not a function", sym.Name)}
		}
		if sym.Name == "" {
			return &ir.Error{Index: i, Reason: "call of an unnamed extern symbol"}
		}
		id, err := k.l.kfuncID(sym.Name)
		if err != nil {
			return &ir.Error{Index: i, Reason: err.Error()}
		}
		k.insns[i].Src = ir.CallKfunc
		k.insns[i].Imm = id
		k.insns[i].Off = 0
		k.aux[i].Symbol, k.aux[i].SymbolKind = sym.Name, ir.SymKfunc
		return nil
	case k.l.execs[int(sym.Section)] != nil:
		if k.insns[i].Src != ir.CallLocal {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("relocation to function %q on a call with src %d, want a bpf-to-bpf call", sym.Name, k.insns[i].Src)}
		}
		if sym.Value%ir.InsnSize != 0 {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("call target %q at misaligned offset %d", sym.Name, sym.Value)}
		}
		return k.linkTo(i, target{int(sym.Section), int(sym.Value/ir.InsnSize) + int(k.insns[i].Imm) + 1}, false)
	}
	return &ir.Error{Index: i, Reason: fmt.Sprintf("call of %q in section %s: not a function", sym.Name, k.l.secName(int(sym.Section)))}
}

func (k *linker) relocLd(i int, fn *function, s int, r reloc) error {
	sym := r.sym
	if r.kind != rBPF64_64 {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("relocation type %d to %q on ld_imm64, want R_BPF_64_64", r.kind, sym.Name)}
	}
	if k.insns[i].Src != ir.PseudoNone {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("relocation to %q on ld_imm64 with src %d already set", sym.Name, k.insns[i].Src)}
	}
	if sym.Section == elf.SHN_UNDEF {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("ld_imm64 of extern variable %q is not supported (ksym/kconfig externs need a kernel)", sym.Name)}
	}
	if sym.Section >= elf.SHN_LORESERVE || int(sym.Section) >= len(k.l.f.Sections) {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("ld_imm64 of %q in special section %#x", sym.Name, uint16(sym.Section))}
	}
	secName := k.l.secName(int(sym.Section))
	addend := int64(k.insns[i].Imm)
	if k.l.execs[int(sym.Section)] != nil {
		off := int64(sym.Value) + addend
		if off%ir.InsnSize != 0 {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("function reference to %q at misaligned offset %d", sym.Name, off)}
		}
		k.insns[i].Src = ir.PseudoFunc
		return k.linkTo(i, target{int(sym.Section), int(off / ir.InsnSize)}, true)
	}
	switch {
	case secName == ".maps" || secName == "maps":
		name := sym.Name
		if elf.ST_TYPE(sym.Info) == elf.STT_SECTION {
			name = k.l.symbolAt(int(sym.Section), sym.Value+uint64(addend))
		}
		if name == "" || k.l.maps[name] == nil {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("reference to unknown map %q in %s", sym.Name, secName)}
		}
		k.insns[i].Src = ir.PseudoMapFD
		k.insns[i].Imm = 0
		k.insns[i+1].Imm = 0
		k.aux[i].Symbol, k.aux[i].SymbolKind = name, ir.SymMap
	case secName == ArenaSection || isDataSection(secName):
		off := int64(sym.Value) + addend
		size := int64(k.l.f.Sections[sym.Section].Size)
		if off < 0 || off > size || off > 1<<31-1 {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("reference to %q at offset %d outside section %s of %d bytes", sym.Name, off, secName, size)}
		}
		k.insns[i].Src = ir.PseudoMapValue
		k.insns[i].Imm = 0
		k.insns[i+1].Imm = int32(off)
		kind := ir.SymMap
		if secName == ArenaSection {
			kind = ir.SymArena
		}
		k.aux[i].Symbol, k.aux[i].SymbolKind = secName, kind
	default:
		return &ir.Error{Index: i, Reason: fmt.Sprintf("ld_imm64 of %q in section %s is not supported", sym.Name, secName)}
	}
	return nil
}

// linkTo points the call or function reference at slot i to t, placing the
// function that contains t when it is not in the program yet.
func (k *linker) linkTo(i int, t target, isLd bool) error {
	si := k.l.execs[t.sec]
	var fn *function
	if si != nil {
		for _, f := range si.funcs {
			if t.slot >= f.start && t.slot < f.end {
				fn = f
				break
			}
		}
	}
	if fn == nil {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("call target is not inside a function (section %s, instruction %d)", k.l.secName(t.sec), t.slot)}
	}
	if t.slot != fn.start {
		return &ir.Error{Index: i, Reason: fmt.Sprintf("call target is instruction %d inside function %q, not its start", t.slot-fn.start, fn.name)}
	}
	base, ok := k.placed[fn]
	if !ok {
		if err := k.place(fn); err != nil {
			return err
		}
		base = k.placed[fn]
	}
	rel := int64(base) - int64(i) - 1
	k.insns[i].Imm = int32(rel)
	if isLd {
		k.insns[i+1].Imm = 0
	}
	k.aux[i].Symbol, k.aux[i].SymbolKind = fn.name, ir.SymFunc
	return nil
}

// funcLinkage reports whether fn has global linkage (from BTF, else from
// its ELF symbol) and which argument registers BTF tags arg:arena.
func (l *loader) funcLinkage(fn *function) (global bool, argArena ir.RegSet) {
	if l.obj.BTF == nil {
		return fn.global, 0
	}
	types, err := l.obj.BTF.AnyTypesByName(fn.name)
	if err != nil {
		return fn.global, 0
	}
	for _, t := range types {
		bf, ok := t.(*btf.Func)
		if !ok {
			continue
		}
		for k, tags := range bf.ParamTags {
			for _, tag := range tags {
				if tag == "arg:arena" && k < 5 {
					argArena = argArena.Add(ir.R1 + ir.Register(k))
				}
			}
		}
		return bf.Linkage == btf.GlobalFunc, argArena
	}
	return fn.global, 0
}

func (l *loader) symbolAt(sec int, value uint64) string {
	for _, s := range l.syms {
		if int(s.Section) == sec && s.Value == value && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			return s.Name
		}
	}
	return ""
}

func (l *loader) kfuncID(name string) (int32, error) {
	if l.opts.KernelBTF == nil && l.opts.ResolveKfuncs {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			return 0, fmt.Errorf("kfunc %q: kernel BTF: %v", name, err)
		}
		l.opts.KernelBTF = spec
	}
	if l.opts.KernelBTF == nil {
		return 0, nil
	}
	var fn *btf.Func
	if err := l.opts.KernelBTF.TypeByName(name, &fn); err != nil {
		if l.opts.ResolveKfuncs && InKernelModule(name) {
			// A module's kfunc: its id is in the module's BTF, which
			// the call names by an fd the loader passes; left at 0.
			return 0, nil
		}
		return 0, fmt.Errorf("kfunc %q is not in the kernel's BTF: %v", name, err)
	}
	id, err := l.opts.KernelBTF.TypeID(fn)
	if err != nil {
		return 0, fmt.Errorf("kfunc %q: %v", name, err)
	}
	return int32(id), nil
}

// InKernelModule reports whether the BTF of a loaded kernel module
// (/sys/kernel/btf/*, vmlinux excluded) has a function called name.
func InKernelModule(name string) bool {
	entries, err := os.ReadDir("/sys/kernel/btf")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Name() == "vmlinux" {
			continue
		}
		m, err := btf.LoadKernelModuleSpec(e.Name())
		if err != nil {
			continue
		}
		var fn *btf.Func
		if m.TypeByName(name, &fn) == nil {
			return true
		}
	}
	return false
}

func isDataSection(name string) bool {
	for _, p := range []string{".data", ".rodata", ".bss"} {
		if name == p || strings.HasPrefix(name, p+".") {
			return true
		}
	}
	return false
}
