package asm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

func ins(op uint8, dst, src ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: op, Dst: dst, Src: src, Off: off, Imm: imm}
}

// TestMnemonics checks the encoding of every form the suite uses (opcode
// values from RFC 9669 and the kernel's uapi).
func TestMnemonics(t *testing.T) {
	tests := []struct {
		text string
		want []ir.Instruction
	}{
		{"mov %r0, 1", []ir.Instruction{ins(0xb7, 0, 0, 0, 1)}},
		{"mov %r0, -1", []ir.Instruction{ins(0xb7, 0, 0, 0, -1)}},
		{"mov %r0, 0xffffffff", []ir.Instruction{ins(0xb7, 0, 0, 0, -1)}},
		{"mov64 %r1, %r2", []ir.Instruction{ins(0xbf, 1, 2, 0, 0)}},
		{"mov32 %r1, %r2", []ir.Instruction{ins(0xbc, 1, 2, 0, 0)}},
		{"add32 %r1, 3", []ir.Instruction{ins(0x04, 1, 0, 0, 3)}},
		{"sub %r1, %r2", []ir.Instruction{ins(0x1f, 1, 2, 0, 0)}},
		{"mul32 %r1, %r2", []ir.Instruction{ins(0x2c, 1, 2, 0, 0)}},
		{"div %r1, 3", []ir.Instruction{ins(0x37, 1, 0, 0, 3)}},
		{"sdiv %r1, 3", []ir.Instruction{ins(0x37, 1, 0, 1, 3)}},
		{"sdiv32 %r1, %r2", []ir.Instruction{ins(0x3c, 1, 2, 1, 0)}},
		{"mod32 %r1, 3", []ir.Instruction{ins(0x94, 1, 0, 0, 3)}},
		{"smod %r1, %r2", []ir.Instruction{ins(0x9f, 1, 2, 1, 0)}},
		{"or %r1, 3", []ir.Instruction{ins(0x47, 1, 0, 0, 3)}},
		{"and32 %r1, 3", []ir.Instruction{ins(0x54, 1, 0, 0, 3)}},
		{"lsh %r1, 3", []ir.Instruction{ins(0x67, 1, 0, 0, 3)}},
		{"rsh32 %r1, %r2", []ir.Instruction{ins(0x7c, 1, 2, 0, 0)}},
		{"arsh %r1, 3", []ir.Instruction{ins(0xc7, 1, 0, 0, 3)}},
		{"xor32 %r1, %r2", []ir.Instruction{ins(0xac, 1, 2, 0, 0)}},
		{"neg %r1", []ir.Instruction{ins(0x87, 1, 0, 0, 0)}},
		{"neg32 %r1", []ir.Instruction{ins(0x84, 1, 0, 0, 0)}},
		{"le16 %r1", []ir.Instruction{ins(0xd4, 1, 0, 0, 16)}},
		{"be64 %r1", []ir.Instruction{ins(0xdc, 1, 0, 0, 64)}},
		{"swap32 %r1", []ir.Instruction{ins(0xd7, 1, 0, 0, 32)}},
		{"bswap16 %r1", []ir.Instruction{ins(0xd7, 1, 0, 0, 16)}},
		{"movsx864 %r1, %r2", []ir.Instruction{ins(0xbf, 1, 2, 8, 0)}},
		{"movsx1632 %r1, %r2", []ir.Instruction{ins(0xbc, 1, 2, 16, 0)}},
		{"movsx3264 %r1, %r2", []ir.Instruction{ins(0xbf, 1, 2, 32, 0)}},
		{"lddw %r0, 0x1122334455667788", []ir.Instruction{ins(0x18, 0, 0, 0, 0x55667788), ins(0, 0, 0, 0, 0x11223344)}},
		{"lddw %r1, -2", []ir.Instruction{ins(0x18, 1, 0, 0, -2), ins(0, 0, 0, 0, -1)}},
		{"ldxb %r0, [%r1+0x2]", []ir.Instruction{ins(0x71, 0, 1, 2, 0)}},
		{"ldxh %r0, [%r1]", []ir.Instruction{ins(0x69, 0, 1, 0, 0)}},
		{"ldxw %r0, [%r10-4]", []ir.Instruction{ins(0x61, 0, 10, -4, 0)}},
		{"ldxdw %r0, [%r1+8]", []ir.Instruction{ins(0x79, 0, 1, 8, 0)}},
		{"ldxsb %r0, [%r10-1]", []ir.Instruction{ins(0x91, 0, 10, -1, 0)}},
		{"ldxsh %r0, [%r10-2]", []ir.Instruction{ins(0x89, 0, 10, -2, 0)}},
		{"ldxsw %r0, [%r10-4]", []ir.Instruction{ins(0x81, 0, 10, -4, 0)}},
		{"stb [%r1+2], 0x11", []ir.Instruction{ins(0x72, 1, 0, 2, 0x11)}},
		{"sth [%r1], -1", []ir.Instruction{ins(0x6a, 1, 0, 0, -1)}},
		{"stw [%r1+4], 5", []ir.Instruction{ins(0x62, 1, 0, 4, 5)}},
		{"stdw [%r10-8], 5", []ir.Instruction{ins(0x7a, 10, 0, -8, 5)}},
		{"stxb [%r1+2], %r3", []ir.Instruction{ins(0x73, 1, 3, 2, 0)}},
		{"stxh [%r1+2], %r3", []ir.Instruction{ins(0x6b, 1, 3, 2, 0)}},
		{"stxw [%r1+2], %r3", []ir.Instruction{ins(0x63, 1, 3, 2, 0)}},
		{"stxdw [%r10-8], %r0", []ir.Instruction{ins(0x7b, 10, 0, -8, 0)}},
		{"lock add [%r10-8], %r1", []ir.Instruction{ins(0xdb, 10, 1, -8, 0x00)}},
		{"lock add32 [%r10-4], %r1", []ir.Instruction{ins(0xc3, 10, 1, -4, 0x00)}},
		{"lock fetch or [%r10-8], %r3", []ir.Instruction{ins(0xdb, 10, 3, -8, 0x41)}},
		{"lock fetch and32 [%r10-4], %r3", []ir.Instruction{ins(0xc3, 10, 3, -4, 0x51)}},
		{"lock xor [%r10-8], %r1", []ir.Instruction{ins(0xdb, 10, 1, -8, 0xa0)}},
		{"lock xchg [%r10-8], %r1", []ir.Instruction{ins(0xdb, 10, 1, -8, 0xe1)}},
		{"lock cmpxchg32 [%r10-8], %r1", []ir.Instruction{ins(0xc3, 10, 1, -8, 0xf1)}},
		{"ja +1", []ir.Instruction{ins(0x05, 0, 0, 1, 0)}},
		{"ja -1", []ir.Instruction{ins(0x05, 0, 0, -1, 0)}},
		{"ja32 +3", []ir.Instruction{ins(0x06, 0, 0, 0, 3)}},
		{"jeq %r1, 5, +2", []ir.Instruction{ins(0x15, 1, 0, 2, 5)}},
		{"jne32 %r1, %r2, -2", []ir.Instruction{ins(0x5e, 1, 2, -2, 0)}},
		{"jsle %r1, -1, +0", []ir.Instruction{ins(0xd5, 1, 0, 0, -1)}},
		{"jset32 %r1, 0x80000000, +1", []ir.Instruction{ins(0x46, 1, 0, 1, -0x80000000)}},
		{"call 5", []ir.Instruction{ins(0x85, 0, 0, 0, 5)}},
		{"call helper 5", []ir.Instruction{ins(0x85, 0, 0, 0, 5)}},
		{"call %r2", []ir.Instruction{ins(0x8d, 2, 0, 0, 0)}},
		{"call local +2", []ir.Instruction{ins(0x85, 0, 1, 0, 2)}},
		{"call runtime 77", []ir.Instruction{ins(0x85, 0, 2, 0, 77)}},
		{"exit", []ir.Instruction{ins(0x95, 0, 0, 0, 0)}},
		{".insn 0x0000000500000095", []ir.Instruction{ins(0x95, 0, 0, 0, 5)}},
		{"  MOV %r0 , 1   # comment", []ir.Instruction{ins(0xb7, 0, 0, 0, 1)}},
		{"ldxw %r0, [ %r1 + 4 ]", []ir.Instruction{ins(0x61, 0, 1, 4, 0)}},
	}
	for _, tc := range tests {
		p, err := Assemble(tc.text)
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if fmt.Sprint(p.Insns) != fmt.Sprint(tc.want) {
			t.Errorf("%q = %+v, want %+v", tc.text, p.Insns, tc.want)
		}
	}
}

func TestLabels(t *testing.T) {
	p, err := Assemble("start: mov %r0, 0\njeq %r1, 0, done\nja start\ndone:\ncall local f\njne %r0, 1, exit\nexit\nf: mov %r0, 1\nexit")
	if err != nil {
		t.Fatal(err)
	}
	want := []ir.Instruction{
		ins(0xb7, 0, 0, 0, 0),
		ins(0x15, 1, 0, 1, 0),  // -> 3
		ins(0x05, 0, 0, -3, 0), // -> 0
		ins(0x85, 0, 1, 0, 2),  // -> 6
		ins(0x55, 0, 0, 0, 1),  // -> 5 (the implicit "exit" label: first exit)
		ins(0x95, 0, 0, 0, 0),
		ins(0xb7, 0, 0, 0, 1),
		ins(0x95, 0, 0, 0, 0),
	}
	if fmt.Sprint(p.Insns) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", p.Insns, want)
	}
	// A label named exit wins over the implicit one.
	p, err = Assemble("ja exit\nexit\nexit:\nexit")
	if err != nil {
		t.Fatal(err)
	}
	if p.Insns[0].Off != 1 {
		t.Errorf("ja exit = %+d, want +1 (the user's label)", p.Insns[0].Off)
	}
}

func TestAssembleErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"", "line 1: no instructions"},
		{"mov %r0, 0\nfoo %r1\nexit", "line 2: unknown mnemonic \"foo\""},
		{"mov %r16, 0", "line 1: bad register \"%r16\""},
		{"mov %x1, 0", "line 1: bad register \"%x1\""},
		{"mov %r0", "line 1: mov takes 2 operands, got 1"},
		{"exit 1", "line 1: exit takes 0 operands, got 1"},
		{"neg %r0, 1", "line 1: neg takes 1 operands, got 2"},
		{"mov %r0, 0x100000000", "line 1: immediate 0x100000000 does not fit in 32 bits"},
		{"mov %r0, -2147483649", "does not fit in 32 bits"},
		{"mov %r0, 12abc", "line 1: bad number \"12abc\""},
		{"lddw %r0, 0x10000000000000000", "not a 64-bit value"},
		{"ldxw %r0, [%r1+32768]", "line 1: bad memory offset in \"[%r1+32768]\""},
		{"ldxw %r0, %r1", "line 1: bad memory operand \"%r1\""},
		{"ldxw %r0, [%r1+4", "unclosed memory operand"},
		{"ja +32768", "line 1: jump offset +32768 does not fit in 16 bits"},
		{"ja nowhere\nexit", "line 1: undefined label \"nowhere\""},
		{"a:\na:\nexit", "line 2: label \"a\" already defined at line 1"},
		{"lock nand [%r1], %r2", "line 1: unknown atomic operation \"nand\""},
		{"lock add %r1, %r2", "bad memory operand"},
		{"call far 5", "line 1: unknown call mode \"far\""},
		{"call local 5x", "bad jump target \"5x\""},
		{"movsx3232 %r0, %r1", "unknown mnemonic \"movsx3232\""},
		{"movsx864 %r0, 5", "movsx864 needs a source register"},
		{"ldxsdw %r0, [%r1]", "unknown mnemonic \"ldxsdw\""},
		{"le8 %r0", "unknown mnemonic \"le8\""},
		{"jeq64 %r0, 1, +1", "unknown mnemonic \"jeq64\""},
		{".insn 0x1ffffffffffffffff", "not a 64-bit value"},
		{"exit\n\n\n   bogus", "line 4: unknown mnemonic \"bogus\""},
		{"mov %r0, 1\n,\nexit", "line 2: missing mnemonic"},
	}
	for _, tc := range tests {
		_, err := Assemble(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.text, err, tc.want)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%q: error %T is not *asm.Error", tc.text, err)
		}
	}
}

func TestParseSections(t *testing.T) {
	src := `# header comment
-- asm
mov %r0, 1  # trailing
exit
-- mem
00 01 0a
ff
-- result
0x10
-- error
invalid instruction
-- c
int main() { return 0; } -- not a section
-- no register offset
call instruction
`
	f, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Mem, []byte{0, 1, 0x0a, 0xff}) || f.Result != 16 || !f.HasResult || f.Error != "invalid instruction" {
		t.Errorf("parsed %+v", f)
	}
	if f.Program == nil || f.Program.Len() != 2 || f.Raw != nil {
		t.Errorf("program %+v", f.Program)
	}
	if strings.Join(f.Sections, ",") != "asm,mem,result,error,c,no register offset" {
		t.Errorf("sections %v", f.Sections)
	}

	// A raw section replaces the asm program.
	f, err = Parse([]byte("-- raw\n0x00000001000000b7\n0x0000000000000095\n-- result\n1"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Asm != nil || f.Program.Len() != 2 || f.Program.Insns[0] != ins(0xb7, 0, 0, 0, 1) {
		t.Errorf("raw program %+v", f.Program)
	}
	if got := RawText(f.Program); got != "0x00000001000000b7\n0x0000000000000095\n" {
		t.Errorf("RawText = %q", got)
	}

	errs := []struct{ src, want string }{
		{"-- asm\nexit\n-- bogus\n", "line 3: unknown section \"bogus\""},
		{"mov %r0, 1\n-- asm\nexit", "line 1: text before the first section"},
		{"-- asm\nexit\n-- asm\nexit", "line 3: section \"asm\" repeats the one at line 1"},
		{"-- asm\nexit\n-- result\n1 2", "line 3: result section has 2 values, want 1"},
		{"-- asm\nexit\n-- result\nzz", "line 4: result: bad number \"zz\""},
		{"-- asm\nexit\n-- mem\n00 1g", "line 4: mem: bad byte \"1g\""},
		{"-- raw\n0xq", "line 2: raw: bad number \"0xq\""},
		{"-- raw\n", "line 1: raw section is empty"},
		{"-- asm\nmov %r0, 1\nbad\n", "line 3: unknown mnemonic \"bad\""},
	}
	for _, tc := range errs {
		_, err := Parse([]byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.src, err, tc.want)
		}
	}
	if _, err := Parse([]byte("-- weird\n")); !errors.Is(err, ErrUnknownSection) {
		t.Errorf("unknown section error %v does not wrap ErrUnknownSection", err)
	}
}

// TestFormatRoundTrip formats instructions the syntax cannot express
// (they become .insn) and programs with odd targets, and reads them back.
func TestFormatRoundTrip(t *testing.T) {
	progs := [][]ir.Instruction{
		{ins(0x18, 1, ir.PseudoMapFD, 0, 3), ins(0, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)},
		{ins(0x18, 1, ir.PseudoFunc, 0, 1), ins(0, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)},
		{ins(0xdb, 0, 1, 0, ir.AtomicLoadAcq), ins(0xe5, 0, 0, 0, 0), ins(0xf5, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)},
		{ins(0xbf, 1, 2, 1, ir.CastToUser), ins(0xa1, 1, 2, 0, 0), ins(0xc2, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)},
		{ins(0x05, 0, 0, 1, 0), ins(0x18, 0, 0, 0, 0), ins(0, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)}, // jump into ld_imm64
		{ins(0x05, 0, 0, 100, 0), ins(0x15, 1, 0, -50, 0), ins(0x95, 0, 0, 0, 0)},                 // targets outside
		{ins(0x05, 0, 0, 0, 7), ins(0xb7, 0, 1, 0, 0), ins(0x95, 0, 0, 0, 1)},                     // reserved fields
		{ins(0x8d, 0, 0, 0, 2), ins(0x85, 0, 2, 3, 9), ins(0x18, 0, 0, 0, 0)},                     // callx in imm, kfunc off, truncated ld_imm64
	}
	for k, insns := range progs {
		p := ir.NewProgram("", insns)
		text := Format(p)
		q, err := Assemble(text)
		if err != nil {
			t.Errorf("prog %d: %v\n%s", k, err, text)
			continue
		}
		if fmt.Sprint(q.Insns) != fmt.Sprint(p.Insns) {
			t.Errorf("prog %d: round trip\n%s\ngot  %+v\nwant %+v", k, text, q.Insns, p.Insns)
		}
	}
	// Labels appear for in-range targets.
	p, _ := Assemble("jeq %r1, 0, +1\nmov %r0, 1\nexit")
	if got := Format(p); got != "jeq %r1, 0, L2\nmov %r0, 1\nL2:\nexit\n" {
		t.Errorf("Format = %q", got)
	}
}

func TestFormatXlatedGoldens(t *testing.T) {
	files, _ := filepath.Glob("../testdata/xlated/*.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		i := bytes.Index(b, []byte(`"xlated": "`))
		if i < 0 {
			continue
		}
		rest := b[i+len(`"xlated": "`):]
		raw, err := hex.DecodeString(string(rest[:bytes.IndexByte(rest, '"')]))
		if err != nil {
			t.Fatal(err)
		}
		var insns []ir.Instruction
		for k := 0; k+8 <= len(raw); k += 8 {
			var v uint64
			for j := 7; j >= 0; j-- {
				v = v<<8 | uint64(raw[k+j])
			}
			insns = append(insns, slotFromU64(v))
		}
		p := ir.NewProgram("", insns)
		q, err := Assemble(Format(p))
		if err != nil || fmt.Sprint(q.Insns) != fmt.Sprint(p.Insns) {
			t.Errorf("%s: xlated program does not round-trip: %v", filepath.Base(f), err)
		}
	}
}

var writeCorpus = flag.Bool("writecorpus", false, "rewrite testdata/fuzz/FuzzParse")

func parseSeeds() [][]byte {
	seeds := [][]byte{
		[]byte("-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n"),
		[]byte("-- asm\nL: jeq %r1, 0, L\nexit\n-- mem\n00 ff\n-- result\n0\n"),
		[]byte("-- raw\n0x0000000000000095\n-- result\n0"),
		[]byte("-- asm\nlock fetch add32 [%r10-4], %r1\ncall local f\nexit\nf: exit\n"),
		[]byte("-- asm\n.insn 0xffffffffffffffff\nlddw %r1, -1\n"),
		[]byte("-- bogus\n"), []byte("--"), []byte("-- asm\nja +"), []byte("-- asm\nldxw %r0, [%r1+"),
	}
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "*.data"))
	for k, f := range files {
		if k%10 == 0 {
			if b, err := os.ReadFile(f); err == nil {
				seeds = append(seeds, b)
			}
		}
	}
	return seeds
}

func TestWriteParseCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -writecorpus to rewrite testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, s := range parseSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%03d", k)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParse: Parse never panics, errors are *Error or the unknown-section
// error, and a parsed program formats and reassembles to the same slots.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && !errors.Is(err, ErrUnknownSection) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if file.Program == nil {
			return
		}
		text := Format(file.Program)
		q, err := Assemble(text)
		if err != nil {
			t.Fatalf("formatted text does not assemble: %v\n%s", err, text)
		}
		if fmt.Sprint(q.Insns) != fmt.Sprint(file.Program.Insns) {
			t.Fatalf("round trip differs\n%s", text)
		}
	})
}
