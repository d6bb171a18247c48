package asm

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

const conformanceDir = "/work/shared/conformance"

func conformanceFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*.data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skipf("no conformance files under %s", conformanceDir)
	}
	sort.Strings(files)
	return files
}

// TestConformanceFiles parses all suite files and checks, for each: the
// program validates strictly, Format -> Assemble gives the same slots,
// decode -> encode is byte-exact, and a raw section equals the assembled
// asm.
func TestConformanceFiles(t *testing.T) {
	files := conformanceFiles(t)
	if len(files) != 313 {
		t.Errorf("found %d conformance files, want 313", len(files))
	}
	var withRaw, withMem, slots int
	for _, path := range files {
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.Program == nil || f.Asm == nil {
			t.Errorf("%s: no program", name)
			continue
		}
		if !f.HasResult {
			t.Errorf("%s: no result", name)
		}
		if len(f.Mem) > 0 {
			withMem++
		}
		slots += f.Program.Len()
		if err := ir.Validate(f.Program, ir.DecodeOptions{}); err != nil {
			t.Errorf("%s: validate: %v", name, err)
		}
		if f.Raw != nil {
			withRaw++
			if got := ir.Encode(f.Asm); !bytes.Equal(got, f.Raw) {
				t.Errorf("%s: asm assembles to\n%x\nraw section is\n%x", name, got, f.Raw)
			}
		}
		// Parse -> Format -> Assemble.
		text := Format(f.Program)
		q, err := Assemble(text)
		if err != nil {
			t.Errorf("%s: reassembling formatted text: %v\n%s", name, err, text)
			continue
		}
		if !sameInsns(f.Program.Insns, q.Insns) {
			t.Errorf("%s: Format round trip differs\n%s", name, text)
		}
		// The whole file round-trips through FormatFile.
		g, err := Parse([]byte(FormatFile(f)))
		if err != nil {
			t.Errorf("%s: FormatFile output does not parse: %v", name, err)
		} else if !sameInsns(g.Program.Insns, f.Program.Insns) || !bytes.Equal(g.Mem, f.Mem) || g.Result != f.Result ||
			g.HasResult != f.HasResult || g.Error != f.Error || !bytes.Equal(g.Raw, f.Raw) {
			t.Errorf("%s: FormatFile round trip differs", name)
		}
		// Decode -> encode.
		enc := ir.Encode(f.Program)
		d, err := ir.Decode(enc)
		if err != nil {
			t.Errorf("%s: decode: %v", name, err)
			continue
		}
		if !bytes.Equal(ir.Encode(d), enc) {
			t.Errorf("%s: decode/encode not byte-exact", name)
		}
	}
	if withRaw != 1 {
		t.Errorf("%d files with a raw section, want 1", withRaw)
	}
	t.Logf("%d files, %d slots, %d with mem, %d with raw", len(files), slots, withMem, withRaw)
}

func sameInsns(a, b []ir.Instruction) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
