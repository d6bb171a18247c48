package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// bin is the bpfc binary built once for the tests of the command itself.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bpfc-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "bpfc")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building bpfc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const elfDir = "../../testdata/elf"

type result struct {
	stdout, stderr string
	code           int
}

func bpfc(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return bpfcIn(t, "", stdin, args...)
}

// bpfcIn runs bpfc in directory dir ("" = the package directory).
func bpfcIn(t *testing.T, dir string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running bpfc: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

func raw(insns ...ir.Instruction) []byte { return ir.Encode(&ir.Program{Insns: insns}) }

var (
	mov0 = ir.Instruction{Op: 0xb7, Dst: ir.R0, Imm: 7} // r0 = 7
	exit = ir.Instruction{Op: ir.OpExit}
)

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"compile", "--help"}, {"dump", "--help"}, {"passes", "--help"}, {"kcompare", "--help"}, {"run", "--help"}, {"help", "compile"}} {
		r := bpfc(t, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Usage:", "%v", args)
		require.Empty(t, r.stderr, "%v", args)
	}
	r := bpfc(t, nil, "compile", "--help")
	for _, flag := range []string{"--prog", "--format", "--output", "--log-level", "--log-format", "--dump-after", "--target", "--exec-base", "--call-base", "--kern-vm-start", "--user-vm-start", "--from-xlated"} {
		require.Contains(t, r.stdout, flag)
	}
}

func TestCompileFormats(t *testing.T) {
	t.Parallel()
	obj := filepath.Join(elfDir, "alu.o")
	// asm: a listing of both programs with source lines.
	r := bpfc(t, nil, "compile", "--format", "asm", obj)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "alu_loop: ; exec 0xffffffffa0000000")
	require.Contains(t, r.stdout, "xdp_bits: ; exec 0xffffffffa0000000")
	require.Contains(t, r.stdout, "; alu.c:")
	require.Contains(t, r.stdout, "push rbp")
	require.Empty(t, r.stderr)

	// json: parse it, and the hex per function agrees with raw.
	r = bpfc(t, nil, "compile", "--format", "json", "--prog", "alu_loop", obj)
	require.Equal(t, 0, r.code, r.stderr)
	var js struct {
		Programs []struct {
			Name  string
			Code  string
			Insns int
			Funcs []struct {
				Code  string
				Addrs []int32
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &js))
	require.Len(t, js.Programs, 1)
	require.Equal(t, "alu_loop", js.Programs[0].Name)
	require.Len(t, js.Programs[0].Funcs[0].Addrs, js.Programs[0].Insns+1)

	dir := t.TempDir()
	out := filepath.Join(dir, "alu.bin")
	r = bpfc(t, nil, "compile", "--format", "raw", "--prog", "alu_loop", "-o", out, obj)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)
	code, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, js.Programs[0].Code, hex.EncodeToString(code))
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "temporary file left behind")

	r = bpfc(t, nil, "compile", "--format", "hex", obj)
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^alu_loop alu_loop 0xffffffffa0000000 [0-9a-f]+$`, lines[0])
	require.Equal(t, "alu_loop alu_loop 0xffffffffa0000000 "+js.Programs[0].Code, lines[0])

	// --exec-base moves the function.
	r = bpfc(t, nil, "compile", "--format", "hex", "--prog", "xdp", "--exec-base", "0xffffffffa0001000", obj)
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "xdp_bits xdp_bits 0xffffffffa0001000 "), r.stdout)
}

func TestCompileInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prog := raw(mov0, exit)
	// Raw bytes on stdin.
	r := bpfc(t, prog, "compile", "--format", "asm", "-")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "; -: stdin:")
	require.Contains(t, r.stdout, "0: (b7) r0 = 7")
	require.Contains(t, r.stdout, "mov eax, 0x7")
	// A raw .bin file.
	bin := writeFile(t, dir, "seven.bin", prog)
	r = bpfc(t, nil, "compile", "--format", "hex", bin)
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "seven seven 0xffffffffa0000000 "), r.stdout)
	// A conformance .data file.
	data := writeFile(t, dir, "add.data", []byte("-- asm\nmov32 %r0, 0\nmov32 %r1, 2\nadd32 %r0, %r1\nexit\n-- result\n0x2\n"))
	r = bpfc(t, nil, "compile", "--format", "asm", data)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "w0 += w1")
	require.Contains(t, r.stdout, "add eax, edi")
	// Several inputs at once.
	r = bpfc(t, nil, "compile", "--format", "hex", "--prog", "caller_two", filepath.Join(elfDir, "calls.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 3, strings.Count(r.stdout, "\n"), r.stdout) // caller_two, square_sum, mix
	r = bpfc(t, nil, "compile", "--format", "hex", bin, data, filepath.Join(elfDir, "alu.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 4, strings.Count(r.stdout, "\n"), r.stdout)
}

func TestDump(t *testing.T) {
	t.Parallel()
	r := bpfc(t, nil, "dump", "--kernel-btf", "none", "--prog", "caller_two", filepath.Join(elfDir, "calls.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "   0: (85) call bpf_rcu_read_lock#0\n")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
		// By default kfunc ids come from the running kernel's BTF; a BTF
		// file gives the same.
		r := bpfc(t, nil, "dump", "--prog", "caller_two", filepath.Join(elfDir, "calls.o"))
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^   0: \(85\) call bpf_rcu_read_lock#[1-9]\d*$`, r.stdout)
		r2 := bpfc(t, nil, "dump", "--kernel-btf", "/sys/kernel/btf/vmlinux", "--prog", "caller_two", filepath.Join(elfDir, "calls.o"))
		require.Equal(t, 0, r2.code, r2.stderr)
		require.Equal(t, r.stdout, r2.stdout)
	}
	bad := bpfc(t, nil, "dump", "--kernel-btf", "/nonexistent/btf", filepath.Join(elfDir, "calls.o"))
	require.Equal(t, 2, bad.code)
	require.Equal(t, "bpfc: --kernel-btf /nonexistent/btf: open /nonexistent/btf: no such file or directory\n", bad.stderr)
	require.Contains(t, r.stdout, "   2: (85) call pc+7#square_sum\n")
	require.Contains(t, r.stdout, "; bpf_rcu_read_lock();\n")
	r = bpfc(t, nil, "dump", "--no-source", filepath.Join(elfDir, "maps.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "; "+filepath.Join(elfDir, "maps.o")+": count_packets (section socket)\n")
	require.Contains(t, r.stdout, "   6: (18) r1 = map[counters]\n")
	require.Contains(t, r.stdout, "  21: (18) r1 = map[.rodata]+0\n")
	require.NotContains(t, r.stdout, "; __u32 key")
	r = bpfc(t, nil, "dump", "--kernel-text", "--no-source", "--prog", "count_packets", filepath.Join(elfDir, "maps.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "   6: (18) r1 = map[id:0]\n")
}

// TestDumpAfter: every pass of the default pipeline logs its debug line and
// dumps the program.
func TestDumpAfter(t *testing.T) {
	t.Parallel()
	names := compiler.DefaultPipeline(false).Names()
	r := bpfc(t, nil, "compile", "--dump-after", "all", "--log-level", "debug", "--prog", "alu_loop", filepath.Join(elfDir, "alu.o"))
	require.Equal(t, 0, r.code, r.stderr)
	for _, n := range names {
		require.Regexp(t, `(?m)DEBUG\s+pass\s+.*"pass": "`+regexp.QuoteMeta(n)+`"`, r.stderr)
		require.Contains(t, r.stderr, "--- after pass "+n+" (")
	}
	r = bpfc(t, nil, "compile", "--dump-after", "all", "--log-format", "json", "--prog", "alu_loop", filepath.Join(elfDir, "alu.o"))
	require.Equal(t, 0, r.code, r.stderr)
	dumps := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == "dump" {
			dumps++
			require.NotEmpty(t, m["program"])
		}
	}
	require.Equal(t, len(names), dumps)
	// The arena pass's rewrite shows in its dump, marked as changed.
	r = bpfc(t, nil, "compile", "--dump-after", "arena,fixups", "--user-vm-start", "0x100000000", "--kern-vm-start", "0xffffc90000000000",
		filepath.Join(elfDir, "arena_globals.o"))
	require.Equal(t, 0, r.code, r.stderr)
	arenaDump := r.stderr[strings.Index(r.stderr, "--- after pass arena"):strings.Index(r.stderr, "--- after pass fixups")]
	require.Contains(t, arenaDump, "*    3: (a1) r0 = *(u32 *)(r1 +0) probe_mem32  ; ptr=arena\n")
	require.Contains(t, arenaDump, "     0: (18) r1 = arena[.addr_space.1]+64\n")
	require.Contains(t, r.stderr[strings.Index(r.stderr, "--- after pass fixups"):], "*    0: (18) r1 = 0x100003040 <.addr_space.1>\n")
	if len(names) > 0 {
		r = bpfc(t, nil, "compile", "--dump-after", names[0], "--prog", "alu_loop", filepath.Join(elfDir, "alu.o"))
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "--- after pass "))
	}
}

func TestPasses(t *testing.T) {
	t.Parallel()
	r := bpfc(t, nil, "passes")
	names := compiler.DefaultPipeline(false).Names()
	if len(names) == 0 {
		require.Equal(t, 1, r.code)
		require.Equal(t, "bpfc: no passes are registered in this build\n", r.stderr)
		return
	}
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, len(names))
	for k, n := range names {
		require.True(t, strings.HasPrefix(lines[k], n+" "), lines[k])
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	calls, err := os.ReadFile(filepath.Join(elfDir, "calls.o"))
	require.NoError(t, err)
	badObj := append([]byte(nil), calls...)
	// slot 4 of section syscall (r2 = 3) gets an unknown opcode.
	off := bytes.Index(badObj, raw(ir.Instruction{Op: 0xb7, Dst: ir.R2, Imm: 3}))
	require.Greater(t, off, 0)
	badObj[off] = 0xff
	for name, data := range map[string][]byte{
		"trunc.bin":  raw(mov0, exit)[:12],
		"seven.bin":  raw(mov0, exit),
		"badop.bin":  raw(mov0, mov0, mov0, ir.Instruction{Op: 0xff}, exit),
		"jump.bin":   raw(mov0, ir.Instruction{Op: ir.OpJA, Off: 5}, exit),
		"noexit.bin": raw(mov0, mov0),
		"bad.o":      badObj,
		"notelf.o":   []byte("not an object"),
		"bad.data":   []byte("-- asm\nmov32 %r0, 0\nfrobnicate %r1\nexit\n"),
		"empty.bin":  nil,
	} {
		writeFile(t, dir, name, data)
	}
	alu, err := filepath.Abs(filepath.Join(elfDir, "alu.o"))
	require.NoError(t, err)
	writeFile(t, dir, "alu.o", mustRead(t, alu))
	good := "alu.o"
	tests := []struct {
		name string
		args []string
		code int
		want string // regexp for the one stderr line (after "bpfc: ")
	}{
		{"no args", []string{"compile"}, 2, `compile: requires at least 1 arg`},
		{"unknown command", []string{"frob"}, 2, `unknown command "frob"`},
		{"unknown flag", []string{"compile", "--frob", good}, 2, `unknown flag: --frob`},
		{"bad format", []string{"compile", "--format", "elf", good}, 2, `--format "elf": want raw, hex, asm or json`},
		{"bad target", []string{"compile", "--target", "arm64", good}, 2, `--target "arm64"`},
		{"bad address", []string{"compile", "--exec-base", "0xzz", good}, 2, `--exec-base "0xzz": not an address`},
		{"bad log level", []string{"compile", "--log-level", "loud", good}, 2, `--log-level "loud"`},
		{"bad log format", []string{"compile", "--log-format", "xml", good}, 2, `--log-format "xml"`},
		{"raw needs one program", []string{"compile", "--format", "raw", good}, 2, `--format raw needs exactly one program, got 2`},
		{"missing file", []string{"compile", "nope.o"}, 1, `nope\.o: open nope\.o: no such file or directory|nope\.o: no such file or directory`},
		{"truncated raw", []string{"compile", "trunc.bin"}, 1, `trunc\.bin: instruction 1: truncated: 12 bytes is not a multiple of 8`},
		{"bad opcode", []string{"compile", "badop.bin"}, 1, `badop\.bin: instruction 3: `},
		{"jump out", []string{"dump", "jump.bin"}, 1, `jump\.bin: instruction 1: jump target 7`},
		{"no exit", []string{"compile", "noexit.bin"}, 1, `noexit\.bin: instruction 1: last instruction is not an exit or jump`},
		{"empty", []string{"compile", "empty.bin"}, 1, `empty\.bin: program is empty`},
		{"bad object insn", []string{"compile", "bad.o"}, 1, `bad\.o: caller_two: instruction 4: `},
		{"not elf", []string{"compile", "--input-format", "elf", "notelf.o"}, 1, `notelf\.o: not an ELF object`},
		{"bad asm", []string{"compile", "bad.data"}, 1, `bad\.data: line 3: `},
		{"no such program", []string{"compile", "--prog", "nope", good}, 1, `alu\.o: no program or section named "nope"`},
		{"prog on raw", []string{"compile", "--prog", "x", "seven.bin"}, 1, `seven\.bin: --prog "x": a raw input has one program, called "seven"`},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				outName := "out-" + strings.ReplaceAll(tt.name, " ", "_")
				outFile := filepath.Join(dir, outName)
				require.NoError(t, os.WriteFile(outFile, []byte("previous"), 0o644))
				args := append([]string{}, tt.args[:1]...)
				if tt.args[0] == "compile" {
					args = append(args, "-o", outName)
				}
				args = append(args, tt.args[1:]...)
				r := bpfcIn(t, dir, nil, args...)
				require.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
				require.Empty(t, r.stdout)
				require.Equal(t, 1, strings.Count(r.stderr, "\n"), "not one line: %q", r.stderr)
				require.Regexp(t, `^bpfc: `+tt.want, r.stderr)
				require.NotContains(t, r.stderr, "goroutine")
				got, err := os.ReadFile(outFile)
				require.NoError(t, err)
				require.Equal(t, "previous", string(got), "output file touched")
			})
		}
	})
	// No temporary files left next to the outputs.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), "left behind: %s", e.Name())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestKcompare: every program of the testdata objects compiles to the live
// kernel's bytes (skips without BPF).
func TestKcompare(t *testing.T) {
	t.Parallel()
	if ok, reason := kernel.Available(); !ok {
		t.Skip(reason)
	}
	objs, err := filepath.Glob(filepath.Join(elfDir, "*.o"))
	require.NoError(t, err)
	r := bpfc(t, nil, append([]string{"kcompare"}, objs...)...)
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.GreaterOrEqual(t, len(lines), 7)
	for _, l := range lines {
		require.Contains(t, l, ": identical: ")
	}
}

// TestKcompareConformance: the 313 conformance programs loaded into the
// live kernel; none differs, from the xlated program or from the source
// (where the verifier did no more than the passes do).
func TestKcompareConformance(t *testing.T) {
	t.Parallel()
	if ok, reason := kernel.Available(); !ok {
		t.Skip(reason)
	}
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	if len(files) == 0 {
		t.Skip("no conformance suite")
	}
	r := bpfc(t, nil, append([]string{"kcompare"}, files...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "DIFFERS")
	require.Equal(t, len(files), strings.Count(r.stdout, "\n"))
	identical := strings.Count(r.stdout, ": identical: ")
	fromSource := strings.Count(r.stdout, "from source: identical")
	t.Logf("%d programs: %d identical from xlated, %d also from source", len(files), identical, fromSource)
	require.GreaterOrEqual(t, identical, 280)
	require.GreaterOrEqual(t, fromSource, 180)
}

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := writeFile(t, dir, "sum.data", []byte("-- asm\nldxb %r0, [%r1]\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n-- mem\n05 07\n-- result\n0xc\n"))
	loop := writeFile(t, dir, "loop.data", []byte("-- asm\nmov %r0, 0\nl:\nadd %r0, 1\nja l\n"))
	for _, args := range [][]string{{"run", "--timeout", "200ms", loop}, {"run", "--interp", "--timeout", "200ms", loop},
		{"run", "--budget", "1000", loop}, {"run", "--interp", "--budget", "1000", loop}} {
		r := bpfc(t, nil, args...)
		require.Equal(t, 1, r.code, "%v", args)
		require.Regexp(t, `^bpfc: `+regexp.QuoteMeta(loop)+`: .*(deadline exceeded|budget exhausted)`, r.stderr, "%v", args)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"))
	}
	wrong := writeFile(t, dir, "wrong.data", []byte("-- asm\nmov %r0, 1\nexit\n-- result\n0x2\n"))
	tests := []struct {
		args   []string
		stdin  []byte
		code   int
		stdout string
		stderr string
	}{
		{[]string{"run", data}, nil, 0, "0xc\n", ""},
		{[]string{"run", "--interp", data}, nil, 0, "0xc\n", ""},
		{[]string{"run", "--mem", "10 20", data}, nil, 0, "0x30\n", ""},
		{[]string{"run", "-"}, raw(mov0, exit), 0, "0x7\n", ""},
		{[]string{"run", "--prog", "alu_loop", filepath.Join(elfDir, "alu.o")}, nil, 0, "0x33\n", ""},
		{[]string{"run", "--interp", "--prog", "alu_loop", filepath.Join(elfDir, "alu.o")}, nil, 0, "0x33\n", ""},
		{[]string{"run", filepath.Join(elfDir, "arena_globals.o")}, nil, 0, "0x1\n", ""},
		{[]string{"run", "--interp", filepath.Join(elfDir, "arena_globals.o")}, nil, 0, "0x1\n", ""},
		{[]string{"run", "--print-mem", "--mem", "0500000000000000 0700000000000000" + strings.Repeat("00", 48), "../../testdata/arena/p01_store_load.o"}, nil, 0,
			"0x0\n05000000000000000700000000000000" + strings.Repeat("00", 16) + "0d" + strings.Repeat("00", 31) + "\n", ""},
		{[]string{"run", "--interp", "--prog", "count_packets", filepath.Join(elfDir, "maps.o")}, nil, 0, "0x1\n", ""},
		{[]string{"run", "--prog", "count_packets", filepath.Join(elfDir, "maps.o")}, nil, 0, "0x1\n", ""},
		{[]string{"run", wrong}, nil, 1, "0x1\n", "bpfc: " + wrong + ": r0 = 0x1, the file expects 0x2\n"},
		{[]string{"run", filepath.Join(elfDir, "alu.o")}, nil, 2, "", "bpfc: run needs exactly one program, got 2: select one with --prog\n"},
		{[]string{"run", "--mem", "zz", data}, nil, 2, "", "bpfc: --mem: encoding/hex: invalid byte: U+007A 'z'\n"},
	}
	for _, tt := range tests {
		r := bpfc(t, tt.stdin, tt.args...)
		require.Equal(t, tt.code, r.code, "%v: %s", tt.args, r.stderr)
		require.Equal(t, tt.stdout, r.stdout, "%v", tt.args)
		require.Equal(t, tt.stderr, r.stderr, "%v", tt.args)
	}
}

// TestFromXlatedCapture: the kernel's xlated program of a testdata object,
// given as raw bytes with --from-xlated and the kernel's addresses, compiles
// to the kernel's machine code.
func TestFromXlatedCapture(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"alu.alu_loop", "calls.caller_two", "arena_globals.arena_bump"} {
		c, err := kernel.ReadCapture(filepath.Join(elfDir, "captures", name+".json"))
		require.NoError(t, err)
		in := writeFile(t, t.TempDir(), "x.bin", c.JITInput)
		var bases []string
		for _, k := range c.Ksyms {
			bases = append(bases, fmt.Sprintf("%#x", uint64(k)))
		}
		args := []string{"compile", "--from-xlated", "--format", "raw", "--exec-base", strings.Join(bases, ","),
			"--call-base", fmt.Sprintf("%#x", uint64(c.CallBase)), "--return-thunk", fmt.Sprintf("%#x", uint64(c.ReturnThunk)),
			"--indirect-thunk", fmt.Sprintf("%#x", uint64(c.IndirectThunkRCX))}
		if c.KernVMStart != 0 {
			args = append(args, "--kern-vm-start", fmt.Sprintf("%#x", uint64(c.KernVMStart)), "--user-vm-start", fmt.Sprintf("%#x", uint64(c.UserVMStart)))
		}
		r := bpfc(t, nil, append(args, in)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, hex.EncodeToString(c.Jited), hex.EncodeToString([]byte(r.stdout)), name)
	}
}

// TestCompileKfuncsLikeKernel: with the kernel's BTF and kallsyms, compiling
// an object that calls kfuncs at the kernel's exec addresses gives the
// kernel's bytes without loading anything (on the machine the capture came
// from).
func TestCompileKfuncsLikeKernel(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF")
	}
	c, err := kernel.ReadCapture(filepath.Join(elfDir, "captures", "calls.caller_two.json"))
	require.NoError(t, err)
	f, err := os.Open("/proc/kallsyms")
	require.NoError(t, err)
	syms := amd64.ReadKallsyms(f, "__bpf_call_base", "bpf_rcu_read_lock")
	f.Close()
	if syms["__bpf_call_base"] != uint64(c.CallBase) || syms["bpf_rcu_read_lock"] == 0 {
		t.Skip("kallsyms hides addresses or this is not the machine the capture came from")
	}
	var bases []string
	for _, k := range c.Ksyms {
		bases = append(bases, fmt.Sprintf("%#x", uint64(k)))
	}
	r := bpfc(t, nil, "compile", "--prog", "caller_two", "--format", "raw", "--exec-base", strings.Join(bases, ","), filepath.Join(elfDir, "calls.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, hex.EncodeToString(c.Jited), hex.EncodeToString([]byte(r.stdout)))
	// Without kallsyms the kfunc calls keep their immediates: different code.
	r = bpfc(t, nil, "compile", "--no-kallsyms", "--prog", "caller_two", "--format", "raw", "--exec-base", strings.Join(bases, ","), filepath.Join(elfDir, "calls.o"))
	require.Equal(t, 0, r.code, r.stderr)
	require.NotEqual(t, hex.EncodeToString(c.Jited), hex.EncodeToString([]byte(r.stdout)))
}
