package compiler

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/elf"
)

const elfDir = "../testdata/elf"

var seven = ir.Encode(&ir.Program{Insns: []ir.Instruction{{Op: 0xb7, Imm: 7}, {Op: ir.OpExit}}})

func TestDetectAndLoad(t *testing.T) {
	obj, err := os.ReadFile(filepath.Join(elfDir, "alu.o"))
	require.NoError(t, err)
	asmText := []byte("-- asm\nmov %r0, 7\nexit\n-- result\n0x7\n")
	tests := []struct {
		path  string
		data  []byte
		kind  Kind
		names []string
	}{
		{"x.o", obj, KindELF, []string{"alu_loop", "xdp_bits"}},
		{"renamed.bin", obj, KindELF, []string{"alu_loop", "xdp_bits"}}, // by magic
		{"seven.bin", seven, KindRaw, []string{"seven"}},
		{"-", seven, KindRaw, []string{"stdin"}},
		{"t.data", asmText, KindAsm, []string{"t"}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.kind, Detect(tt.path, tt.data), tt.path)
		ins, err := LoadBytes(tt.path, tt.data, LoadOptions{})
		require.NoError(t, err, tt.path)
		var names []string
		for _, in := range ins {
			names = append(names, in.Name)
			require.Equal(t, tt.kind, in.Kind)
			require.Equal(t, in.Name, in.Prog.Name)
		}
		require.Equal(t, tt.names, names, tt.path)
	}
	ins, err := LoadBytes("t.data", asmText, LoadOptions{})
	require.NoError(t, err)
	require.True(t, ins[0].Test.HasResult)
	require.Equal(t, uint64(7), ins[0].Test.Result)

	ins, err = Load("-", LoadOptions{Stdin: bytes.NewReader(seven)})
	require.NoError(t, err)
	require.Equal(t, 2, ins[0].Prog.Len())
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		path string
		data []byte
		o    LoadOptions
		want string
	}{
		{"a.bin", seven[:12], LoadOptions{}, "a.bin: instruction 1: truncated: 12 bytes is not a multiple of 8"},
		{"a.bin", nil, LoadOptions{}, "a.bin: program is empty"},
		{"a.bin", seven, LoadOptions{Prog: "b"}, `a.bin: --prog "b": a raw input has one program, called "a"`},
		{"a.data", []byte("-- asm\nbogus\n"), LoadOptions{}, "a.data: line 2: "},
		{"a.o", []byte("junk"), LoadOptions{}, "a.o: not an ELF object"},
		{"a.bin", seven, LoadOptions{Kind: KindELF}, "a.bin: not an ELF object"},
	}
	for _, tt := range tests {
		_, err := LoadBytes(tt.path, tt.data, tt.o)
		require.Error(t, err, tt.path)
		require.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q, want prefix %q", err, tt.want)
	}
	_, err := Load(filepath.Join(t.TempDir(), "none.bin"), LoadOptions{})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NotContains(t, err.Error(), "open ")

	// A pass error names file, program and instruction.
	ins, err := Load(filepath.Join(elfDir, "maps.o"), LoadOptions{Prog: "count_packets"})
	require.NoError(t, err)
	_, err = Compile(ins[0], Options{})
	require.Error(t, err)
	require.Regexp(t, `^\.\./testdata/elf/maps\.o: count_packets: pass fixups: instruction 6: no address for map "counters" \[maps\.c:28: val = bpf_map_lookup_elem\(&counters, &key\);\]$`, err.Error())
	var ie *ir.Error
	require.True(t, errors.As(err, &ie))
}

// TestCaptures compiles every testdata/elf program the way the live kernel
// did (captures committed under testdata/elf/captures by `bpfc kcompare
// --capture-dir`): from the kernel's xlated program, and from the original
// object through the whole pass pipeline with the kernel's addresses. Both
// must give the kernel's machine code byte for byte.
func TestCaptures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(elfDir, "captures", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 7)
	fromSource := 0
	for _, path := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(path), ".json"), ".")
		require.Len(t, parts, 2, path)
		c, err := kernel.ReadCapture(path)
		require.NoError(t, err)
		t.Run(parts[0]+"/"+parts[1], func(t *testing.T) {
			tgt := amd64.Linux618()
			tgt.CallBase = uint64(c.CallBase)
			tgt.IndirectThunkRCX = uint64(c.IndirectThunkRCX)
			tgt.ReturnThunk = uint64(c.ReturnThunk)
			tgt.KernVMStart = uint64(c.KernVMStart)
			tgt.UserVMStart = uint64(c.UserVMStart)

			jit, err := c.Program()
			require.NoError(t, err)
			r, err := Compile(&Input{File: path, Name: parts[1], Kind: KindRaw, Prog: jit}, Options{Target: tgt, ExecBase: c.ExecBase(), FromXlated: true})
			require.NoError(t, err)
			require.Equal(t, []byte(c.Jited), r.Image.Code(), "from the xlated program")

			ins, err := Load(filepath.Join(elfDir, parts[0]+".o"), LoadOptions{Prog: parts[1]})
			require.NoError(t, err)
			require.Len(t, ins, 1)
			syms, ok := KernelSymbols(ins[0].Prog, jit, uint64(c.CallBase))
			if !ok {
				t.Logf("from source: the kernel's map loads and calls do not pair up (verifier inlining)")
				return
			}
			r, err = Compile(ins[0], Options{Target: tgt, ExecBase: c.ExecBase(), Symbols: syms})
			if err != nil {
				// Only the documented limits of the passes may stop this: a
				// kernel-only rewrite, or a kernel address the capture lacks.
				require.Regexp(t, `out of scope|Symbols needs`, err.Error())
				t.Logf("from source: %v", err)
				return
			}
			require.Equal(t, []byte(c.Jited), r.Image.Code(), "from the original program")
			fromSource++

			// The listing shows every x86 instruction of every function.
			var b strings.Builder
			require.NoError(t, Listing(&b, r))
			decoded := 0
			for k, fn := range r.Image.Funcs {
				for pc := 0; pc < len(fn.Code); {
					inst, err := x86asm.Decode(fn.Code[pc:], 64)
					require.NoError(t, err, "function %d offset %#x", k, pc)
					pc += inst.Len
					decoded++
				}
			}
			require.Equal(t, decoded, strings.Count(b.String(), "\n    0x"))
		})
	}
	require.GreaterOrEqual(t, fromSource, 4, "programs compiled from source to the kernel's bytes")
}

func TestListingNames(t *testing.T) {
	ins, err := Load(filepath.Join(elfDir, "calls.o"), LoadOptions{Prog: "caller_two"})
	require.NoError(t, err)
	r, err := Compile(ins[0], Options{})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, Listing(&b, r))
	out := b.String()
	for _, want := range []string{"\ncaller_two: ; exec 0xffffffffa0000000", "\nsquare_sum: ; exec ", "\nmix: ; exec ",
		"; calls.c:46: bpf_rcu_read_lock();", "call pc+7#square_sum", "push rbp"} {
		require.Contains(t, out, want)
	}
	// Without the backend there is no listing.
	r, err = Compile(ins[0], Options{NoBackend: true})
	require.NoError(t, err)
	require.Nil(t, r.Image)
	require.Error(t, Listing(&b, r))
}

func TestArenaSymbol(t *testing.T) {
	ins, err := Load(filepath.Join(elfDir, "arena_globals.o"), LoadOptions{})
	require.NoError(t, err)
	tgt := amd64.Linux618()
	tgt.UserVMStart = 0x100000000
	tgt.KernVMStart = 0xffffc90000000000
	syms := symbolsFor(ins[0], Options{}, tgt)
	// 4 pages, 68 bytes of globals: libbpf puts them in the last page.
	require.Equal(t, uint64(0x100000000+3*4096), syms[elf.ArenaSection])
	syms = symbolsFor(ins[0], Options{FakeMapAddrs: true}, tgt)
	require.Equal(t, uint64(FakeMapBase), syms["arena"])
}

// TestListingLines checks known C line / instruction pairs and the
// exception-table marks in a listing.
func TestListingLines(t *testing.T) {
	ins, err := Load(filepath.Join(elfDir, "arena_globals.o"), LoadOptions{})
	require.NoError(t, err)
	tgt := amd64.Linux618()
	tgt.UserVMStart = 0x100000000
	tgt.KernVMStart = 0xffffc90000000000
	r, err := Compile(ins[0], Options{Target: tgt})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, Listing(&b, r))
	out := b.String()
	pairs := []struct{ line, insn string }{
		{"; arena_globals.c:21: counter++;", "    0: (18) r1 = 0x100003040 <.addr_space.1>"},
		{"; arena_globals.c:22: slots[counter & 15] += 5;", "    6: (18) r1 = 0x100003000 <.addr_space.1>"},
		{"; arena_globals.c:23: return counter;", "   16: (95) exit"},
	}
	for _, pr := range pairs {
		k := strings.Index(out, pr.line+"\n")
		require.GreaterOrEqual(t, k, 0, "no line %q in\n%s", pr.line, out)
		rest := out[k+len(pr.line)+1:]
		require.True(t, strings.HasPrefix(rest, pr.insn+"\n"), "after %q:\n%s", pr.line, rest[:min(len(rest), 200)])
	}
	require.Equal(t, len(r.Image.Funcs[0].Extable), strings.Count(out, "; extable #"))
	require.Contains(t, out, "mov eax, dword ptr [rdi+r12]    ; extable #0 (arena, base rdi, off 0): on a fault clear rax, resume +5")
	require.Contains(t, out, "  ; prologue\n")
	require.Contains(t, out, "; exception table at 0xffffffffa0000060: 4 entries")
}

// TestConformance compiles the 313 programs of the conformance suite for
// the kernel target: all but callx (which the kernel's x86 JIT does not
// take) compile, and every byte of the code decodes as x86.
func TestConformance(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	if len(files) == 0 {
		t.Skip("no conformance suite at /work/shared/conformance")
	}
	tgt := amd64.Linux618()
	ok := 0
	for _, f := range files {
		ins, err := Load(f, LoadOptions{})
		require.NoError(t, err)
		r, err := Compile(ins[0], Options{Target: tgt})
		if filepath.Base(f) == "callx.data" {
			require.ErrorContains(t, err, "instruction 2: ")
			continue
		}
		require.NoError(t, err, f)
		for _, fn := range r.Image.Funcs {
			for pc := 0; pc < len(fn.Code); {
				inst, err := x86asm.Decode(fn.Code[pc:], 64)
				require.NoError(t, err, "%s offset %#x", f, pc)
				pc += inst.Len
			}
		}
		ok++
	}
	require.Equal(t, len(files)-1, ok)
}

func TestMismatchAndKernelSymbols(t *testing.T) {
	ld := ir.LdImm64(ir.R1, 0)
	src := ir.NewProgram("p", []ir.Instruction{
		{Op: ld[0].Op, Dst: ir.R1, Src: ir.PseudoMapValue}, {Imm: 16}, // r1 = map[.data]+16
		{Op: 0xa1, Dst: ir.R0, Src: ir.R1}, // r0 = *(u32 *)(r1 +0), PROBE_MEM32
		{Op: ir.OpCall, Imm: 5},            // call bpf_ktime_get_ns
		{Op: ir.OpExit},
	})
	src.Aux[0].Symbol, src.Aux[0].SymbolKind = ".data", ir.SymMap
	addr := uint64(0xffff888012345000)
	a := ir.LdImm64(ir.R1, addr+16)
	jit := ir.NewProgram("p", []ir.Instruction{a[0], a[1],
		{Op: 0x61, Dst: ir.R0, Src: ir.R1}, // shown as MEM
		{Op: ir.OpCall, Imm: 0x1000},
		{Op: ir.OpExit},
	})
	require.Equal(t, -1, Mismatch(src, jit))
	syms, ok := KernelSymbols(src, jit, 0xffffffff81000000)
	require.True(t, ok)
	require.Equal(t, addr, syms[".data"])
	require.Equal(t, uint64(0xffffffff81001000), syms["helper#5"])
	require.Equal(t, uint64(0xffffffff81000000), syms["__bpf_call_base"])

	// The verifier folded a branch: a mismatch at that slot.
	jit2 := jit.Clone()
	jit2.Insns[2] = ir.Instruction{Op: ir.OpJA}
	require.Equal(t, 2, Mismatch(src, jit2))
	// An extra instruction: the shorter length is where they part.
	jit3 := ir.NewProgram("p", append(append([]ir.Instruction{}, jit.Insns...), ir.Instruction{Op: ir.OpExit}))
	require.Equal(t, 5, Mismatch(src, jit3))
	// A map load more in the kernel's program: symbols cannot be paired.
	_, ok = KernelSymbols(src, ir.NewProgram("p", append([]ir.Instruction{a[0], a[1]}, jit.Insns...)), 0)
	require.False(t, ok)
}
