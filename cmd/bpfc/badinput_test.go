package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/ir"
)

// The bad-input catalogue: every class of input bpfc must refuse, each run
// through the bpfc binary with -o onto an existing file. For each: exit
// status 1, exactly one line on stderr that names the file and (where there
// is one) the instruction and why, no panic or goroutine dump, and the
// output file is neither changed nor joined by temporary files.

const badDir = "testdata/badinput"

// Instruction builders for the raw inputs.
func bMov(dst ir.Register, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: dst, Imm: imm}
}
func bSt(dst ir.Register, off int16) ir.Instruction {
	return ir.Instruction{Op: uint8(ir.ClassST) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: dst, Off: off, Imm: 1}
}
func bCall(rel int32) ir.Instruction {
	return ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: rel}
}
func bJA(off int16) ir.Instruction { return ir.Instruction{Op: ir.OpJA, Off: off} }

// bChain: n functions, each storing 8 bytes at r10-stack and calling the next.
func bChain(n int, stack int16) []byte {
	var insns []ir.Instruction
	for k := 0; k < n; k++ {
		insns = append(insns, bSt(ir.R10, -stack))
		if k < n-1 {
			insns = append(insns, bCall(1))
		} else {
			insns = append(insns, bMov(ir.R0, 0))
		}
		insns = append(insns, exit)
	}
	return raw(insns...)
}

// bLayoutChain is the backend's chain program (k overlapping forward jumps
// over 59-byte blocks) that needs the kernel's padding to converge.
func bLayoutChain(k int) []byte {
	fill := func(n int) []ir.Instruction {
		var out []ir.Instruction
		for n%5 != 0 {
			out = append(out, ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUAdd), Dst: ir.R0, Imm: 1})
			n -= 4
		}
		for ; n > 0; n -= 5 {
			out = append(out, bMov(ir.R0, 0x11111111))
		}
		return out
	}
	type item struct {
		insns        []ir.Instruction
		jump, target int
	}
	var items []item
	add := func(insns []ir.Instruction, jump, target int) { items = append(items, item{insns, jump, target}) }
	add([]ir.Instruction{{Op: ir.OpCall, Imm: 7}, {Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R6, Src: ir.R0}, bMov(ir.R0, 0)}, -1, -1)
	add(nil, 0, -1)
	add(fill(59), -1, -1)
	for i := 1; i < k; i++ {
		add(nil, i, -1)
		add(fill(59), -1, -1)
		add(nil, -1, i-1)
	}
	add(fill(64), -1, -1)
	add(nil, -1, k-1)
	add([]ir.Instruction{exit}, -1, -1)
	var insns []ir.Instruction
	jumpAt, labelAt := map[int]int{}, map[int]int{}
	for _, it := range items {
		if it.jump >= 0 {
			jumpAt[it.jump] = len(insns)
			insns = append(insns, ir.Instruction{Op: uint8(ir.ClassJMP) | uint8(ir.JumpJEQ), Dst: ir.R6})
		}
		if it.target >= 0 {
			labelAt[it.target] = len(insns)
		}
		insns = append(insns, it.insns...)
	}
	for j, at := range jumpAt {
		insns[at].Off = int16(labelAt[j] - at - 1)
	}
	return raw(insns...)
}

// elfPatch returns a copy of obj changed by fix.
func elfPatch(t *testing.T, obj []byte, fix func(f *elf.File, b []byte)) []byte {
	t.Helper()
	b := append([]byte(nil), obj...)
	f, err := elf.NewFile(bytes.NewReader(obj))
	require.NoError(t, err)
	fix(f, b)
	return b
}

// section returns the header fields of the named section.
func section(t *testing.T, f *elf.File, name string) *elf.Section {
	t.Helper()
	s := f.Section(name)
	require.NotNil(t, s, name)
	return s
}

// shdrOff is the file offset of section k's header.
func shdrOff(t *testing.T, b []byte, k int) int {
	shoff := binary.LittleEndian.Uint64(b[0x28:])
	shentsize := binary.LittleEndian.Uint16(b[0x3a:])
	return int(shoff) + k*int(shentsize)
}

func sectionIndex(f *elf.File, name string) int {
	for k, s := range f.Sections {
		if s.Name == name {
			return k
		}
	}
	return -1
}

func TestBadInputCatalogue(t *testing.T) {
	dir := t.TempDir()
	alu := mustRead(t, filepath.Join(elfDir, "alu.o"))
	ld := ir.LdImm64(ir.R1, 0x1122334455667788)
	huge := make([]byte, 0, (ir.MaxInsns+1)*8)
	for i := 0; i < ir.MaxInsns; i++ {
		huge = append(huge, raw(bMov(ir.R0, 1))...)
	}
	huge = append(huge, raw(exit)...)

	files := map[string][]byte{
		// Raw bytecode.
		"empty.bin":        nil,
		"odd.bin":          raw(mov0, exit)[:13],
		"seven.bin":        raw(mov0, exit)[:7],
		"trunc_ld64.bin":   raw(mov0, exit, ld[0]),
		"opcode.bin":       raw(mov0, ir.Instruction{Op: 0xff}, exit),
		"opcode_alu.bin":   raw(mov0, ir.Instruction{Op: 0xf7}, exit), // ALU64 op 0xf0 does not exist
		"reserved_off.bin": raw(ir.Instruction{Op: 0xb7, Dst: ir.R0, Off: 3, Imm: 1}, exit),
		"reserved_src.bin": raw(mov0, ir.Instruction{Op: 0x07, Dst: ir.R0, Src: ir.R2, Imm: 1}, exit),
		"reg11.bin":        raw(mov0, ir.Instruction{Op: 0xb7, Dst: 11, Imm: 1}, exit),
		"reg15.bin":        raw(mov0, mov0, ir.Instruction{Op: 0xbf, Dst: ir.R0, Src: 15}, exit),
		"write_r10.bin":    raw(mov0, bMov(ir.R10, 0), exit),
		"ldx_r10.bin":      raw(mov0, ir.Instruction{Op: 0x79, Dst: ir.R10, Src: ir.R1}, exit),
		"jump_out.bin":     raw(mov0, bJA(5), exit),
		"jump_back.bin":    raw(mov0, bJA(-3), exit),
		"jump_ld64.bin":    raw(bJA(1), ld[0], ld[1], exit),
		"call_out.bin":     raw(bCall(10), exit),
		"call_ld64.bin":    raw(bCall(2), exit, ld[0], ld[1], exit),
		"huge.bin":         huge,
		"stack.bin":        raw(bSt(ir.R10, -520), mov0, exit),
		"divzero.bin":      raw(mov0, ir.Instruction{Op: uint8(ir.ClassALU64) | uint8(ir.ALUDiv), Dst: ir.R0}, exit),
		"combined.bin":     bChain(2, 300),
		"frames.bin":       bChain(9, 8),
		"layout.bin":       bLayoutChain(25),
		// Objects.
		"notelf.o":    []byte("this is not an object file at all"),
		"elfmagic.o":  []byte("\x7fELF\x02\x01\x01garbage"),
		"machine.o":   elfPatch(t, alu, func(f *elf.File, b []byte) { binary.LittleEndian.PutUint16(b[18:], uint16(elf.EM_X86_64)) }),
		"class32.o":   elfPatch(t, alu, func(f *elf.File, b []byte) { b[4] = byte(elf.ELFCLASS32) }),
		"bigendian.o": elfPatch(t, alu, func(f *elf.File, b []byte) { b[5] = byte(elf.ELFDATA2MSB) }),
		"truncated.o": alu[:len(alu)/2],
		"shortsec.o": elfPatch(t, alu, func(f *elf.File, b []byte) {
			// The socket section claims to run far past the end of the file.
			h := shdrOff(t, b, sectionIndex(f, "socket"))
			binary.LittleEndian.PutUint64(b[h+0x20:], 1<<20)
		}),
		"noname.o": elfPatch(t, alu, func(f *elf.File, b []byte) {
			// The program's symbol loses its name (st_name = 0, the empty string).
			st := section(t, f, ".symtab")
			syms, err := f.Symbols()
			require.NoError(t, err)
			for k, s := range syms {
				if s.Name == "alu_loop" {
					binary.LittleEndian.PutUint32(b[int(st.Offset)+(k+1)*24:], 0)
				}
			}
		}),
		"badbtf.o": elfPatch(t, alu, func(f *elf.File, b []byte) {
			s := section(t, f, ".BTF")
			binary.LittleEndian.PutUint16(b[s.Offset:], 0x1234) // magic
		}),
		"btftypes.o": elfPatch(t, alu, func(f *elf.File, b []byte) {
			// Keep the header, trash the type section.
			s := section(t, f, ".BTF")
			hdr := binary.LittleEndian.Uint32(b[s.Offset+4:])
			for i := s.Offset + uint64(hdr); i < s.Offset+uint64(hdr)+64 && i < s.Offset+s.Size; i++ {
				b[i] = 0xff
			}
		}),
		"unknown_map.o":   mustRead(t, filepath.Join(badDir, "unknown_map.o")),
		"unknown_kfunc.o": mustRead(t, filepath.Join(badDir, "unknown_kfunc.o")),
		"deep_calls.o":    mustRead(t, filepath.Join(badDir, "deep_calls.o")),
	}
	for name, data := range files {
		writeFile(t, dir, name, data)
	}
	_, kfuncBTF := os.Stat("/sys/kernel/btf/vmlinux")

	tests := []struct {
		file string
		want string // regexp of what follows "bpfc: <file>: "
		env  []string
		skip string // non-empty: skip when true
	}{
		{"empty.bin", `program is empty`, nil, ""},
		{"odd.bin", `instruction 1: truncated: 13 bytes is not a multiple of 8`, nil, ""},
		{"seven.bin", `instruction 0: truncated: 7 bytes is not a multiple of 8`, nil, ""},
		{"trunc_ld64.bin", `instruction 2: .*ld_imm64.*(second half|truncated)`, nil, ""},
		{"opcode.bin", `instruction 1: .*(unknown|invalid).*opcode.*0xff`, nil, ""},
		{"opcode_alu.bin", `instruction 1: .*(unknown|invalid).*0xf7`, nil, ""},
		{"reserved_off.bin", `instruction 0: .*(reserved|off)`, nil, ""},
		{"reserved_src.bin", `instruction 1: .*(reserved|src)`, nil, ""},
		{"reg11.bin", `instruction 1: .*(register|r11)`, nil, ""},
		{"reg15.bin", `instruction 2: .*(register|r15)`, nil, ""},
		{"write_r10.bin", `instruction 1: .*r10`, nil, ""},
		{"ldx_r10.bin", `instruction 1: .*r10`, nil, ""},
		{"jump_out.bin", `instruction 1: jump target 7`, nil, ""},
		{"jump_back.bin", `instruction 1: jump target -1`, nil, ""},
		{"jump_ld64.bin", `instruction 0: .*ld_imm64`, nil, ""},
		{"call_out.bin", `instruction 0: .*(target|out of)`, nil, ""},
		{"call_ld64.bin", `instruction 0: .*ld_imm64`, nil, ""},
		{"huge.bin", `program has 1000001 instructions, more than the limit of 1000000`, nil, ""},
		{"stack.bin", `(pass stackdepth: )?instruction 0: function \w+ uses 520 bytes of stack, more than the kernel's limit of 512`, nil, ""},
		{"divzero.bin", `(pass fixups: )?instruction 1: division by a constant 0`, nil, ""},
		{"combined.bin", `(pass stackdepth: )?instruction 1: combined stack size of 2 calls is 608 bytes, more than the kernel's limit of 512`, nil, ""},
		{"frames.bin", `(pass stackdepth: )?instruction 22: the call of .* makes the call stack 9 frames deep, more than the kernel's limit of 8`, nil, ""},
		{"layout.bin", `instruction 0: function 0: layout did not converge in 20 passes`, []string{"BPFC_TEST_PADDING_PASSES=1000"}, ""},
		{"notelf.o", `not an ELF object`, nil, ""},
		{"elfmagic.o", `.*(ELF|elf)`, nil, ""},
		{"machine.o", `.*(machine|EM_BPF|BPF object)`, nil, ""},
		{"class32.o", `.*(class|64-bit|ELF)`, nil, ""},
		{"bigendian.o", `.*(endian|byte order|ELF)`, nil, ""},
		{"truncated.o", `.*`, nil, ""},
		{"shortsec.o", `.*socket.*`, nil, ""},
		{"noname.o", `.*(name|symbol)`, nil, ""},
		{"badbtf.o", `.*BTF`, nil, ""},
		{"btftypes.o", `.*BTF`, nil, ""},
		{"unknown_map.o", `use_missing: instruction 3: .*missing_map`, nil, ""},
		{"unknown_kfunc.o", `call_missing: instruction 1: .*bpf_no_such_kfunc`, nil, map[bool]string{true: "no /sys/kernel/btf/vmlinux to check kfuncs against"}[kfuncBTF != nil]},
		{"deep_calls.o", `deep: (pass stackdepth: )?instruction \d+: the call of .* makes the call stack 9 frames deep`, nil, ""},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			out := filepath.Join(dir, "out-"+tt.file)
			require.NoError(t, os.WriteFile(out, []byte("previous"), 0o644))
			before, err := os.Stat(out)
			require.NoError(t, err)
			cmd := exec.Command(bin, "compile", "-o", filepath.Base(out), tt.file)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			msg := stderr.String()
			require.Equal(t, 1, code, "exit status; stderr: %s", msg)
			require.Empty(t, stdout.String())
			require.Equal(t, 1, strings.Count(msg, "\n"), "not exactly one line: %q", msg)
			require.True(t, strings.HasSuffix(msg, "\n"))
			for _, bad := range []string{"panic", "goroutine ", "runtime error", ".go:"} {
				require.NotContains(t, msg, bad)
			}
			require.Regexp(t, regexp.MustCompile(`^bpfc: `+regexp.QuoteMeta(tt.file)+`: `+tt.want), msg)
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, "previous", string(got), "output file changed")
			after, err := os.Stat(out)
			require.NoError(t, err)
			require.Equal(t, before.ModTime(), after.ModTime(), "output file rewritten")
			t.Logf("%s", strings.TrimSpace(msg))

			// And an output that did not exist is not created.
			fresh := filepath.Join(dir, "new-"+tt.file)
			cmd = exec.Command(bin, "compile", "-o", filepath.Base(fresh), tt.file)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), tt.env...)
			stderr.Reset()
			cmd.Stderr = &stderr
			err = cmd.Run()
			ee, ok := err.(*exec.ExitError)
			require.True(t, ok && ee.ExitCode() == 1, "second run: %v %s", err, stderr.String())
			require.Equal(t, msg, stderr.String(), "second run gave another message")
			_, err = os.Stat(fresh)
			require.True(t, os.IsNotExist(err), "output file created: %v", err)
		})
	}
	for name := range files {
		require.True(t, covered[name], "input %s has no case", name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), "temporary file left behind: %s", e.Name())
	}
}

// TestGoodNeighbours: the inputs just inside the limits compile (8 frames,
// 512 bytes of stack, a combined 512, the layout chain with the kernel's
// padding), so the catalogue's refusals are about the limits themselves.
func TestGoodNeighbours(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"stack512.bin":   raw(bSt(ir.R10, -512), mov0, exit),
		"combined.bin":   bChain(2, 256),
		"frames8.bin":    bChain(8, 8),
		"layout.bin":     bLayoutChain(25),
		"ok_calls.o":     mustRead(t, filepath.Join(badDir, "ok_calls.o")),
		"ld64_exact.bin": raw(ir.LdImm64(ir.R0, 5)[0], ir.LdImm64(ir.R0, 5)[1], exit),
	}
	for name, data := range files {
		writeFile(t, dir, name, data)
		r := bpfcIn(t, dir, nil, "compile", "-o", name+".out", name)
		require.Equal(t, 0, r.code, "%s: %s", name, r.stderr)
		st, err := os.Stat(filepath.Join(dir, name+".out"))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(0))
	}
}
