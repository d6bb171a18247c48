package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

func hexOf(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(strconv.FormatUint(uint64(c)|0x100, 16)[1:])
	}
	return sb.String()
}

// TestSuite runs every conformance file through the plugin binary, in
// both modes, as the suite's runner would.
func TestSuite(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	if len(files) == 0 {
		t.Skip("no conformance files")
	}
	sort.Strings(files)
	bin := filepath.Join(t.TempDir(), "plugin")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	modes := []string{"--jit", "--interp"}
	if testing.Short() {
		modes = modes[:1]
	}
	for _, mode := range modes {
		pass := 0
		for _, path := range files {
			src, _ := os.ReadFile(path)
			f, err := asm.Parse(src)
			if errors.Is(err, asm.ErrUnknownSection) || (err == nil && f.Program == nil) {
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			cmd := exec.Command(bin, hexOf(f.Mem), mode)
			cmd.Stdin = strings.NewReader(hexOf(ir.Encode(f.Program)))
			out, err := cmd.Output()
			got := strings.TrimSpace(string(out))
			if err != nil {
				t.Errorf("%s %s: %v: %s", mode, filepath.Base(path), err, got)
				continue
			}
			v, perr := strconv.ParseUint(got, 16, 64)
			if perr != nil || (f.HasResult && v != f.Result) {
				t.Errorf("%s %s: printed %q, want %x", mode, filepath.Base(path), got, f.Result)
				continue
			}
			pass++
		}
		t.Logf("plugin %s: %d/%d conformance files passed", mode, pass, len(files))
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{nil, "zz", "program:"},
		{[]string{"0g"}, "", "memory:"},
		{[]string{"--bogus"}, "", "unknown option"},
		{nil, "95 00 00 00 00 00 00", "instruction"},                         // truncated slot
		{nil, "07 0b 00 00 01 00 00 00 95 00 00 00 00 00 00 00", "register"}, // r11
		{nil, "", "empty"},
	} {
		_, err := run(tc.args, strings.NewReader(tc.stdin))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%v, %q) = %v, want an error containing %q", tc.args, tc.stdin, err, tc.want)
		}
	}
	r0, err := run([]string{"01 02"}, strings.NewReader("b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"))
	if err != nil || r0 != 42 {
		t.Errorf("mov r0, 42: %d, %v", r0, err)
	}
}
