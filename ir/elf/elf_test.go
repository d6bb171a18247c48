package elf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/ir"
)

const dir = "../../testdata/elf"

func objects(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join(dir, "*.o"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "testdata objects missing: run testdata/elf/build.sh")
	return files
}

func load(t *testing.T, name string) *Object {
	t.Helper()
	o, err := Load(filepath.Join(dir, name))
	require.NoError(t, err)
	return o
}

// rawSection returns the bytes of an ELF section, read independently of the
// loader.
func rawSection(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sec := f.Section(name)
	require.NotNil(t, sec, "section %s", name)
	b, err := sec.Data()
	require.NoError(t, err)
	return b
}

func TestPrograms(t *testing.T) {
	type ref struct {
		index  int
		symbol string
		kind   ir.SymbolKind
	}
	tests := []struct {
		file, prog, section string
		typ                 ebpf.ProgramType
		insns               int
		funcs               map[int]string
		refs                []ref
	}{
		{"alu.o", "alu_loop", "socket", ebpf.SocketFilter, -1, map[int]string{0: "alu_loop"}, nil},
		{"alu.o", "xdp_bits", "xdp", ebpf.XDP, -1, map[int]string{0: "xdp_bits"}, nil},
		{"maps.o", "count_packets", "socket", ebpf.SocketFilter, 39, map[int]string{0: "count_packets"},
			[]ref{{6, "counters", ir.SymMap}, {17, "counters", ir.SymMap}, {21, ".rodata", ir.SymMap}, {24, ".bss", ir.SymMap}, {33, ".data", ir.SymMap}}},
		{"maps.o", "stamp", "xdp", ebpf.XDP, -1, map[int]string{0: "stamp"}, []ref{{3, "stamps", ir.SymMap}, {11, ".rodata", ir.SymMap}}},
		{"calls.o", "caller_one", "socket", ebpf.SocketFilter, 42, map[int]string{0: "caller_one", 13: "square_sum", 28: "mix", 34: "add_step"},
			[]ref{{1, "square_sum", ir.SymFunc}, {6, "add_step", ir.SymFunc}, {22, "mix", ir.SymFunc}, {38, "mix", ir.SymFunc}}},
		{"calls.o", "caller_two", "syscall", ebpf.Syscall, 31, map[int]string{0: "caller_two", 10: "square_sum", 25: "mix"},
			[]ref{{0, "bpf_rcu_read_lock", ir.SymKfunc}, {2, "square_sum", ir.SymFunc}, {5, "mix", ir.SymFunc}, {7, "bpf_rcu_read_unlock", ir.SymKfunc}, {19, "mix", ir.SymFunc}}},
		{"arena_globals.o", "arena_bump", "syscall", ebpf.Syscall, 17, map[int]string{0: "arena_bump"},
			[]ref{{0, ArenaSection, ir.SymArena}, {6, ArenaSection, ir.SymArena}}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.prog, func(t *testing.T) {
			o := load(t, tt.file)
			p := o.Program(tt.prog)
			require.NotNil(t, p)
			require.Equal(t, tt.section, p.Section)
			require.Equal(t, tt.typ, p.Type)
			require.Equal(t, tt.prog, p.Prog.Name)
			if tt.insns >= 0 {
				require.Equal(t, tt.insns, p.Prog.Len())
			}
			require.Equal(t, tt.funcs, p.Funcs)
			require.NoError(t, ir.Validate(p.Prog, ir.DecodeOptions{}))
			// Every symbol the program carries is in the table, and no other.
			want := map[int]ref{}
			for _, r := range tt.refs {
				want[r.index] = r
			}
			for i, a := range p.Prog.Aux {
				r, ok := want[i]
				if !ok {
					require.Empty(t, a.Symbol, "instruction %d", i)
					continue
				}
				require.Equal(t, r.symbol, a.Symbol, "instruction %d", i)
				require.Equal(t, r.kind, a.SymbolKind, "instruction %d", i)
				ins := p.Prog.Insns[i]
				switch r.kind {
				case ir.SymFunc:
					require.True(t, ins.IsPseudoCall() || ins.IsPseudoFunc(), "instruction %d", i)
					require.Equal(t, r.symbol, p.Funcs[p.Prog.Target(i)], "instruction %d calls the wrong function", i)
				case ir.SymKfunc:
					require.True(t, ins.IsKfuncCall(), "instruction %d", i)
				case ir.SymMap:
					require.True(t, ins.IsLdImm64() && (ins.Src == ir.PseudoMapFD || ins.Src == ir.PseudoMapValue))
				case ir.SymArena:
					require.True(t, ins.IsLdImm64() && ins.Src == ir.PseudoMapValue)
				}
			}
			// Funcs agree with ir.FindFuncs.
			fs, err := ir.FindFuncs(p.Prog)
			require.NoError(t, err)
			require.Len(t, fs, len(tt.funcs))
			for _, f := range fs {
				require.Contains(t, tt.funcs, f.Start)
			}
		})
	}
}

// TestSectionBytes: the loaded program's slots encode back to the section's
// bytes, except the fields relocations rewrite (checked explicitly).
func TestSectionBytes(t *testing.T) {
	for _, path := range objects(t) {
		o, err := Load(path)
		require.NoError(t, err, path)
		require.NotEmpty(t, o.Programs, path)
		f, err := elf.Open(path)
		require.NoError(t, err)
		syms, _ := f.Symbols()
		for _, p := range o.Programs {
			// Each function of the program sits somewhere in a section.
			for start, name := range p.Funcs {
				var sym *elf.Symbol
				for k := range syms {
					if syms[k].Name == name && elf.ST_TYPE(syms[k].Info) == elf.STT_FUNC {
						sym = &syms[k]
					}
				}
				require.NotNil(t, sym, "%s: function %s", path, name)
				data, err := f.Sections[sym.Section].Data()
				require.NoError(t, err)
				raw := data[sym.Value : sym.Value+sym.Size]
				n := len(raw) / ir.InsnSize
				got := ir.Encode(&ir.Program{Insns: p.Prog.Insns[start : start+n]})
				for k := 0; k < n; k++ {
					i := start + k
					g, w := got[k*8:k*8+8], raw[k*8:k*8+8]
					ins := p.Prog.Insns[i]
					if p.Prog.Aux[i].Symbol == "" && !ins.IsPseudoCall() && !ins.IsPseudoFunc() {
						// The second half of a data ld_imm64 carries the offset.
						if i > 0 && p.Prog.Insns[i-1].IsLdImm64() && p.Prog.Aux[i-1].Symbol != "" {
							require.Equal(t, w[:4], g[:4], "%s %s slot %d", path, p.Name, i)
							continue
						}
						require.Equal(t, w, g, "%s %s: slot %d differs from the section", path, p.Name, i)
						continue
					}
					// Relocated: opcode, dst and off are the object's.
					require.Equal(t, w[0], g[0], "%s %s slot %d opcode", path, p.Name, i)
					require.Equal(t, w[1]&0xf, g[1]&0xf, "%s %s slot %d dst", path, p.Name, i)
					if ins.IsCall() {
						require.Equal(t, w[2:4], g[2:4], "%s %s slot %d off", path, p.Name, i)
					}
				}
			}
		}
		f.Close()
	}
}

// TestRawRoundTrip: every executable section decodes and encodes byte-exact
// (no cilium asm in between: addr_space_cast keeps its offset).
func TestRawRoundTrip(t *testing.T) {
	for _, path := range objects(t) {
		f, err := elf.Open(path)
		require.NoError(t, err)
		for _, sec := range f.Sections {
			if sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
				continue
			}
			data, err := sec.Data()
			require.NoError(t, err)
			insns := decodeSlots(data)
			require.Equal(t, data, ir.Encode(&ir.Program{Insns: insns}), "%s %s", path, sec.Name)
		}
		f.Close()
	}
	o := load(t, "arena_globals.o")
	p := o.Program("arena_bump")
	casts := 0
	for _, ins := range p.Prog.Insns {
		if ins.IsCastToKernel() {
			casts++
			require.Equal(t, int16(1), ins.Off)
		}
	}
	require.Equal(t, 2, casts, "addr_space_cast lost")
}

func decodeSlots(b []byte) []ir.Instruction {
	out := make([]ir.Instruction, len(b)/8)
	for i := range out {
		s := b[i*8:]
		out[i] = ir.Instruction{Op: s[0], Dst: ir.Register(s[1] & 0xf), Src: ir.Register(s[1] >> 4),
			Off: int16(binary.LittleEndian.Uint16(s[2:])), Imm: int32(binary.LittleEndian.Uint32(s[4:]))}
	}
	return out
}

func TestDataOffsets(t *testing.T) {
	o := load(t, "maps.o")
	p := o.Program("stamp")
	var rodata []int32
	for i, a := range p.Prog.Aux {
		if a.Symbol == ".rodata" {
			rodata = append(rodata, p.Prog.Insns[i+1].Imm)
		}
	}
	// fmt follows the 4-byte "limit" in .rodata.
	require.Equal(t, []int32{4}, rodata)
	m := map[string]*Map{}
	for _, mm := range o.Maps {
		m[mm.Name] = mm
	}
	require.Equal(t, ebpf.Hash, m["counters"].Type)
	require.Equal(t, uint32(64), m["counters"].MaxEntries)
	require.Equal(t, uint32(4), m["counters"].KeySize)
	require.Equal(t, uint32(8), m["counters"].ValueSize)
	require.Equal(t, ebpf.Array, m["stamps"].Type)
	require.Equal(t, "stamp %llu\n\x00", string(m[".rodata"].Data[4:]))

	a := load(t, "arena_globals.o")
	require.NotNil(t, a.Arena)
	require.Equal(t, "arena", a.Arena.Map)
	require.Equal(t, 4+16*4, a.Arena.Size)
	offs := []int32{}
	ap := a.Program("arena_bump")
	for i, x := range ap.Prog.Aux {
		if x.SymbolKind == ir.SymArena {
			offs = append(offs, ap.Prog.Insns[i+1].Imm)
		}
	}
	require.Len(t, offs, 2)
	require.ElementsMatch(t, []int32{64, 0}, offs, "counter (.bss-like, after the initialised slots) and slots offsets")
	var arena *Map
	for _, mm := range a.Maps {
		if mm.Name == "arena" {
			arena = mm
		}
	}
	require.NotNil(t, arena)
	require.Equal(t, ebpf.Arena, arena.Type)
	require.Equal(t, uint32(4), arena.MaxEntries)
	require.Equal(t, uint32(1024), arena.Flags)
	require.Equal(t, uint64(1)<<44, arena.MapExtra)
}

func TestLineInfo(t *testing.T) {
	tests := []struct {
		file, prog string
		index      int
		line, col  uint32
		text       string
	}{
		{"calls.o", "caller_two", 0, 46, 2, "bpf_rcu_read_lock();"},
		{"calls.o", "caller_two", 8, 49, 2, "return (int)v;"},
		{"calls.o", "caller_one", 13, 14, 0, "__noinline __u64 square_sum(__u64 n)"},
		{"calls.o", "caller_one", 28, 11, 17, "return (a ^ (b << 13)) + (b >> 3);"},
		{"maps.o", "count_packets", 0, 25, 14, "__u32 key = bpf_get_prandom_u32() & 63;"},
		{"arena_globals.o", "arena_bump", 0, 21, 9, "counter++;"},
	}
	for _, tt := range tests {
		p := load(t, tt.file).Program(tt.prog)
		require.NotNil(t, p)
		l := p.Prog.Aux[tt.index].Line
		require.NotNil(t, l, "%s %s %d: no line", tt.file, tt.prog, tt.index)
		require.Equal(t, tt.line, l.Line, "%s %s %d", tt.file, tt.prog, tt.index)
		require.Equal(t, tt.text, strings.TrimSpace(l.Text))
		require.True(t, strings.HasSuffix(l.File, strings.TrimSuffix(tt.file, ".o")+".c"), l.File)
		require.Equal(t, tt.col, l.Column, "%s %s %d", tt.file, tt.prog, tt.index)
	}
	// Every program of every object has line info on its first instruction.
	for _, path := range objects(t) {
		o, err := Load(path)
		require.NoError(t, err)
		for _, p := range o.Programs {
			require.NotNil(t, p.Prog.Aux[0].Line, "%s %s", path, p.Name)
		}
	}
}

func TestSelect(t *testing.T) {
	o := load(t, "calls.o")
	ps, err := o.Select("")
	require.NoError(t, err)
	require.Len(t, ps, 2)
	ps, err = o.Select("caller_two")
	require.NoError(t, err)
	require.Equal(t, "caller_two", ps[0].Name)
	ps, err = o.Select("socket")
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, "caller_one", ps[0].Name)
	_, err = o.Select("nope")
	require.ErrorContains(t, err, `calls.o: no program or section named "nope" (programs: caller_one (socket), caller_two (syscall))`)
}

// patch returns a copy of the object at path with f applied.
func patch(t *testing.T, path string, fn func(b []byte, f *elf.File)) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := elf.NewFile(bytes.NewReader(b))
	require.NoError(t, err)
	out := append([]byte(nil), b...)
	fn(out, f)
	return out
}

func relOffset(t *testing.T, f *elf.File, target string) uint64 {
	for _, s := range f.Sections {
		if s.Type == elf.SHT_REL && f.Sections[s.Info].Name == target {
			return s.Offset
		}
	}
	t.Fatalf("no relocations for %s", target)
	return 0
}

func TestBadInput(t *testing.T) {
	calls := filepath.Join(dir, "calls.o")
	maps := filepath.Join(dir, "maps.o")
	good, err := os.ReadFile(calls)
	require.NoError(t, err)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "x.o: not an ELF object"},
		{"text", []byte("hello, world\n"), "x.o: not an ELF object"},
		{"truncated header", good[:40], "x.o: not an ELF object"},
		{"wrong machine", patch(t, calls, func(b []byte, f *elf.File) {
			binary.LittleEndian.PutUint16(b[18:], uint16(elf.EM_X86_64))
		}), "x.o: machine EM_X86_64, want EM_BPF"},
		{"wrong class", patch(t, calls, func(b []byte, f *elf.File) { b[elf.EI_CLASS] = byte(elf.ELFCLASS32) }), "x.o: ELF class ELFCLASS32, want ELFCLASS64"},
		{"big endian", patch(t, calls, func(b []byte, f *elf.File) { b[elf.EI_DATA] = byte(elf.ELFDATA2MSB) }), "x.o: not an ELF object"},
		{"truncated sections", good[:len(good)/2], "x.o: truncated: the section header table (29 entries at offset "},
		{"section beyond the end", patch(t, calls, func(b []byte, f *elf.File) {
			shoff := binary.LittleEndian.Uint64(b[0x28:])
			for i, s := range f.Sections {
				if s.Name == "socket" {
					binary.LittleEndian.PutUint64(b[shoff+uint64(i)*64+32:], 1<<40) // sh_size
				}
			}
		}), "x.o: section socket: truncated: 1099511627776 bytes at offset 296, but the file has "},
		{"relocation to unknown symbol", patch(t, calls, func(b []byte, f *elf.File) {
			off := relOffset(t, f, "socket")
			binary.LittleEndian.PutUint32(b[off+12:], 9999) // symbol index of the first relocation
		}), "x.o: section socket: instruction 1: relocation to unknown symbol #9999"},
		{"relocation outside section", patch(t, calls, func(b []byte, f *elf.File) {
			off := relOffset(t, f, "socket")
			binary.LittleEndian.PutUint64(b[off:], 1<<20)
		}), "x.o: section socket: relocation at offset 1048576 is outside the section or misaligned"},
		{"relocation on a non-call", patch(t, calls, func(b []byte, f *elf.File) {
			off := relOffset(t, f, "socket")
			binary.LittleEndian.PutUint64(b[off:], 0) // onto slot 0: r1 = 10
		}), "x.o: caller_one: instruction 0: relocation to \"square_sum\" on an instruction that is neither a call nor ld_imm64"},
		{"bad instruction", patch(t, calls, func(b []byte, f *elf.File) {
			b[f.Section("syscall").Offset+8*4] = 0xff // slot 4: r2 = 3 -> unknown opcode
		}), "x.o: caller_two: instruction 4: "},
		{"missing program name", patch(t, maps, func(b []byte, f *elf.File) {
			// Turn every FUNC symbol in section xdp into NOTYPE.
			sec := f.SectionByType(elf.SHT_SYMTAB)
			xdp := -1
			for i, s := range f.Sections {
				if s.Name == "xdp" {
					xdp = i
				}
			}
			for k := uint64(0); k < sec.Size; k += 24 {
				e := b[sec.Offset+k:]
				if elf.ST_TYPE(e[4]) == elf.STT_FUNC && int(binary.LittleEndian.Uint16(e[6:])) == xdp {
					e[4] = e[4]&0xf0 | byte(elf.STT_NOTYPE)
				}
			}
		}), "x.o: section xdp: executable section without a function symbol (missing program name)"},
		{"corrupt BTF", patch(t, calls, func(b []byte, f *elf.File) {
			binary.LittleEndian.PutUint16(b[f.Section(".BTF").Offset:], 0x1234) // magic
		}), "x.o: corrupt BTF"},
		{"corrupt BTF types", patch(t, calls, func(b []byte, f *elf.File) {
			s := f.Section(".BTF")
			for k := uint64(24); k < 64; k++ {
				b[s.Offset+k] = 0xff
			}
		}), "x.o: corrupt BTF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := LoadReader(bytes.NewReader(tt.data), "x.o", Options{})
			require.Error(t, err)
			require.Nil(t, o)
			require.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q\nwant prefix %q", err, tt.want)
			var e *Error
			require.True(t, errors.As(err, &e))
			require.Equal(t, "x.o", e.File)
			if strings.Contains(tt.want, "instruction") {
				var ie *ir.Error
				require.True(t, errors.As(err, &ie), "no ir.Error in %v", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.o"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.o"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := LoadReader(bytes.NewReader(b), "fuzz.o", Options{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.o: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, p := range o.Programs {
			if err := ir.Validate(p.Prog, ir.DecodeOptions{}); err != nil {
				t.Fatalf("%s: loaded program does not validate: %v", p.Name, err)
			}
			q, err := ir.Decode(ir.Encode(p.Prog))
			if err != nil || len(q.Insns) != len(p.Prog.Insns) {
				t.Fatalf("%s: re-decode: %v", p.Name, err)
			}
		}
	})
}

func TestLinkage(t *testing.T) {
	p := load(t, "calls.o").Program("caller_one")
	require.False(t, p.Prog.Aux[0].GlobalFunc, "the program itself is not a global subprogram")
	require.True(t, p.Prog.Aux[13].GlobalFunc, "square_sum is global")
	require.False(t, p.Prog.Aux[28].GlobalFunc, "mix is static")
	require.False(t, p.Prog.Aux[34].GlobalFunc, "add_step is static")
	for _, a := range p.Prog.Aux {
		require.Zero(t, a.ArgArena)
	}
}

// TestArenaCorpus loads the arena corpus the passes helper keeps under
// testdata/arena: every object loads, every addr_space_cast survives, and
// arguments tagged arg:arena are reported.
func TestArenaCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/arena/*.o")
	if len(files) == 0 {
		t.Skip("no objects in testdata/arena")
	}
	tagged := 0
	for _, path := range files {
		o, err := Load(path)
		require.NoError(t, err, path)
		require.NotEmpty(t, o.Programs, path)
		raw := 0
		f, err := elf.Open(path)
		require.NoError(t, err)
		for _, sec := range f.Sections {
			if sec.Flags&elf.SHF_EXECINSTR != 0 && sec.Size > 0 {
				data, err := sec.Data()
				require.NoError(t, err)
				for _, ins := range decodeSlots(data) {
					if ins.IsAddrSpaceCast() {
						raw++
					}
				}
			}
		}
		f.Close()
		loaded := 0
		for _, p := range o.Programs {
			for i, ins := range p.Prog.Insns {
				if ins.IsAddrSpaceCast() {
					loaded++
				}
				if p.Prog.Aux[i].ArgArena != 0 {
					tagged++
				}
			}
		}
		// Linked callees can appear in several programs: at least the raw count.
		require.GreaterOrEqual(t, loaded, raw, "%s: addr_space_cast lost", path)
	}
	require.NotZero(t, tagged, "no function with arg:arena arguments found")
}

func TestKfuncIDs(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF: ", err)
	}
	spec, err := btf.LoadKernelSpec()
	require.NoError(t, err)
	o, err := LoadWith(filepath.Join(dir, "calls.o"), Options{KernelBTF: spec})
	require.NoError(t, err)
	p := o.Program("caller_two")
	for _, i := range []int{0, 7} {
		ins := p.Prog.Insns[i]
		require.True(t, ins.IsKfuncCall())
		var fn *btf.Func
		require.NoError(t, spec.TypeByName(p.Prog.Aux[i].Symbol, &fn))
		id, err := spec.TypeID(fn)
		require.NoError(t, err)
		require.Equal(t, int32(id), ins.Imm, "instruction %d", i)
		require.NotZero(t, ins.Imm)
	}
	o, err = LoadWith(filepath.Join(dir, "calls.o"), Options{ResolveKfuncs: true})
	require.NoError(t, err)
	require.Equal(t, p.Prog.Insns, o.Program("caller_two").Prog.Insns, "the running kernel's BTF, read by ResolveKfuncs")
	// A kfunc the kernel does not have is an error at its instruction.
	empty, err := btf.LoadSpecFromReader(bytes.NewReader(minimalBTF()))
	require.NoError(t, err)
	_, err = LoadWith(filepath.Join(dir, "calls.o"), Options{KernelBTF: empty})
	require.ErrorContains(t, err, `calls.o: caller_two: instruction 0: kfunc "bpf_rcu_read_lock" is not in the kernel's BTF: `)
}

// minimalBTF is a BTF blob with no types and an empty string table.
func minimalBTF() []byte {
	var b bytes.Buffer
	hdr := []any{uint16(0xeb9f), uint8(1), uint8(0), uint32(24), uint32(0), uint32(0), uint32(0), uint32(1)}
	for _, v := range hdr {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteByte(0)
	return b.Bytes()
}

func TestCORE(t *testing.T) {
	p := load(t, "core.o").Program("core_read")
	require.NotNil(t, p)
	require.Len(t, p.CORE, 1)
	require.Equal(t, 0, p.CORE[0].Index)
	require.Contains(t, p.CORE[0].What, "task_like")
	require.Equal(t, int16(4), p.Prog.Insns[0].Off, "clang's local offset of tgid")
	for _, name := range []string{"calls.o", "maps.o", "alu.o"} {
		for _, q := range load(t, name).Programs {
			require.Empty(t, q.CORE, "%s %s", name, q.Name)
		}
	}
}

func TestErrorSourceLine(t *testing.T) {
	calls := filepath.Join(dir, "calls.o")
	b := patch(t, calls, func(b []byte, f *elf.File) {
		b[f.Section("syscall").Offset+8*4] = 0xff // slot 4: r2 = 3
	})
	_, err := LoadReader(bytes.NewReader(b), "calls.o", Options{})
	require.EqualError(t, err, "calls.o: caller_two: instruction 4: unknown opcode 0xff [calls.c:47: v = mix(square_sum(5), 3);]")
}

func TestBadFunctionSymbol(t *testing.T) {
	calls := filepath.Join(dir, "calls.o")
	for _, size := range []uint64{1 << 63, ^uint64(7), 8 * 1000} {
		b := patch(t, calls, func(b []byte, f *elf.File) {
			sec := f.SectionByType(elf.SHT_SYMTAB)
			for k := uint64(0); k < sec.Size; k += 24 {
				e := b[sec.Offset+k:]
				if elf.ST_TYPE(e[4]) == elf.STT_FUNC {
					binary.LittleEndian.PutUint64(e[16:], size) // st_size
					return
				}
			}
		})
		_, err := LoadReader(bytes.NewReader(b), "calls.o", Options{})
		require.ErrorContains(t, err, "is outside the section or misaligned", "size %#x", size)
	}
}

// TestObjectsUpToDate rebuilds the testdata objects with build.sh in a
// temporary directory (when clang-19 is installed) and checks that the
// committed objects are what their sources compile to.
func TestObjectsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := exec.LookPath("clang-19"); err != nil {
		t.Skip("clang-19 not installed")
	}
	tmp := t.TempDir()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, ".c") || strings.HasSuffix(f, ".h") || strings.HasSuffix(f, ".sh") {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(tmp, filepath.Base(f)), b, 0o755))
		}
	}
	out, err := exec.Command("sh", filepath.Join(tmp, "build.sh")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, o := range objects(t) {
		want, err := os.ReadFile(o)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(tmp, filepath.Base(o)))
		require.NoError(t, err, "build.sh does not build %s", o)
		require.True(t, bytes.Equal(want, got), "%s is not what build.sh makes of its source: run testdata/elf/build.sh", o)
	}
}
