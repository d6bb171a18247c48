package compiler

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/ir"
)

// reportFor compiles arena_globals.o (arena rewrites, extable entries,
// line info) with snapshots after every pass and returns its HTML report.
func reportFor(t *testing.T) (*Result, string) {
	t.Helper()
	ins, err := Load(filepath.Join(elfDir, "arena_globals.o"), LoadOptions{})
	require.NoError(t, err)
	tgt := amd64.Linux618()
	tgt.UserVMStart = 0x100000000
	tgt.KernVMStart = 0xffffc90000000000
	r, err := Compile(ins[0], Options{Target: tgt, DumpAfter: []string{"all"}})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, HTMLReport(&b, r))
	return r, b.String()
}

var (
	colRe  = regexp.MustCompile(`<section class="col" data-pass="([^"]+)">`)
	origRe = regexp.MustCompile(`<div class="([^"]*)" data-o="(\d+)"[^>]*>`)
)

// columnsOf splits a page (or a DOM dump) into its columns' HTML by pass.
func columnsOf(page string) (names []string, body map[string]string) {
	body = map[string]string{}
	locs := colRe.FindAllStringSubmatchIndex(page, -1)
	for k, l := range locs {
		end := len(page)
		if k+1 < len(locs) {
			end = locs[k+1][0]
		}
		name := page[l[2]:l[3]]
		names = append(names, name)
		body[name] = page[l[1]:end]
	}
	return names, body
}

// TestHTMLReportStructure checks the page without a browser: one column
// for the loaded program, one per pass, one for x86; changed and inserted
// instructions marked; every instruction linked by its original index; no
// external resources.
func TestHTMLReportStructure(t *testing.T) {
	r, page := reportFor(t)
	names, cols := columnsOf(page)
	want := []string{"input"}
	for _, st := range r.Passes.Stats {
		want = append(want, st.Pass)
	}
	want = append(want, "x86")
	require.Equal(t, want, names)
	for _, st := range r.Passes.Stats {
		require.Contains(t, page, `<tr data-pass="`+st.Pass+`"><td>`+st.Pass+`</td>`)
	}
	require.Contains(t, page, `<span class="layout-passes">3</span> layout passes`)
	// The arena pass turns the loads into PROBE_MEM32 ones: marked changed.
	require.Contains(t, cols["arena"], `<div class="i ch" data-o="3" data-l="0">    3: (a1) r0 = *(u32 *)(r1 +0) probe_mem32<span class="aux">  ; ptr=arena</span></div>`)
	require.Contains(t, cols["input"], `<div class="i" data-o="3" data-l="0">    3: (61) r0 = *(u32 *)(r1 +0)</div>`)
	require.NotContains(t, cols["input"], ` ch"`)
	// C lines in the program and x86 columns.
	require.Contains(t, cols["input"], `<div class="src" data-l="0">; arena_globals.c:21: counter++;</div>`)
	require.Contains(t, cols["x86"], `<div class="src" data-l="0">; arena_globals.c:21: counter++;</div>`)
	require.Contains(t, cols["input"], `<div class="src" data-l="1">; arena_globals.c:22: slots[counter &amp; 15] += 5;</div>`)
	require.Contains(t, cols["x86"], `<div class="i" data-o="16" data-l="2">   16: (95) exit</div>`)
	// Extable-covered x86 instructions.
	require.Equal(t, len(r.Image.Funcs[0].Extable), strings.Count(cols["x86"], `class="x ex"`))
	// Every program column has every original instruction once (no
	// instruction is inserted or removed in this program).
	for _, n := range names[:len(names)-1] {
		require.Equal(t, 15, len(origRe.FindAllString(cols[n], -1)), n) // 17 slots, 2 ld_imm64
	}
	require.NotRegexp(t, `(?i)(src|href)="(https?:)?//`, page)
}

// TestHTMLReportChromium opens the report in headless Chromium with
// "#sel=3" (the page clicks the first instruction with original index 3)
// and checks, in the DOM Chromium dumps after the scripts ran, that the
// instruction is selected in every column, the x86 column included, and
// nothing else is.
func TestHTMLReportChromium(t *testing.T) {
	chrome := chromium()
	if chrome == "" {
		t.Skip("no chromium in PATH (apt-get install -y chromium)")
	}
	_, page := reportFor(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(file, []byte(page), 0o644))
	dom := chromiumDOM(t, chrome, dir, file, "#sel=3")
	require.Contains(t, dom, `data-selected="3"`)
	names, cols := columnsOf(dom)
	require.Greater(t, len(names), 3)
	require.Equal(t, "x86", names[len(names)-1])
	for _, n := range names {
		sel, other := 0, 0
		for _, m := range origRe.FindAllStringSubmatch(cols[n], -1) {
			selected := strings.Contains(" "+m[1]+" ", " sel ")
			if m[2] == "3" {
				require.True(t, selected, "column %s: instruction 3 not selected: %s", n, m[0])
				sel++
			} else {
				require.False(t, selected, "column %s: %s selected", n, m[0])
				other++
			}
		}
		require.Greater(t, sel, 0, "column %s has no selected instruction", n)
		if n == "x86" {
			require.Greater(t, sel, 1, "x86 column: the BPF line and its x86 code")
		}
		require.Greater(t, other, 0, n)
	}
	require.Regexp(t, `instruction 3: \d+ lines in `+strconv.Itoa(len(names))+` columns`, dom)

	// A click on C line #1 (arena_globals.c:22, instructions 6 to 15)
	// selects that line and its instructions in every column.
	dom = chromiumDOM(t, chrome, dir, file, "#line=1")
	require.Contains(t, dom, `data-selected="line:1"`)
	_, cols = columnsOf(dom)
	for _, n := range names {
		srcSel := regexp.MustCompile(`<div class="src sel" data-l="1">`).FindAllString(cols[n], -1)
		require.Len(t, srcSel, 1, n)
		for _, m := range origRe.FindAllStringSubmatch(cols[n], -1) {
			o, _ := strconv.Atoi(m[2])
			require.Equal(t, o >= 6 && o <= 15, strings.Contains(" "+m[1]+" ", " sel "), "column %s: %s", n, m[0])
		}
	}
}

// chromiumDOM loads file with a URL fragment in headless Chromium and
// returns the DOM after the page's scripts ran.
func chromiumDOM(t *testing.T, chrome, dir, file, fragment string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chrome, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--dump-dom", "file://"+file+fragment)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("chromium did not run (%v): %s", err, stderr.String())
	}
	return string(out)
}

// TestHTMLReportInserted: instructions a pass inserts (the division
// guards of fixups) are in italics and linked to nothing; without machine
// code there is no x86 column.
func TestHTMLReportInserted(t *testing.T) {
	raw := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 10},
		{Op: 0x3f, Dst: ir.R0, Src: ir.R1}, // r0 /= r1: guarded against r1 == 0
		{Op: ir.OpExit},
	}})
	ins, err := LoadBytes("div.bin", raw, LoadOptions{})
	require.NoError(t, err)
	r, err := Compile(ins[0], Options{DumpAfter: []string{"all"}, NoBackend: true})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, HTMLReport(&b, r))
	names, cols := columnsOf(b.String())
	require.NotContains(t, names, "x86")
	require.Greater(t, r.Prog.Len(), 3, "fixups inserted no guard")
	inserted := regexp.MustCompile(`<div class="i ch ins">`).FindAllString(cols["fixups"], -1)
	require.Len(t, inserted, r.Prog.Len()-3)
	require.Contains(t, cols["fixups"], `data-o="1"`)
	require.Contains(t, cols["input"], `<div class="i" data-o="1">    1: (3f) r0 /= r1</div>`)
}

// TestHTMLReports: several programs in one page, each with its columns;
// a selection stays within its program (checked in Chromium when
// present).
func TestHTMLReports(t *testing.T) {
	ins, err := Load(filepath.Join(elfDir, "alu.o"), LoadOptions{})
	require.NoError(t, err)
	require.Len(t, ins, 2)
	var results []*Result
	for _, in := range ins {
		r, err := Compile(in, Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}, DumpAfter: []string{"all"}})
		require.NoError(t, err)
		results = append(results, r)
	}
	var b strings.Builder
	require.NoError(t, HTMLReports(&b, results))
	page := b.String()
	progs := strings.Split(page, `<div class="prog" id="prog-`)[1:]
	require.Len(t, progs, 2)
	for k, r := range results {
		require.Contains(t, progs[k], "<h1>bpfc: alu.o: "+r.Input.Name+"</h1>")
		names, _ := columnsOf(progs[k])
		require.Len(t, names, len(r.Passes.Stats)+2)
	}
	require.Contains(t, page, `<nav>programs: <a href="#prog-0">alu.o: alu_loop</a> <a href="#prog-1">alu.o: xdp_bits</a></nav>`)

	chrome := chromium()
	if chrome == "" {
		t.Skip("no chromium in PATH (apt-get install -y chromium)")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(file, []byte(page), 0o644))
	dom := chromiumDOM(t, chrome, dir, file, "#1:sel=3")
	progs = strings.Split(dom, `<div class="prog" id="prog-`)[1:]
	require.Len(t, progs, 2)
	require.NotContains(t, progs[0], " sel")
	require.NotContains(t, progs[0], "data-selected")
	require.Contains(t, progs[1], `data-selected="3"`)
	_, cols := columnsOf(progs[1])
	for n, c := range cols {
		require.Regexp(t, `<div class="[^"]*\bsel\b[^"]*" data-o="3"`, c, n)
	}
}

// chromium returns the path of a Chromium binary, or "".
func chromium() string {
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// TestHTMLReportCorpus writes the report of every program of the test
// objects (testdata/elf, testdata/arena): no error, a column per pass, and
// in the x86 column every original instruction that survived the passes.
func TestHTMLReportCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(elfDir, "*.o"))
	more, _ := filepath.Glob("../testdata/arena/*.o")
	files = append(files, more...)
	require.NotEmpty(t, files)
	tgt := amd64.Linux618() // calls reach the kernel's helpers from the module area
	tgt.UserVMStart = 0x100000000
	tgt.KernVMStart = 0xffffc90000000000
	n := 0
	for _, f := range files {
		ins, err := Load(f, LoadOptions{})
		if err != nil {
			t.Logf("%s: %v", f, err) // e.g. kfuncs this kernel lacks
			continue
		}
		var results []*Result
		for _, in := range ins {
			r, err := Compile(in, Options{Target: tgt, FakeMapAddrs: true, DumpAfter: []string{"all"}})
			if err != nil {
				t.Logf("%v", err) // out of scope (bpf_loop...), not the report's business
				continue
			}
			results = append(results, r)
		}
		if len(results) == 0 {
			continue
		}
		var b strings.Builder
		require.NoError(t, HTMLReports(&b, results), f)
		progs := strings.Split(b.String(), `<div class="prog" id="prog-`)[1:]
		require.Len(t, progs, len(results))
		for k, r := range results {
			names, cols := columnsOf(progs[k])
			require.Len(t, names, len(r.Passes.Stats)+2, "%s: %s", f, r.Input.Name)
			for i, a := range r.Prog.Aux {
				if a.OrigIndex >= 0 && !(i > 0 && r.Prog.Insns[i-1].IsLdImm64()) {
					require.Contains(t, cols["x86"], `data-o="`+strconv.Itoa(int(a.OrigIndex))+`"`, "%s: %s: instruction %d", f, r.Input.Name, i)
				}
			}
			n++
		}
	}
	t.Logf("%d programs", n)
	require.Greater(t, n, 30)
}
