package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestBench(t *testing.T) {
	t.Parallel()
	compileRe := regexp.MustCompile(`^compile: (\d+) insns, [0-9.]+ ns/insn, [0-9.]+ B/insn, [0-9.]+ allocs/insn, (\d+) layout passes$`)
	runRe := regexp.MustCompile(`^run: (\d+) runs, [0-9.]+ ns/run, [0-9.?]+ ns/insn, (\d+) insns/run \((jit|interp)\)$`)
	for _, tc := range []struct {
		args  []string
		re    *regexp.Regexp
		insns string // the count the last line must give
		more  string // another line of the output must contain this
	}{
		{[]string{"--gen", "straight:1000", "--count", "2"}, compileRe, "1000", "passes:"},
		{[]string{"--gen", "straight:500", "--gen", "loop", "--count", "1", "--cpu"}, compileRe, "515", "decode:"},
		{[]string{"--gen", "straight:300", "--count", "1", "--batch", "5"}, compileRe, "300", "batch: 5 programs, 1500 insns"},
		{[]string{"../../testdata/elf/alu.o", "--count", "1"}, compileRe, "", "inputs: alu.o"},
		{[]string{"--run", "--gen", "empty", "--count", "1000"}, runRe, "1000", "r0 = 0x1"},
		{[]string{"--run", "--interp", "--gen", "memsum", "--count", "2"}, runRe, "2", "input: gen:memsum"},
		{[]string{"--run", "--gen", "memsum", "--count", "2"}, runRe, "2", "(jit)"},
		{[]string{"--run", "--interp", "/work/shared/conformance/add.data", "--count", "10"}, runRe, "10", "r0 = 0x3"},
	} {
		r := bpfc(t, nil, append([]string{"bench"}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("bench %v: exit %d: %s", tc.args, r.code, r.stderr)
		}
		m := tc.re.FindStringSubmatch(lastLine(r.stdout))
		if m == nil {
			t.Fatalf("bench %v: last line %q", tc.args, lastLine(r.stdout))
		}
		if tc.insns != "" && m[1] != tc.insns {
			t.Errorf("bench %v: %s, want %s", tc.args, m[1], tc.insns)
		}
		if !strings.Contains(r.stdout, tc.more) {
			t.Errorf("bench %v: output lacks %q:\n%s", tc.args, tc.more, r.stdout)
		}
		if tc.re == runRe && strings.Contains(tc.args[2], "memsum") && m[2] != "32772" {
			t.Errorf("bench %v: %s insns/run, want 32772", tc.args, m[2])
		}
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "needs an INPUT or --gen"},
		{[]string{"--gen", "nope"}, "unknown shape"},
		{[]string{"--gen", "straight:0"}, "size must be"},
		{[]string{"--gen", "loop", "--interp"}, "--interp needs --run"},
		{[]string{"--gen", "loop", "--count", "-1"}, "must not be negative"},
		{[]string{"--run", "--gen", "loop", "--gen", "calls"}, "one input"},
	} {
		r := bpfc(t, nil, append([]string{"bench"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestCompileParallel: several inputs are compiled on all cores; the output
// is the one-after-the-other output (what --log-level debug, which keeps
// the per-pass logs in order, produces), and the error is the first input's
// in order.
func TestCompileParallel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var files []string
	for k := 0; k < 6; k++ {
		files = append(files, writeFile(t, dir, fmt.Sprintf("p%d.bin", k), ir.Encode(gen.Straight(200+50*k))))
	}
	files = append(files, elfDir+"/alu.o")
	for _, format := range []string{"asm", "hex"} {
		par := bpfc(t, nil, append([]string{"compile", "--format", format}, files...)...)
		seq := bpfc(t, nil, append([]string{"compile", "--log-level", "debug", "--format", format}, files...)...)
		if par.code != 0 || seq.code != 0 {
			t.Fatalf("%s: exit %d / %d: %s %s", format, par.code, seq.code, par.stderr, seq.stderr)
		}
		if par.stdout != seq.stdout || len(par.stdout) < 1000 {
			t.Fatalf("%s: parallel output (%d bytes) differs from sequential (%d bytes)", format, len(par.stdout), len(seq.stdout))
		}
	}
	// Both decode but fail in the passes (bpf_loop is out of scope).
	loop := ir.Instruction{Op: ir.OpCall, Imm: 181}
	bad1 := writeFile(t, dir, "bad1.bin", raw(mov0, loop, exit))
	bad2 := writeFile(t, dir, "bad2.bin", raw(mov0, mov0, loop, exit))
	for i := 0; i < 3; i++ {
		r := bpfc(t, nil, "compile", files[0], bad1, files[1], bad2, files[2])
		if r.code != 1 || !strings.Contains(r.stderr, "bad1.bin: ") || !strings.Contains(r.stderr, "instruction 1") || strings.Contains(r.stderr, "bad2.bin") {
			t.Fatalf("exit %d, stderr %q: want the error of bad1.bin", r.code, r.stderr)
		}
	}
}
