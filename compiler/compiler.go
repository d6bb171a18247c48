package compiler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
	"github.com/bpfc/bpfc/ir/elf"
	"github.com/bpfc/bpfc/passes"
	"github.com/bpfc/bpfc/pipeline"
)

// Kind is the format of an input file.
type Kind int

const (
	KindAuto Kind = iota // decide from the content and the file name
	KindELF              // clang BPF object
	KindRaw              // raw little-endian instructions
	KindAsm              // conformance-suite assembly (.data)
)

func (k Kind) String() string {
	return [...]string{"auto", "elf", "raw", "asm"}[k]
}

// ParseKind reads "auto", "elf", "raw" or "asm".
func ParseKind(s string) (Kind, error) {
	for k := KindAuto; k <= KindAsm; k++ {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown input format %q (want auto, elf, raw or asm)", s)
}

// Input is one program read from a file.
type Input struct {
	File    string // the path as given; "-" for standard input
	Kind    Kind
	Name    string // the program's name: its function for objects, else the file's base name
	Section string // the ELF section, for objects
	Prog    *ir.Program

	// Object and ElfProg are set for objects.
	Object  *elf.Object
	ElfProg *elf.Program
	// Test is set for conformance files (memory, expected result).
	Test *asm.File
}

// Error is a problem with one input, optionally in one program.
type Error struct {
	File    string
	Program string
	Err     error
	// Prog, when set, is the program the error's instruction index refers
	// to (as it stood when the error happened), for ErrorContext.
	Prog *ir.Program
	// Raw, for raw input that did not decode, is its bytes (ErrorContext
	// shows the slots around the instruction the error names).
	Raw []byte
	// Text, for assembly input that did not parse, is its text
	// (ErrorContext shows the lines around the one the error names).
	Text []byte
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
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// LoadOptions control how inputs are read.
type LoadOptions struct {
	// Kind forces the input format; KindAuto detects it: ELF by its magic,
	// .data/.asm/.s as assembly, anything else (and stdin) as raw bytes.
	Kind Kind
	// Prog selects one program of an object by function name or section;
	// "" selects all. For other inputs it must be "" or the file's name.
	Prog string
	// FromXlated accepts the kernel-internal forms of an xlated dump in raw
	// inputs (PROBE_* modes, r11, the tail-call opcode, ...).
	FromXlated bool
	// Stdin is read for the path "-" (os.Stdin when nil).
	Stdin io.Reader
	// ELF options (kernel BTF for kfunc ids).
	ELF elf.Options
}

// Load reads the programs of one input file.
func Load(path string, o LoadOptions) ([]*Input, error) {
	var data []byte
	var err error
	if path == "-" {
		in := o.Stdin
		if in == nil {
			in = os.Stdin
		}
		data, err = io.ReadAll(io.LimitReader(in, int64(ir.MaxInsns)*ir.InsnSize+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, &Error{File: path, Err: unwrapPath(err)}
	}
	return LoadBytes(path, data, o)
}

// unwrapPath drops the path from an *os.PathError (the Error adds it).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LoadBytes is Load for data already in memory; path names it.
func LoadBytes(path string, data []byte, o LoadOptions) ([]*Input, error) {
	kind := o.Kind
	if kind == KindAuto {
		kind = Detect(path, data)
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if path == "-" {
		base = "stdin"
	}
	single := func(in *Input) ([]*Input, error) {
		if o.Prog != "" && o.Prog != in.Name {
			return nil, &Error{File: path, Err: fmt.Errorf("--prog %q: a %s input has one program, called %q", o.Prog, kind, in.Name)}
		}
		in.Prog.Name = in.Name
		return []*Input{in}, nil
	}
	switch kind {
	case KindELF:
		obj, err := elf.LoadReader(bytes.NewReader(data), path, o.ELF)
		if err != nil {
			return nil, err // *elf.Error names the file already
		}
		progs, err := obj.Select(o.Prog)
		if err != nil {
			return nil, err
		}
		if len(progs) == 0 {
			return nil, &Error{File: path, Err: errors.New("object has no programs")}
		}
		out := make([]*Input, len(progs))
		for k, p := range progs {
			if o.ELF.KernelBTF == nil {
				if err := checkKfuncs(p.Prog); err != nil { // kfuncs.go
					return nil, &Error{File: path, Program: p.Name, Err: withSourceLine(err, p.Prog), Prog: p.Prog}
				}
			}
			out[k] = &Input{File: path, Kind: kind, Name: p.Name, Section: p.Section, Prog: p.Prog, Object: obj, ElfProg: p}
		}
		return out, nil
	case KindAsm:
		f, err := asm.Parse(data)
		if err != nil {
			return nil, &Error{File: path, Err: err, Text: data}
		}
		if f.Program == nil {
			return nil, &Error{File: path, Err: errors.New("no program (neither an asm nor a raw section)")}
		}
		return single(&Input{File: path, Kind: kind, Name: base, Prog: f.Program, Test: f})
	default:
		p, err := ir.DecodeWith(data, ir.DecodeOptions{Xlated: o.FromXlated})
		if err != nil {
			return nil, &Error{File: path, Err: err, Raw: data}
		}
		return single(&Input{File: path, Kind: KindRaw, Name: base, Prog: p})
	}
}

// Detect guesses the format of an input.
func Detect(path string, data []byte) Kind {
	if bytes.HasPrefix(data, []byte("\x7fELF")) {
		return KindELF
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".o", ".elf":
		return KindELF
	case ".data", ".asm", ".s":
		return KindAsm
	}
	return KindRaw
}

// Options control compilation.
type Options struct {
	// Target is the machine and kernel the code is for (amd64.Linux618()
	// by default, i.e. when Target.Name is "").
	Target amd64.Target
	// ExecBase is the exec address of each function (see amd64.Compile).
	// Empty: the first function at the target's PseudoFuncAddr (for
	// linux-6.18 the start of the module area, where the kernel puts BPF
	// code, so that calls of kernel helpers are in rel32 range), the others
	// packed after it.
	ExecBase []uint64
	// FromXlated: the program is the kernel's xlated copy; only what the
	// JIT needs is derived.
	FromXlated bool
	// Pipeline replaces the default pass pipeline.
	Pipeline *pipeline.Pipeline
	// DumpAfter names passes after which the program is dumped ("all").
	DumpAfter []string
	// Symbols gives the addresses of map, arena and other symbols.
	Symbols map[string]uint64
	// ResolveCalls looks the callees of helper and kfunc calls up in
	// /proc/kallsyms (kfuncs by name, helpers by their kernel function
	// name, bpf_<helper>) and sets __bpf_call_base from the target, so that
	// the calls get the immediates the kernel gives them. All or nothing:
	// when a callee is not found (or kallsyms hides addresses) the calls are
	// left as they are. Symbols given by the caller win.
	ResolveCalls bool
	// FakeMapAddrs gives every map of an object that Symbols does not
	// cover a made-up kernel address (FakeMapBase + k*0x1000), so that a
	// program with maps compiles without a kernel; the code then has the
	// kernel's shape but not its map addresses.
	FakeMapAddrs bool
	// Logger receives per-pass logs and dumps (nop when nil).
	Logger *zap.Logger
	// NoBackend stops after the passes.
	NoBackend bool
}

// FakeMapBase is where FakeMapAddrs starts (a direct-map kernel address).
const FakeMapBase = 0xffff888100000000

// symbolsFor completes the symbol addresses for an object: the arena
// globals' address when the target has a user_vm_start (libbpf puts them at
// the end of the arena, and the verifier loads user_vm_start + offset), and
// with FakeMapAddrs made-up map addresses.
func symbolsFor(in *Input, o Options, t amd64.Target) map[string]uint64 {
	if in.Object == nil && !o.ResolveCalls {
		return o.Symbols
	}
	syms := map[string]uint64{}
	for k, v := range o.Symbols {
		syms[k] = v
	}
	if in.Object == nil {
		in = &Input{Prog: in.Prog, Object: &elf.Object{}}
	}
	if a := in.Object.Arena; a != nil && t.UserVMStart != 0 {
		if _, ok := syms[elf.ArenaSection]; !ok {
			pages := uint64(0)
			for _, m := range in.Object.Maps {
				if m.Name == a.Map {
					pages = uint64(m.MaxEntries)
				}
			}
			syms[elf.ArenaSection] = t.UserVMStart + pages*4096 - (uint64(a.Size)+4095)&^4095
		}
	}
	if o.ResolveCalls {
		if _, ok := syms[passes.CallBaseSymbol]; !ok {
			for k, v := range kallsymsCalls(in.Prog, t) {
				if _, set := syms[k]; !set {
					syms[k] = v
				}
			}
		}
	}
	if o.FakeMapAddrs {
		for k, m := range in.Object.Maps {
			if _, ok := syms[m.Name]; !ok {
				syms[m.Name] = FakeMapBase + uint64(k)*0x1000
			}
		}
	}
	return syms
}

// Result is a compiled program.
type Result struct {
	Input  *Input
	Prog   *ir.Program      // the program after the passes
	Passes *pipeline.Result // per-pass statistics and dumps
	Image  *amd64.Image     // nil with NoBackend
	Target amd64.Target
}

// Compile runs the passes and the backend over one input's program. The
// input's program is not modified.
func Compile(in *Input, o Options) (*Result, error) {
	t := o.Target
	if t.Name == "" {
		t = amd64.Linux618()
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	pl := o.Pipeline
	if pl == nil {
		pl = PipelineFor(in, o.FromXlated)
	}
	if o.DumpAfter != nil {
		pl.DumpAfter = o.DumpAfter
	}
	p := in.Prog.Clone()
	syms := symbolsFor(in, o, t)
	ctx := &pipeline.Context{
		Logger:      log.With(zap.String("file", in.File), zap.String("prog", in.Name)),
		File:        in.File,
		FromXlated:  o.FromXlated,
		Symbols:     syms,
		KernVMStart: t.KernVMStart,
		UserVMStart: t.UserVMStart,
	}
	errName := ""
	if in.Kind == KindELF {
		errName = in.Name
	}
	if in.ElfProg != nil && len(in.ElfProg.CORE) > 0 {
		ctx.Logger.Warn("CO-RE relocations are not applied: the instructions keep clang's local offsets",
			zap.Int("count", len(in.ElfProg.CORE)), zap.Int("first_instruction", in.ElfProg.CORE[0].Index),
			zap.String("first", in.ElfProg.CORE[0].What))
	}
	pres, err := pl.Run(p, ctx)
	if err != nil {
		return nil, &Error{File: in.File, Program: errName, Err: withSourceLine(err, p), Prog: p}
	}
	res := &Result{Input: in, Prog: p, Passes: pres, Target: t}
	if o.NoBackend {
		return res, nil
	}
	base := o.ExecBase
	if len(base) == 0 && t.PseudoFuncAddr != 0 {
		base = []uint64{t.PseudoFuncAddr}
	}
	im, err := amd64.Compile(p, t, base)
	if err != nil {
		return nil, &Error{File: in.File, Program: errName, Err: withSourceLine(err, p), Prog: p}
	}
	res.Image = im
	return res, nil
}

// KernelSymbols derives, from the program the kernel JIT compiled (the
// xlated program with map addresses, as internal/kernel's Capture.JITInput
// holds it), the addresses the passes need to compile the original program
// src to the same code: maps, globals and arena globals by symbol, kfuncs by
// name, helpers by passes.HelperSymbol, and __bpf_call_base. The ld_imm64s
// and helper/kfunc calls of the two programs are paired in order (the
// verifier's insertions, such as division guards, add neither; a helper
// call the kernel inlines is skipped); when they do not pair up it reports
// false.
func KernelSymbols(src, jit *ir.Program, callBase uint64) (map[string]uint64, bool) {
	events := func(p *ir.Program) []int {
		var out []int
		for i := 0; i < p.Len(); i++ {
			ins := p.Insns[i]
			if ins.IsLdImm64() || (ins.IsCall() && !ins.IsPseudoCall()) {
				out = append(out, i)
			}
			if ins.IsLdImm64() {
				i++
			}
		}
		return out
	}
	se, je := events(src), events(jit)
	syms := map[string]uint64{passes.CallBaseSymbol: callBase}
	k := 0 // next kernel event
	for n, i := range se {
		s := src.Insns[i]
		a := src.Aux[i]
		// A helper the kernel inlined leaves no call behind: skip such a
		// call while the original has more events left than the kernel's.
		if s.IsHelperCall() && inlinedHelpers[s.Imm] && len(se)-n > len(je)-k {
			continue
		}
		if k >= len(je) || s.IsLdImm64() != jit.Insns[je[k]].IsLdImm64() {
			return nil, false
		}
		j := jit.Insns[je[k]]
		k++
		switch {
		case s.IsLdImm64():
			if a.Symbol != "" && (a.SymbolKind == ir.SymMap || a.SymbolKind == ir.SymArena) {
				addr := ir.Imm64(j, jit.Insns[je[k-1]+1])
				if s.Src == ir.PseudoMapValue || s.Src == ir.PseudoMapIdxValue {
					addr -= uint64(uint32(src.Insns[i+1].Imm))
				}
				if old, ok := syms[a.Symbol]; ok && old != addr {
					return nil, false
				}
				syms[a.Symbol] = addr
			}
		case s.IsKfuncCall() && a.Symbol != "":
			syms[a.Symbol] = callBase + uint64(int64(j.Imm))
		case s.IsHelperCall():
			syms[passes.HelperSymbol(s.Imm)] = callBase + uint64(int64(j.Imm))
		}
	}
	if k != len(je) {
		return nil, false
	}
	return syms, true
}

// inlinedHelpers are the helpers the 6.18 verifier may replace by inline
// code on x86-64 (no call left in the xlated program): map lookups of array
// maps, smp_processor_id, current_task(_btf), jiffies64, per-cpu pointers,
// bpf_loop, the get_func_arg family, percpu map lookups.
var inlinedHelpers = map[int32]bool{1: true, 8: true, 35: true, 118: true, 153: true, 154: true, 158: true,
	181: true, 183: true, 184: true, 185: true, 195: true}

// SourceError is an error at an instruction that came from a known C line.
type SourceError struct {
	Err  error
	Line ir.SourceLine
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("%v [%s:%d: %s]", e.Err, filepath.Base(e.Line.File), e.Line.Line, strings.TrimSpace(e.Line.Text))
}

func (e *SourceError) Unwrap() error { return e.Err }

// withSourceLine adds the C source line of the instruction an error names,
// when the program has line info (the line of the nearest instruction at or
// before it that has a record, as line info is sparse).
func withSourceLine(err error, p *ir.Program) error {
	var ie *ir.Error
	if !errors.As(err, &ie) || ie.Index < 0 || ie.Index >= p.Len() {
		return err
	}
	for i := ie.Index; i >= 0; i-- {
		if l := p.Aux[i].Line; l != nil {
			return &SourceError{Err: err, Line: *l}
		}
	}
	return err
}

// Mismatch compares the program the passes produced (ours) with the
// program the kernel's JIT compiled (the xlated program with addresses) and
// returns the first slot where they differ, or -1. The immediates of
// ld_imm64s and calls (addresses) are not compared, and the arena modes are
// compared as the xlated dump shows them (PROBE_MEM32 as MEM, PROBE_MEM32SX
// as MEMSX, PROBE_ATOMIC as ATOMIC). A difference means the verifier did
// something the passes do not (dead-code elimination, branch folding,
// helper inlining...), so the two compilations cannot be expected to agree.
func Mismatch(ours, kernel *ir.Program) int {
	n := min(ours.Len(), kernel.Len())
	for i := 0; i < n; i++ {
		a, b := dumpForm(ours.Insns[i]), dumpForm(kernel.Insns[i])
		if a.IsLdImm64() && b.IsLdImm64() {
			if a.Dst != b.Dst {
				return i
			}
			i++
			continue
		}
		if a.IsCall() && b.IsCall() && !a.IsPseudoCall() && !b.IsPseudoCall() {
			continue
		}
		if a != b {
			return i
		}
	}
	if ours.Len() != kernel.Len() {
		return n
	}
	return -1
}

// dumpForm maps the kernel-internal arena modes to what an xlated dump shows.
func dumpForm(ins ir.Instruction) ir.Instruction {
	c, m := ins.Class(), ins.Mode()
	switch {
	case (c == ir.ClassLDX || c == ir.ClassST || c == ir.ClassSTX) && m == ir.ModeProbeMem32:
		ins.Op = ins.Op&^0xe0 | uint8(ir.ModeMEM)
	case c == ir.ClassLDX && m == ir.ModeProbeMem32SX:
		ins.Op = ins.Op&^0xe0 | uint8(ir.ModeMEMSX)
	case c == ir.ClassSTX && m == ir.ModeProbeAtomic:
		ins.Op = ins.Op&^0xe0 | uint8(ir.ModeATOMIC)
	}
	return ins
}

// kallsymsPath is read by ResolveCalls (a variable for tests).
var kallsymsPath = "/proc/kallsyms"

// kallsymsCalls returns the addresses ResolveCalls needs for p's helper and
// kfunc calls, or nil when a callee is not found.
func kallsymsCalls(p *ir.Program, t amd64.Target) map[string]uint64 {
	keys := map[string]string{} // Symbols key -> kernel symbol
	for i, ins := range p.Insns {
		switch {
		case ins.IsKfuncCall() && p.Aux[i].Symbol != "":
			keys[p.Aux[i].Symbol] = p.Aux[i].Symbol
		case ins.IsHelperCall() && !ins.IsTailCall():
			name, ok := ir.HelperName(ins.Imm)
			if !ok {
				return nil
			}
			keys[passes.HelperSymbol(ins.Imm)] = name
		}
	}
	if len(keys) == 0 || t.CallBase == 0 {
		return nil
	}
	f, err := os.Open(kallsymsPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	names := make([]string, 0, len(keys))
	for _, n := range keys {
		names = append(names, n)
	}
	addrs := amd64.ReadKallsyms(f, names...)
	out := map[string]uint64{passes.CallBaseSymbol: t.CallBase}
	for k, n := range keys {
		a := addrs[n]
		if a == 0 {
			return nil
		}
		out[k] = a
	}
	return out
}
