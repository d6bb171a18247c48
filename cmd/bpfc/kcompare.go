package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
)

type kcompareFlags struct {
	inputFlags
	progType   string
	captureDir string
}

func newKcompare(g *globals) *cobra.Command {
	f := &kcompareFlags{}
	cmd := &cobra.Command{
		Use:   "kcompare [flags] INPUT...",
		Short: "Load programs into the live kernel and compare its JIT output with bpfc's",
		Long: `Kcompare loads every program into the running kernel (maps of an object are
created, kfuncs resolved by name), reads back the kernel's xlated program and JIT
image, compiles the xlated program with bpfc at the kernel's addresses, and compares
the machine code byte for byte. When the xlated program lines up with the original
one slot for slot, it also compiles the original program through the whole pass
pipeline with the addresses the kernel used and compares that too ("from source").
It prints one line per program and exits 1 when any comparison differs (the line
names the function, offset and BPF instruction); a program the kernel's verifier
rejects is reported as not compared.
Needs root, bpf() and the JIT on.`,
		Example: `  bpfc kcompare testdata/elf/alu.o
  bpfc kcompare --prog-type xdp prog.bin`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(g, args) },
	}
	f.add(cmd)
	cmd.Flags().StringVar(&f.progType, "prog-type", "", "program type: socket_filter, sched_cls, xdp or syscall (default: from the object's section, syscall for other inputs)")
	cmd.Flags().StringVar(&f.captureDir, "capture-dir", "", "also write each kernel capture as DIR/OBJECT.PROGRAM.json (DIR/NAME.json for other inputs)")
	return cmd
}

func (f *kcompareFlags) run(g *globals, args []string) error {
	var forced kernel.ProgType
	if f.progType != "" {
		t, err := kernel.ParseProgType(f.progType)
		if err != nil {
			return usageError{err}
		}
		forced = t
	}
	if f.fromXlated {
		return usagef("kcompare loads programs as the kernel takes them: --from-xlated does not apply")
	}
	inputs, err := f.load(g, args)
	if err != nil {
		return err
	}
	if ok, reason := kernel.Available(); !ok {
		return fmt.Errorf("kcompare: the live kernel is not usable: %s", reason)
	}
	failed := 0
	for _, in := range inputs {
		line, err := f.compare(in, forced)
		if err != nil {
			return err
		}
		if strings.Contains(line, "DIFFERS") {
			failed++
		}
		fmt.Fprintln(g.stdout, line)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d programs differ from the kernel's JIT", failed, len(inputs))
	}
	return nil
}

// kernelSpec turns an input into what internal/kernel loads: symbolic map
// and global references become fd_array indices.
func kernelSpec(in *compiler.Input, forced kernel.ProgType) (*kernel.Spec, error) {
	spec := &kernel.Spec{Name: in.Name, Type: kernel.Syscall, Program: in.Prog.Clone(), NoLineInfo: false}
	if len(spec.Name) > 15 {
		spec.Name = spec.Name[:15] // BPF_OBJ_NAME_LEN - 1
	}
	if in.ElfProg != nil {
		if in.ElfProg.Type != 0 {
			spec.Type = kernel.ProgType(in.ElfProg.Type)
		}
		if in.Object.License != "" {
			spec.License = in.Object.License
		}
		index := map[string]int{}
		for k, m := range in.Object.Maps {
			index[m.Name] = k
			def := kernel.MapDef{Type: kernel.MapType(m.Type), KeySize: m.KeySize, ValueSize: m.ValueSize,
				MaxEntries: m.MaxEntries, Flags: m.Flags, Extra: m.MapExtra}
			spec.Maps = append(spec.Maps, def)
		}
		p := spec.Program
		for i := range p.Insns {
			a := p.Aux[i]
			if !p.Insns[i].IsLdImm64() || (a.SymbolKind != ir.SymMap && a.SymbolKind != ir.SymArena) {
				continue
			}
			name := a.Symbol
			off := p.Insns[i+1].Imm
			if a.SymbolKind == ir.SymArena {
				ag := in.Object.Arena
				if ag == nil || ag.Map == "" {
					return nil, &ir.Error{Index: i, Reason: "arena global without an arena map"}
				}
				name = ag.Map
				// libbpf places the globals at the end of the arena.
				m := in.Object.Maps[index[name]]
				size := (ag.Size + 4095) &^ 4095
				off += int32(int(m.MaxEntries)*4096 - size)
			}
			k, ok := index[name]
			if !ok {
				return nil, &ir.Error{Index: i, Reason: fmt.Sprintf("map %q is not defined by the object", name)}
			}
			if p.Insns[i].Src == ir.PseudoMapFD {
				p.Insns[i].Src = ir.PseudoMapIdx
			} else {
				p.Insns[i].Src = ir.PseudoMapIdxValue
				p.Insns[i+1].Imm = off
			}
			p.Insns[i].Imm = int32(k)
		}
	}
	if forced != 0 {
		spec.Type = forced
	}
	return spec, nil
}

func (f *kcompareFlags) compare(in *compiler.Input, forced kernel.ProgType) (string, error) {
	errName := ""
	if in.ElfProg != nil {
		errName = in.Name
	}
	fail := func(err error) (string, error) {
		return "", &compiler.Error{File: in.File, Program: errName, Err: err}
	}
	spec, err := kernelSpec(in, forced)
	if err != nil {
		return fail(err)
	}
	l, err := kernel.Load(spec)
	if err != nil {
		var le *kernel.LoadError
		if errors.As(err, &le) {
			// The verifier's verdict is not a bpfc difference: report it.
			return fmt.Sprintf("%s: %s: not compared: the kernel rejected it (%s)", in.File, in.Name,
				strings.SplitN(le.Err.Error(), "\n", 2)[0]), nil
		}
		return fail(err)
	}
	defer l.Close()
	c, err := kernel.CaptureLoaded(l, "bpfc kcompare "+in.File)
	if err != nil {
		return fail(err)
	}
	if f.captureDir != "" {
		b, err := c.Marshal()
		if err != nil {
			return fail(err)
		}
		base := strings.TrimSuffix(filepath.Base(in.File), filepath.Ext(in.File))
		name := in.Name + ".json"
		if in.ElfProg != nil {
			name = base + "." + name
		}
		if err := writeOutput(nil, filepath.Join(f.captureDir, name), b); err != nil {
			return fail(err)
		}
	}
	p, err := c.Program()
	if err != nil {
		return fail(err)
	}
	t := linux618()
	t.CallBase = uint64(c.CallBase)
	t.IndirectThunkRCX = uint64(c.IndirectThunkRCX)
	t.ReturnThunk = uint64(c.ReturnThunk)
	t.KernVMStart = uint64(c.KernVMStart)
	t.UserVMStart = uint64(c.UserVMStart)
	xin := &compiler.Input{File: in.File, Kind: compiler.KindRaw, Name: in.Name, Prog: p}
	r, err := compiler.Compile(xin, compiler.Options{Target: t, ExecBase: c.ExecBase(), FromXlated: true})
	if err != nil {
		return fmt.Sprintf("%s: %s: bpfc cannot compile the kernel's xlated program: %v", in.File, in.Name, err), nil
	}
	got := r.Image.Code()
	if !bytes.Equal(got, c.Jited) {
		return fmt.Sprintf("%s: %s: %s", in.File, in.Name, firstDifference(r, c)), nil
	}
	line := fmt.Sprintf("%s: %s: identical: %d bytes, %d functions, %d BPF instructions (xlated), %d layout passes",
		in.File, in.Name, len(got), len(r.Image.Funcs), p.Len(), r.Image.Passes)
	return line + "; from source: " + fromSource(in, c, p, t), nil
}

// kernelRewriteSymbols are the kernel symbols the fixups pass may need for
// the kernel's own rewrites.
var kernelRewriteSymbols = []string{
	passes.MayGotoSymbol, passes.CPUNumberSymbol, passes.JiffiesSymbol,
	"__htab_map_lookup_elem", "array_map_lookup_elem", "array_map_update_elem", "array_map_delete_elem",
	"htab_map_lookup_elem", "htab_map_update_elem", "htab_map_delete_elem",
}

// linux618 and rewriteSymbols read /proc/kallsyms once per process (it is
// slow to read: kcompare of many programs would spend its time there).
var (
	linux618 = sync.OnceValue(amd64.Linux618)

	rewriteSymbols = sync.OnceValue(func() map[string]uint64 {
		f, err := os.Open("/proc/kallsyms")
		if err != nil {
			return nil
		}
		defer f.Close()
		return amd64.ReadKallsyms(f, kernelRewriteSymbols...)
	})
)

// needsSymbol matches the fixups pass's request for a kernel symbol.
var needsSymbol = regexp.MustCompile(`Symbols needs "([A-Za-z0-9_.]+)"`)

// kallsymsLookup returns the address of one kernel symbol (0: unknown).
func kallsymsLookup(name string) uint64 {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0
	}
	defer f.Close()
	return amd64.ReadKallsyms(f, name)[name]
}

// fromSource compiles the original program through the whole pipeline with
// the addresses the kernel used and compares with the kernel's code.
func fromSource(in *compiler.Input, c *kernel.Capture, jit *ir.Program, t amd64.Target) string {
	syms, ok := compiler.KernelSymbols(in.Prog, jit, uint64(c.CallBase))
	if ok {
		// Kernel functions and variables the passes' rewrites call or
		// load (map helpers, may_goto, inlined helpers), from kallsyms.
		for name, a := range rewriteSymbols() {
			if _, set := syms[name]; !set && a != 0 {
				syms[name] = a
			}
		}
	}
	if !ok {
		return "not compared (the kernel's map loads and calls do not pair up with the original's)"
	}
	o := compiler.Options{Target: t, ExecBase: c.ExecBase(), Symbols: syms, NoBackend: true}
	r, err := compiler.Compile(in, o)
	// A rewrite that needs another kernel symbol names it: look it up.
	for tries := 0; err != nil && tries < 8; tries++ {
		m := needsSymbol.FindStringSubmatch(err.Error())
		if m == nil || syms[m[1]] != 0 {
			break
		}
		a := kallsymsLookup(m[1])
		if a == 0 {
			break
		}
		syms[m[1]] = a
		r, err = compiler.Compile(in, o)
	}
	if err != nil {
		return "not compiled: " + oneLine(err.Error())
	}
	if i := compiler.Mismatch(r.Prog, jit); i >= 0 {
		text := func(p *ir.Program) string {
			if i < p.Len() {
				return p.Format(i)
			}
			return "(end)"
		}
		return fmt.Sprintf("not compared: the verifier rewrote instruction %d beyond what the passes do (kernel `%s`, passes `%s`)",
			i, text(jit), text(r.Prog))
	}
	o.NoBackend = false
	r, err = compiler.Compile(in, o)
	if err != nil {
		return "not compiled: " + oneLine(err.Error())
	}
	if bytes.Equal(r.Image.Code(), c.Jited) {
		return "identical"
	}
	return firstDifference(r, c)
}

// firstDifference describes where bpfc's code first differs from the
// kernel's: function, offset, BPF instruction, and both x86 instructions.
func firstDifference(r *compiler.Result, c *kernel.Capture) string {
	if len(r.Image.Funcs) != len(c.FuncLens) {
		return fmt.Sprintf("DIFFERS: %d functions, the kernel has %d", len(r.Image.Funcs), len(c.FuncLens))
	}
	for k, fn := range r.Image.Funcs {
		want := c.FuncCode(k)
		n := min(len(want), len(fn.Code))
		off := 0
		for off < n && want[off] == fn.Code[off] {
			off++
		}
		if off == len(want) && off == len(fn.Code) {
			continue
		}
		insn := "prologue"
		for j := 0; j+1 < len(fn.Addrs); j++ {
			if int(fn.Addrs[j]) <= off && off < int(fn.Addrs[j+1]) {
				insn = fmt.Sprintf("BPF instruction %d (%s)", fn.Start+j, r.Prog.Format(fn.Start+j))
				break
			}
		}
		return fmt.Sprintf("DIFFERS in function %d at offset %#x, %s: kernel %s, bpfc %s (lengths %d and %d)",
			k, off, insn, x86At(want, off), x86At(fn.Code, off), len(want), len(fn.Code))
	}
	return "DIFFERS (same functions, different concatenation)"
}

func x86At(code []byte, off int) string {
	if off >= len(code) {
		return "(end)"
	}
	inst, err := x86asm.Decode(code[off:], 64)
	if err != nil {
		return fmt.Sprintf("% x (undecodable)", code[off:min(off+8, len(code))])
	}
	return fmt.Sprintf("`%s` (% x)", x86asm.IntelSyntax(inst, 0, nil), code[off:off+inst.Len])
}
