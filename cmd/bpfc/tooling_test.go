package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
)

// TestJSONDumpFields checks the documented fields of the JSON per-pass
// dumps (README, "Per-pass dumps"): one object per pass, in pipeline
// order, with msg "dump", file, prog, pass, duration (seconds), insns,
// changed, program (one string per slot, "*" on changed ones) and orig
// (original index per slot), and changed equal to the number of marked
// lines.
func TestJSONDumpFields(t *testing.T) {
	t.Parallel()
	file := filepath.Join(elfDir, "arena_globals.o")
	names := compiler.DefaultPipeline(false).Names()
	r := bpfc(t, nil, "compile", "--dump-after", "all", "--log-format", "json", "--user-vm-start", "0x100000000",
		"--kern-vm-start", "0xffffc90000000000", "--format", "hex", file)
	require.Equal(t, 0, r.code, r.stderr)
	var passes []string
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] != "dump" {
			continue
		}
		require.Equal(t, "info", m["level"])
		require.Equal(t, file, m["file"])
		require.Equal(t, "arena_bump", m["prog"])
		pass, ok := m["pass"].(string)
		require.True(t, ok, line)
		passes = append(passes, pass)
		_, ok = m["duration"].(float64)
		require.True(t, ok, "%s: duration", pass)
		prog, ok := m["program"].([]any)
		require.True(t, ok, "%s: program", pass)
		require.Equal(t, float64(len(prog)), m["insns"], pass)
		marked := 0
		for k, l := range prog {
			s := l.(string)
			require.Regexp(t, `^[ *] +\d+: `, s, pass)
			require.Contains(t, s, " "+strconv.Itoa(k)+": ", pass)
			if s[0] == '*' {
				marked++
			}
		}
		require.Equal(t, float64(marked), m["changed"], pass)
		orig, ok := m["orig"].([]any)
		require.True(t, ok, "%s: orig", pass)
		require.Len(t, orig, len(prog), pass)
		for k, o := range orig {
			require.Equal(t, float64(k), o, "%s: no pass inserts or removes instructions in this program", pass)
		}
		if pass == "arena" {
			require.Equal(t, "*    3: r0 = *(u32 *)(r1 +0) probe_mem32", prog[3], "arena rewrites the load")
		}
	}
	require.Equal(t, names, passes)
}

// TestHTMLFlag: --html writes the report of the programs and leaves the
// other output as it was.
func TestHTMLFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.html")
	file := filepath.Join(elfDir, "alu.o")
	plain := bpfc(t, nil, "compile", "--prog", "alu_loop", "--format", "hex", file)
	require.Equal(t, 0, plain.code, plain.stderr)
	r := bpfc(t, nil, "compile", "--prog", "alu_loop", "--format", "hex", "--html", out, file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, plain.stdout, r.stdout)
	require.Empty(t, r.stderr, "no dumps on stderr without --dump-after")
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	for _, n := range append([]string{"input"}, append(compiler.DefaultPipeline(false).Names(), "x86")...) {
		require.Contains(t, string(page), `<section class="col" data-pass="`+n+`">`)
	}
	// With --dump-after, only the named pass is dumped on stderr.
	r = bpfc(t, nil, "compile", "--prog", "alu_loop", "--format", "hex", "--html", out, "--dump-after", "zext", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 1, strings.Count(r.stderr, "--- after pass "), r.stderr)
	// Unknown pass names are refused as without --html.
	r = bpfc(t, nil, "compile", "--prog", "alu_loop", "--html", out, "--dump-after", "nosuch", file)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `bpfc: `+file+`: alu_loop: --dump-after: no pass "nosuch" in the pipeline`)
	// Every program of the object, one section each.
	r = bpfc(t, nil, "compile", "--format", "hex", "--html", out, file)
	require.Equal(t, 0, r.code, r.stderr)
	page, err = os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(page), `<div class="prog" id="prog-`))
}

// TestContextFlag: --context N adds the program around the failing
// instruction after the usual one-line error.
func TestContextFlag(t *testing.T) {
	t.Parallel()
	raw := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 1},
		{Op: 0x7b, Dst: ir.R10, Src: ir.R0, Off: -520},
		{Op: ir.OpExit},
	}})
	file := filepath.Join(t.TempDir(), "big.bin")
	require.NoError(t, os.WriteFile(file, raw, 0o644))
	plain := bpfc(t, nil, "compile", file)
	require.Equal(t, 1, plain.code)
	require.Equal(t, 1, strings.Count(plain.stderr, "\n"), plain.stderr)
	r := bpfc(t, nil, "compile", "--context", "3", file)
	require.Equal(t, 1, r.code)
	require.True(t, strings.HasPrefix(r.stderr, plain.stderr), r.stderr)
	require.Equal(t, ""+
		"        0: (b7) r0 = 1\n"+
		"  >     1: (7b) *(u64 *)(r10 -520) = r0\n"+
		"          ^ instruction 1: function big uses 520 bytes of stack, more than the kernel's limit of 512 (MAX_BPF_STACK)\n"+
		"        2: (95) exit\n", r.stderr[len(plain.stderr):])
}
