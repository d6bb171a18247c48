package ir_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

func enc(insns ...ir.Instruction) []byte {
	var b []byte
	for _, i := range insns {
		b = i.AppendBinary(b)
	}
	return b
}

var (
	exit = ir.Instruction{Op: ir.OpExit}
	mov0 = ir.Instruction{Op: 0xb7} // r0 = 0
)

func TestDecodeErrors(t *testing.T) {
	big := make([]byte, (ir.MaxInsns+1)*ir.InsnSize)
	for i := 0; i < len(big); i += 8 {
		big[i] = ir.OpExit
	}
	tests := []struct {
		name  string
		b     []byte
		xl    bool // decode as xlated
		index int
		want  string
	}{
		{"empty", nil, false, -1, "program is empty"},
		{"odd length", append(enc(mov0), 1, 2, 3, 4), false, 1, "instruction 1: truncated: 12 bytes is not a multiple of 8"},
		{"one byte", []byte{0x95}, false, 0, "instruction 0: truncated: 1 bytes is not a multiple of 8"},
		{"ld_imm64 at the end", enc(mov0, exit, ir.Instruction{Op: ir.OpLdImm64}), false, 2, "instruction 2: ld_imm64 is missing its second half"},
		{"ld_imm64 second half with opcode", enc(ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{Op: 0xb7}, exit), false, 0, "instruction 0: malformed second half of ld_imm64"},
		{"ld_imm64 second half with dst", enc(ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{Dst: 1}, exit), false, 0, "malformed second half of ld_imm64"},
		{"ld_imm64 second half with off", enc(ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{Off: 1}, exit), false, 0, "malformed second half of ld_imm64"},
		{"ld_imm64 map fd with second imm", enc(ir.Instruction{Op: ir.OpLdImm64, Src: ir.PseudoMapFD}, ir.Instruction{Imm: 1}, exit), false, 0, "ld_imm64 pseudo source 1 uses reserved second imm"},
		{"ld_imm64 unknown pseudo source", enc(ir.Instruction{Op: ir.OpLdImm64, Src: 7}, ir.Instruction{}, exit), false, 0, "invalid ld_imm64 pseudo source 7"},

		{"unknown ALU op", enc(ir.Instruction{Op: 0xe7}, exit), false, 0, "instruction 0: unknown opcode 0xe7"},
		{"unknown ALU32 op", enc(ir.Instruction{Op: 0xf4}, exit), false, 0, "unknown opcode 0xf4"},
		{"ALU64 END to BE", enc(ir.Instruction{Op: 0xdf, Imm: 16}, exit), false, 0, "unknown opcode 0xdf"},
		{"tail call opcode outside xlated", enc(ir.Instruction{Op: ir.OpTailCall}, exit), false, 0, "unknown opcode 0xf5"},
		{"JMP32 call", enc(ir.Instruction{Op: 0x86}, exit), false, 0, "unknown opcode 0x86"},
		{"JMP32 exit", enc(ir.Instruction{Op: 0x96}, exit), false, 0, "unknown opcode 0x96"},
		{"JMP32 may_goto", enc(ir.Instruction{Op: 0xe6}, exit), false, 0, "unknown opcode 0xe6"},
		{"LD mode MEM", enc(ir.Instruction{Op: 0x60}, exit), false, 0, "unknown opcode 0x60"},
		{"LD ABS DW", enc(ir.Instruction{Op: 0x38}, exit), false, 0, "unknown opcode 0x38"},
		{"LDX mode IMM", enc(ir.Instruction{Op: 0x01}, exit), false, 0, "unknown opcode 0x01"},
		{"LDX MEMSX DW", enc(ir.Instruction{Op: 0x99}, exit), false, 0, "unknown opcode 0x99"},
		{"LDX PROBE_MEM outside xlated", enc(ir.Instruction{Op: 0x39}, exit), false, 0, "unknown opcode 0x39 (kernel-internal mode)"},
		{"ST mode ABS", enc(ir.Instruction{Op: 0x22}, exit), false, 0, "unknown opcode 0x22"},
		{"ST nospec outside xlated", enc(ir.Instruction{Op: ir.OpNospec}, exit), false, 0, "unknown opcode 0xc2"},
		{"STX mode MEMSX", enc(ir.Instruction{Op: 0x83}, exit), false, 0, "unknown opcode 0x83"},
		{"STX PROBE_ATOMIC outside xlated", enc(ir.Instruction{Op: 0xfb}, exit), false, 0, "unknown opcode 0xfb (kernel-internal mode)"},
		{"atomic unknown op", enc(ir.Instruction{Op: 0xdb, Imm: 0x10}, exit), false, 0, "invalid atomic operation 0x10"},
		{"atomic on a byte", enc(ir.Instruction{Op: 0xd3, Imm: 0}, exit), false, 0, "invalid atomic operand size 1"},

		{"ALU K with src", enc(ir.Instruction{Op: 0x07, Src: 1}, exit), false, 0, "reserved field src_reg is set"},
		{"ALU X with imm", enc(ir.Instruction{Op: 0x0f, Imm: 1}, exit), false, 0, "reserved field imm is set"},
		{"ALU with off", enc(ir.Instruction{Op: 0x07, Off: 1}, exit), false, 0, "reserved field off is set"},
		{"div with off 2", enc(ir.Instruction{Op: 0x37, Off: 2, Imm: 1}, exit), false, 0, "reserved field off is set"},
		{"mov K with off", enc(ir.Instruction{Op: 0xb7, Off: 8}, exit), false, 0, "reserved field off is set"},
		{"movsx32 from 32", enc(ir.Instruction{Op: 0xbc, Off: 32}, exit), false, 0, "reserved field off is set"},
		{"neg with imm", enc(ir.Instruction{Op: 0x87, Imm: 1}, exit), false, 0, "reserved field of neg is set"},
		{"end with src", enc(ir.Instruction{Op: 0xd4, Src: 1, Imm: 16}, exit), false, 0, "reserved field src_reg is set"},
		{"end width", enc(ir.Instruction{Op: 0xd4, Imm: 8}, exit), false, 0, "invalid byte swap width 8"},
		{"addr_space_cast bad imm", enc(ir.Instruction{Op: 0xbf, Off: 1, Imm: 2}, exit), false, 0, "invalid addr_space_cast 0x2"},
		{"JMP K with src", enc(ir.Instruction{Op: 0x15, Src: 1}, exit), false, 0, "reserved field src_reg is set"},
		{"JMP X with imm", enc(ir.Instruction{Op: 0x1d, Imm: 1}, exit), false, 0, "reserved field imm is set"},
		{"ja with dst", enc(ir.Instruction{Op: ir.OpJA, Dst: 1}, exit), false, 0, "reserved field register is set"},
		{"ja with imm", enc(ir.Instruction{Op: ir.OpJA, Imm: 1}, exit), false, 0, "reserved field imm is set"},
		{"gotol with off", enc(ir.Instruction{Op: ir.OpGotoL, Off: 1}, exit), false, 0, "reserved field off is set"},
		{"exit with imm", enc(mov0, ir.Instruction{Op: ir.OpExit, Imm: 1}), false, 1, "instruction 1: reserved field of exit is set"},
		{"call with dst", enc(ir.Instruction{Op: ir.OpCall, Dst: 1, Imm: 1}, exit), false, 0, "reserved field dst_reg is set"},
		{"helper call with off", enc(ir.Instruction{Op: ir.OpCall, Off: 1, Imm: 1}, exit), false, 0, "reserved field off is set"},
		{"call source 3", enc(ir.Instruction{Op: ir.OpCall, Src: 3}, exit), false, 0, "invalid call source 3"},
		{"callx with both fields", enc(ir.Instruction{Op: ir.OpCallX, Dst: 1, Imm: 2}, exit), false, 0, "reserved field imm is set"},
		{"may_goto with imm", enc(ir.Instruction{Op: ir.OpMayGoto, Imm: 1}, exit), false, 0, "reserved field of may_goto is set"},
		{"LD ABS with dst", enc(ir.Instruction{Op: 0x20, Dst: 1}, exit), false, 0, "reserved field of legacy packet load is set"},
		{"ld_imm64 with off", enc(ir.Instruction{Op: ir.OpLdImm64, Off: 1}, ir.Instruction{}, exit), false, 0, "reserved field off is set"},
		{"LDX with imm", enc(ir.Instruction{Op: 0x61, Imm: 1}, exit), false, 0, "reserved field imm is set"},
		{"ST with src", enc(ir.Instruction{Op: 0x62, Src: 1}, exit), false, 0, "reserved field src_reg is set"},
		{"STX with imm", enc(ir.Instruction{Op: 0x63, Imm: 1}, exit), false, 0, "reserved field imm is set"},
		{"nospec with dst (xlated)", enc(ir.Instruction{Op: ir.OpNospec, Dst: 1}, exit), true, 0, "reserved field of nospec is set"},

		{"ALU dst r11", enc(ir.Instruction{Op: 0xb7, Dst: 11}, exit), false, 0, "instruction 0: invalid destination register r11"},
		{"ALU src r15", enc(ir.Instruction{Op: 0xbf, Src: 15}, exit), false, 0, "invalid source register r15"},
		{"LDX src r12", enc(ir.Instruction{Op: 0x61, Src: 12}, exit), false, 0, "invalid source register r12"},
		{"STX dst r13", enc(ir.Instruction{Op: 0x63, Dst: 13}, exit), false, 0, "invalid destination register r13"},
		{"JMP src r14", enc(ir.Instruction{Op: 0x1d, Src: 14}, exit), false, 0, "invalid source register r14"},
		{"ld_imm64 dst r15", enc(ir.Instruction{Op: ir.OpLdImm64, Dst: 15}, ir.Instruction{}, exit), false, 0, "invalid destination register r15"},
		{"r12 even in xlated", enc(ir.Instruction{Op: 0xb7, Dst: 12}, exit), true, 0, "invalid destination register r12"},

		{"ALU writes r10", enc(ir.Instruction{Op: 0xb7, Dst: 10}, exit), false, 0, "instruction 0: frame pointer r10 is read only"},
		{"ALU32 writes r10", enc(ir.Instruction{Op: 0x04, Dst: 10, Imm: 1}, exit), false, 0, "frame pointer r10 is read only"},
		{"LDX writes r10", enc(ir.Instruction{Op: 0x79, Dst: 10, Src: 1}, exit), false, 0, "frame pointer r10 is read only"},
		{"ld_imm64 writes r10", enc(ir.Instruction{Op: ir.OpLdImm64, Dst: 10}, ir.Instruction{}, exit), false, 0, "frame pointer r10 is read only"},
		{"atomic fetch writes r10", enc(ir.Instruction{Op: 0xdb, Dst: 1, Src: 10, Imm: ir.AtomicAdd | ir.AtomicFetch}, exit), false, 0, "frame pointer r10 is read only"},
		{"xchg writes r10", enc(ir.Instruction{Op: 0xdb, Dst: 1, Src: 10, Imm: ir.AtomicXchg}, exit), false, 0, "frame pointer r10 is read only"},
		{"load_acquire writes r10", enc(ir.Instruction{Op: 0xdb, Dst: 10, Src: 1, Imm: ir.AtomicLoadAcq}, exit), false, 0, "frame pointer r10 is read only"},

		{"jump past the end", enc(ir.Instruction{Op: ir.OpJA, Off: 4}, exit), false, 0, "instruction 0: jump target 5 (pc+5) is outside the program of 2 instructions"},
		{"jump before the start", enc(mov0, ir.Instruction{Op: 0x15, Off: -3}, exit), false, 1, "instruction 1: jump target -1 (pc-2) is outside the program of 3 instructions"},
		{"gotol past the end", enc(ir.Instruction{Op: ir.OpGotoL, Imm: 100}, exit), false, 0, "jump target 101 (pc+101) is outside"},
		{"call past the end", enc(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: 7}, exit), false, 0, "instruction 0: call target 8 (pc+8) is outside the program of 2 instructions"},
		{"call before the start", enc(mov0, ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: -3}, exit), false, 1, "call target -1 (pc-2) is outside"},
		{"function reference out", enc(ir.Instruction{Op: ir.OpLdImm64, Src: ir.PseudoFunc, Imm: 9}, ir.Instruction{}, exit), false, 0, "function reference target 10 (pc+10) is outside"},
		{"jump into ld_imm64", enc(ir.Instruction{Op: ir.OpJA, Off: 1}, ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{}, exit), false, 0, "instruction 0: jump target 2 is the second half of a ld_imm64"},
		{"call into ld_imm64", enc(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: 1}, ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{}, exit), false, 0, "call target 2 is the second half of a ld_imm64"},
		{"backward jump into ld_imm64", enc(ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{}, ir.Instruction{Op: ir.OpJA, Off: -2}, exit), false, 2, "instruction 2: jump target 1 is the second half of a ld_imm64"},

		{"over a million instructions", big, false, -1, "program has 1000001 instructions, more than the limit of 1000000"},
		{"last is not exit", enc(exit, mov0), false, 1, "instruction 1: last instruction is not an exit or jump"},
		{"last is a ld_imm64", enc(exit, ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{}), false, 2, "instruction 2: last instruction is not an exit or jump"},
		{"last is a conditional jump", enc(mov0, ir.Instruction{Op: 0x15, Off: -2}), false, 1, "last instruction is not an exit or jump"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ir.DecodeWith(tc.b, ir.DecodeOptions{Xlated: tc.xl})
			if err == nil {
				t.Fatalf("decoded:\n%s", p)
			}
			var e *ir.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *ir.Error: %v", err, err)
			}
			if e.Index != tc.index {
				t.Errorf("index %d, want %d (%v)", e.Index, tc.index, err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		xl   bool
	}{
		{"ja as last", enc(mov0, ir.Instruction{Op: ir.OpJA, Off: -2}), false},
		{"gotol as last", enc(mov0, ir.Instruction{Op: ir.OpGotoL, Imm: -2}), false},
		{"callx in imm", enc(ir.Instruction{Op: ir.OpCallX, Imm: 2}, exit), false},
		{"callx in dst", enc(ir.Instruction{Op: ir.OpCallX, Dst: 2}, exit), false},
		{"kfunc with module off", enc(ir.Instruction{Op: ir.OpCall, Src: ir.CallKfunc, Off: 3, Imm: 77}, exit), false},
		{"movsx and sdiv", enc(ir.Instruction{Op: 0xbf, Dst: 1, Src: 2, Off: 32}, ir.Instruction{Op: 0x3f, Dst: 1, Src: 2, Off: 1}, exit), false},
		{"addr_space_cast", enc(ir.Instruction{Op: 0xbf, Dst: 1, Src: 2, Off: 1, Imm: ir.CastToUser}, exit), false},
		{"load_acquire and store_release", enc(ir.Instruction{Op: 0xd3, Dst: 0, Src: 1, Imm: ir.AtomicLoadAcq}, ir.Instruction{Op: 0xcb, Dst: 10, Src: 1, Off: -8, Imm: ir.AtomicStoreRel}, exit), false},
		{"xlated internals", enc(ir.Instruction{Op: 0xb7, Dst: ir.RAX}, ir.Instruction{Op: ir.OpNospec}, ir.Instruction{Op: 0xa1, Dst: 1, Src: 2}, ir.Instruction{Op: 0xfb, Dst: 1, Src: 2}, ir.Instruction{Op: 0xbc, Dst: 3, Src: 3, Imm: 1}, ir.Instruction{Op: ir.OpTailCall}, exit), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ir.DecodeWith(tc.b, ir.DecodeOptions{Xlated: tc.xl})
			if err != nil {
				t.Fatal(err)
			}
			if got := ir.Encode(p); !bytes.Equal(got, tc.b) {
				t.Fatalf("re-encoded %x, want %x", got, tc.b)
			}
		})
	}
}

// TestEncodeRoundTrip decodes and re-encodes the conformance programs and
// the kernel's xlated goldens byte for byte.
func TestEncodeRoundTrip(t *testing.T) {
	n := 0
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := asm.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		b := ir.Encode(cf.Program)
		p, err := ir.Decode(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if !bytes.Equal(ir.Encode(p), b) {
			t.Errorf("%s: not byte-exact", filepath.Base(f))
		}
		n++
	}
	gs, _ := filepath.Glob(filepath.Join(xlatedDir, "*.json"))
	for _, g := range readGoldensIfAny(t) {
		for _, h := range []string{g.Source, g.Xlated} {
			b, _ := hex.DecodeString(h)
			p, err := ir.DecodeWith(b, ir.DecodeOptions{Xlated: true})
			if err != nil {
				// The xlated form of bpf-to-bpf calls keeps the
				// callee index in imm: not a valid target.
				t.Logf("%s: %v", g.Name, err)
				continue
			}
			if !bytes.Equal(ir.Encode(p), b) {
				t.Errorf("%s: not byte-exact", g.Name)
			}
			n++
		}
	}
	t.Logf("%d programs round-tripped (%d golden files)", n, len(gs))
}

func readGoldensIfAny(t *testing.T) []xlatedGolden {
	files, _ := filepath.Glob(filepath.Join(xlatedDir, "*.json"))
	if len(files) == 0 {
		return nil
	}
	return readGoldens(t)
}

var writeCorpus = flag.Bool("writecorpus", false, "rewrite the FuzzDecode/FuzzParse seed corpora under testdata/fuzz")

// decodeSeeds are the FuzzDecode seeds: valid programs of every kind and
// one of each malformed class.
func decodeSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	for k, f := range files {
		if k%8 != 0 { // a sample keeps the corpus small
			continue
		}
		src, _ := os.ReadFile(f)
		if cf, err := asm.Parse(src); err == nil {
			seeds = append(seeds, ir.Encode(cf.Program))
		}
	}
	if tt, ok := t.(*testing.T); ok {
		for _, g := range readGoldensIfAny(tt) {
			b, _ := hex.DecodeString(g.Source)
			seeds = append(seeds, b)
		}
	}
	seeds = append(seeds,
		nil, []byte{0x95}, enc(ir.Instruction{Op: ir.OpLdImm64}),
		enc(ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{Op: 1}, exit),
		enc(ir.Instruction{Op: 0xe7}, exit), enc(ir.Instruction{Op: 0xb7, Dst: 11}, exit),
		enc(ir.Instruction{Op: ir.OpJA, Off: 1}, ir.Instruction{Op: ir.OpLdImm64}, ir.Instruction{}, exit),
		enc(ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: -5}, exit),
	)
	return seeds
}

func TestWriteDecodeCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -writecorpus to rewrite testdata/fuzz/FuzzDecode")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, s := range decodeSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%03d", k)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDecode: decoding never panics, every error is an *ir.Error, and what
// decodes re-encodes byte for byte, prints, and builds a CFG or an error.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, xl := range []bool{false, true} {
			p, err := ir.DecodeWith(b, ir.DecodeOptions{Xlated: xl})
			if err != nil {
				var e *ir.Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T: %v", err, err)
				}
				continue
			}
			if got := ir.Encode(p); !bytes.Equal(got, b) {
				t.Fatalf("re-encoded %x, want %x", got, b)
			}
			_ = p.String()
			q, err := asm.Assemble(asm.Format(p))
			if err != nil {
				t.Fatalf("asm.Format output does not assemble: %v\n%s", err, asm.Format(p))
			}
			if !bytes.Equal(ir.Encode(q), b) {
				t.Fatalf("asm round trip differs:\n%s", asm.Format(p))
			}
			if _, err := ir.NewCFG(p); err != nil {
				var e *ir.Error
				if !errors.As(err, &e) {
					t.Fatalf("CFG error %T: %v", err, err)
				}
			}
		}
	})
}
