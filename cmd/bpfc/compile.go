package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
	"github.com/spf13/cobra"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/elf"
)

// inputFlags are the flags every subcommand that reads programs shares.
type inputFlags struct {
	prog        string
	inputFormat string
	fromXlated  bool
	kernelBTF   string
}

func (f *inputFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.prog, "prog", "", "select one program of an object by function name or section (default: every program)")
	fl.StringVar(&f.inputFormat, "input-format", "auto", "input format: auto, elf, raw or asm (auto: ELF by magic, .data/.asm/.s as assembly, else raw)")
	fl.BoolVar(&f.fromXlated, "from-xlated", false, "the input is the kernel's xlated program (accept PROBE_* modes, r11; run only the passes the JIT needs)")
	fl.StringVar(&f.kernelBTF, "kernel-btf", "auto", "BTF that kfunc calls of objects are resolved against: auto (/sys/kernel/btf/vmlinux when present), none, or a file")
}

// elfOptions turns --kernel-btf into loader options.
func (f *inputFlags) elfOptions() (elf.Options, error) {
	switch f.kernelBTF {
	case "none", "":
		return elf.Options{}, nil
	case "auto":
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
			return elf.Options{ResolveKfuncs: true}, nil
		}
		return elf.Options{}, nil
	}
	spec, err := btf.LoadSpec(f.kernelBTF)
	if err != nil {
		return elf.Options{}, usagef("--kernel-btf %s: %v", f.kernelBTF, err)
	}
	return elf.Options{KernelBTF: spec}, nil
}

func (f *inputFlags) load(g *globals, paths []string) ([]*compiler.Input, error) {
	kind, err := compiler.ParseKind(f.inputFormat)
	if err != nil {
		return nil, usageError{err}
	}
	eo, err := f.elfOptions()
	if err != nil {
		return nil, err
	}
	stdinUsed := false
	var all []*compiler.Input
	for _, path := range paths {
		if path == "-" {
			if stdinUsed {
				return nil, usagef("standard input (-) given more than once")
			}
			stdinUsed = true
		}
		ins, err := compiler.Load(path, compiler.LoadOptions{Kind: kind, Prog: f.prog, FromXlated: f.fromXlated, Stdin: g.stdin, ELF: eo})
		if err != nil {
			return nil, err
		}
		all = append(all, ins...)
	}
	return all, nil
}

type compileFlags struct {
	inputFlags
	format      string
	output      string
	dumpAfter   []string
	target      string
	execBase    string
	callBase    string
	kernVMStart string
	userVMStart string
	symbols     []string
	retThunk    string
	indThunk    string
	noKallsyms  bool
	noBackend   bool
	fakeMaps    bool
	html        string
	context     int
}

func newCompile(g *globals) *cobra.Command {
	f := &compileFlags{}
	cmd := &cobra.Command{
		Use:   "compile [flags] INPUT...",
		Short: "Compile programs to x86-64 machine code",
		Long: `Compile runs the pass pipeline and the x86-64 backend over every program of every
INPUT: a clang BPF object (.o), raw little-endian bytecode (.bin), conformance-suite
assembly (.data), or - for raw bytecode on standard input.

Output formats:
  raw   the machine code bytes (all functions, as the kernel's jited_prog_insns);
        needs exactly one program
  hex   one line per function: PROGRAM FUNCTION EXEC_ADDR HEX
  asm   a listing: each BPF instruction (and its C line) with its x86 code
  json  programs, functions, code, BPF->x86 offsets, extable, pass statistics

With -o the output goes to a temporary file in the same directory that is
renamed over FILE only when everything succeeded.`,
		Example: `  bpfc compile --format asm testdata/elf/alu.o
  bpfc compile --prog xdp_bits --format raw -o xdp.bin testdata/elf/alu.o
  bpfc compile --dump-after all --log-level debug testdata/elf/alu.o
  bpfc compile --dump-after all --log-format json --prog alu_loop testdata/elf/alu.o
  bpfc compile --prog alu_loop --html report.html testdata/elf/alu.o
  bpfc compile --context 3 prog.bin`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return withContext(f.run(g, args), f.context) },
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.IntVar(&f.context, "context", 0, "on an error at an instruction, also print the program around it: N instructions before and after, with C lines")
	fl.StringVar(&f.format, "format", "asm", "output format: raw, hex, asm or json")
	fl.StringVarP(&f.output, "output", "o", "", "write the output to FILE (atomically) instead of standard output")
	fl.StringSliceVar(&f.dumpAfter, "dump-after", nil, "dump the program after the named passes (comma-separated, or all) to stderr")
	fl.StringVar(&f.target, "target", "linux-6.18", "target: linux-6.18 (this machine's kernel) or host (in-process execution)")
	fl.StringVar(&f.execBase, "exec-base", "", "exec address of each function, comma-separated (default: the target's module area, 0xffffffffa0000000 for linux-6.18, then packed)")
	fl.StringVar(&f.callBase, "call-base", "", "address of __bpf_call_base (default: the target's)")
	fl.StringVar(&f.kernVMStart, "kern-vm-start", "", "arena kernel base address (r12)")
	fl.StringVar(&f.userVMStart, "user-vm-start", "", "arena user base address")
	fl.StringVar(&f.retThunk, "return-thunk", "", "address returns jump to (retbleed_return_thunk; default: the target's, 0 = plain ret)")
	fl.StringVar(&f.indThunk, "indirect-thunk", "", "address of __x86_indirect_thunk_rcx for tail calls (default: the target's, 0 = no retpoline)")
	fl.StringArrayVar(&f.symbols, "symbol", nil, "NAME=ADDR: address of a symbol the passes resolve: a map, a data section (.rodata, .bss...), .addr_space.1, a kfunc name, helper#ID or __bpf_call_base (repeatable)")
	fl.BoolVar(&f.fakeMaps, "fake-map-addrs", false, "give maps without --symbol a made-up kernel address (code shape as the kernel's, addresses not)")
	fl.BoolVar(&f.noKallsyms, "no-kallsyms", false, "do not look helper and kfunc callees up in /proc/kallsyms (linux-6.18 target): calls keep their immediates")
	fl.BoolVar(&f.noBackend, "no-backend", false, "stop after the passes (with --dump-after, to inspect them)")
	fl.StringVar(&f.html, "html", "", "write an HTML report to FILE: the program after each pass side by side and the x86 listing (every program, one section each)")
	return cmd
}

func parseAddr(flag, s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 64)
	if err != nil {
		return 0, usagef("--%s %q: not an address (decimal or 0x hex)", flag, s)
	}
	return v, nil
}

// options checks the flags and returns the compile options without the
// target, and a function that makes the target: presets read
// /proc/kallsyms, which is slow, so that happens only once the inputs have
// loaded.
func (f *compileFlags) options(g *globals) (compiler.Options, func() amd64.Target, error) {
	var o compiler.Options
	var preset func() amd64.Target
	switch f.target {
	case "linux-6.18", "linux618", "kernel":
		preset = amd64.Linux618
	case "host":
		preset = amd64.Host
	default:
		return o, nil, usagef("--target %q: want linux-6.18 or host", f.target)
	}
	// Target overrides, applied to the preset.
	var over []func(*amd64.Target)
	addr := func(flag, val string, set func(*amd64.Target, uint64)) error {
		if val == "" {
			return nil
		}
		a, err := parseAddr(flag, val)
		if err != nil {
			return err
		}
		over = append(over, func(t *amd64.Target) { set(t, a) })
		return nil
	}
	for _, a := range []struct {
		flag, val string
		set       func(*amd64.Target, uint64)
	}{
		{"call-base", f.callBase, func(t *amd64.Target, a uint64) { t.CallBase = a }},
		{"kern-vm-start", f.kernVMStart, func(t *amd64.Target, a uint64) { t.KernVMStart = a }},
		{"user-vm-start", f.userVMStart, func(t *amd64.Target, a uint64) { t.UserVMStart = a }},
		{"return-thunk", f.retThunk, func(t *amd64.Target, a uint64) { t.ReturnThunk = a }},
		{"indirect-thunk", f.indThunk, func(t *amd64.Target, a uint64) { t.IndirectThunkRCX = a }},
	} {
		if err := addr(a.flag, a.val, a.set); err != nil {
			return o, nil, err
		}
	}
	target := func() amd64.Target {
		t := preset()
		for _, fn := range over {
			fn(&t)
		}
		return t
	}
	switch f.format {
	case "raw", "hex", "asm", "json":
	default:
		return o, nil, usagef("--format %q: want raw, hex, asm or json", f.format)
	}
	if f.execBase != "" {
		for _, s := range strings.Split(f.execBase, ",") {
			a, err := parseAddr("exec-base", s)
			if err != nil {
				return o, nil, err
			}
			o.ExecBase = append(o.ExecBase, a)
		}
	}
	for _, s := range f.symbols {
		name, addr, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return o, nil, usagef("--symbol %q: want NAME=ADDR", s)
		}
		a, err := parseAddr("symbol", addr)
		if err != nil {
			return o, nil, err
		}
		if o.Symbols == nil {
			o.Symbols = map[string]uint64{}
		}
		o.Symbols[name] = a
	}
	o.FromXlated = f.fromXlated
	o.DumpAfter = f.dumpAfter
	o.NoBackend = f.noBackend
	o.FakeMapAddrs = f.fakeMaps
	o.ResolveCalls = preset != nil && f.target != "host" && !f.noKallsyms
	o.Logger = g.log
	return o, target, nil
}

func (f *compileFlags) run(g *globals, args []string) error {
	if len(f.dumpAfter) > 0 {
		g.minInfo = true
		if err := g.setupLogger(); err != nil {
			return err
		}
	}
	o, target, err := f.options(g)
	if err != nil {
		return err
	}
	if f.noBackend && f.format != "json" && f.format != "asm" {
		return usagef("--no-backend: only --format asm or json can show a program without machine code")
	}
	inputs, err := f.load(g, args)
	if err != nil {
		return err
	}
	if f.format == "raw" && len(inputs) != 1 {
		return usagef("--format raw needs exactly one program, got %d: select one with --prog", len(inputs))
	}
	o.Target = target()
	dumper, err := f.htmlSetup(&o, g.dumper(), inputs) // html.go
	if err != nil {
		return err
	}
	results, err := compileInputs(g, inputs, o, len(o.DumpAfter) > 0 || f.html != "", func(in *compiler.Input) (*compiler.Result, error) { // bench.go
		pl := compiler.PipelineFor(in, f.fromXlated)
		pl.Dumper = dumper
		o.Pipeline = pl
		return compiler.Compile(in, o)
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeResults(&buf, f.format, results); err != nil {
		return err
	}
	if err := f.writeHTML(results); err != nil {
		return err
	}
	return writeOutput(g.stdout, f.output, buf.Bytes())
}

// writeOutput writes data to path through a temporary file in the same
// directory and a rename, so that FILE is either the complete new output
// or untouched; "" writes to w.
func writeOutput(w io.Writer, path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := w.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeResults(w io.Writer, format string, results []*compiler.Result) error {
	switch format {
	case "raw":
		if results[0].Image == nil {
			return fmt.Errorf("no machine code")
		}
		_, err := w.Write(results[0].Image.Code())
		return err
	case "hex":
		for _, r := range results {
			if r.Image == nil {
				return fmt.Errorf("no machine code")
			}
			for k, fn := range r.Image.Funcs {
				fmt.Fprintf(w, "%s %s %#x %s\n", r.Input.Name, funcName(r, k), fn.ExecAddr, hex.EncodeToString(fn.Code))
			}
		}
		return nil
	case "asm":
		for k, r := range results {
			if k > 0 {
				fmt.Fprintln(w)
			}
			if r.Image == nil {
				fmt.Fprintf(w, "; %s: %s: after the passes (no backend)\n%s", r.Input.File, r.Input.Name, r.Prog.StringWith(compiler.PrintOptions(r.Prog)))
				continue
			}
			if err := compiler.Listing(w, r); err != nil {
				return &compiler.Error{File: r.Input.File, Program: r.Input.Name, Err: err}
			}
		}
		return nil
	case "json":
		out := jsonOutput{}
		for _, r := range results {
			out.Programs = append(out.Programs, toJSON(r))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return usagef("--format %q: want raw, hex, asm or json", format)
}

func funcName(r *compiler.Result, k int) string {
	start := r.Image.Funcs[k].Start
	if r.Input.ElfProg != nil {
		if n := r.Input.ElfProg.Funcs[start]; n != "" {
			return n
		}
	}
	if k == 0 {
		return r.Input.Name
	}
	return fmt.Sprintf("func_%d", start)
}

type jsonOutput struct {
	Programs []jsonProgram `json:"programs"`
}

type jsonProgram struct {
	File         string     `json:"file"`
	Name         string     `json:"name"`
	Section      string     `json:"section,omitempty"`
	Target       string     `json:"target"`
	Insns        int        `json:"insns"`
	Program      []string   `json:"program"`
	LayoutPasses int        `json:"layout_passes,omitempty"`
	Code         string     `json:"code,omitempty"`
	Funcs        []jsonFunc `json:"funcs,omitempty"`
	Passes       []jsonPass `json:"passes"`
}

type jsonFunc struct {
	Name     string   `json:"name"`
	Start    int      `json:"start"`
	ExecAddr string   `json:"exec_addr"`
	Code     string   `json:"code"`
	Addrs    []int32  `json:"addrs"`
	Extable  []string `json:"extable,omitempty"`
	Passes   int      `json:"layout_passes"`
}

type jsonPass struct {
	Name        string `json:"name"`
	Nanoseconds int64  `json:"ns"`
	InsnsBefore int    `json:"insns_before"`
	InsnsAfter  int    `json:"insns_after"`
	Changed     int    `json:"changed"`
}

func toJSON(r *compiler.Result) jsonProgram {
	jp := jsonProgram{File: r.Input.File, Name: r.Input.Name, Section: r.Input.Section, Target: r.Target.Name,
		Insns: r.Prog.Len(), Passes: []jsonPass{}}
	_, jp.Program = r.Prog.Lines(compiler.PrintOptions(r.Prog))
	for _, st := range r.Passes.Stats {
		jp.Passes = append(jp.Passes, jsonPass{Name: st.Pass, Nanoseconds: st.Duration.Nanoseconds(),
			InsnsBefore: st.InsnsBefore, InsnsAfter: st.InsnsAfter, Changed: st.Changed})
	}
	if r.Image != nil {
		jp.LayoutPasses = r.Image.Passes
		jp.Code = hex.EncodeToString(r.Image.Code())
		for k, fn := range r.Image.Funcs {
			jf := jsonFunc{Name: funcName(r, k), Start: fn.Start, ExecAddr: fmt.Sprintf("%#x", fn.ExecAddr),
				Code: hex.EncodeToString(fn.Code), Addrs: fn.Addrs, Passes: fn.Passes}
			for _, e := range fn.Extable {
				jf.Extable = append(jf.Extable, fmt.Sprintf("%+v", e))
			}
			jp.Funcs = append(jp.Funcs, jf)
		}
	}
	return jp
}

// formatProgram is the dump text of a program with symbol names.
func formatProgram(p *ir.Program, source bool) string {
	return withSource(p, source, compiler.PrintOptions(p))
}
