package kernel

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
)

const goldenDir = "../../testdata/kernel"

var (
	goldenOnce sync.Once
	goldenCaps []*Capture
	goldenErr  error
)

// goldens reads testdata/kernel once; tests copy before changing a capture.
func goldens(t *testing.T) []*Capture {
	t.Helper()
	goldenOnce.Do(func() { goldenCaps, goldenErr = ReadCaptures(goldenDir) })
	cs, err := goldenCaps, goldenErr
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) < 180 {
		t.Fatalf("only %d goldens in %s", len(cs), goldenDir)
	}
	return cs
}

func TestHexAndAddrJSON(t *testing.T) {
	type T struct {
		H Hex
		A Addr
	}
	in := T{H: Hex{0, 1, 0xab, 0xff}, A: 0xffffffffc0001234}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"H":"0001abff","A":"0xffffffffc0001234"}`; string(b) != want {
		t.Errorf("marshal = %s, want %s", b, want)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip = %+v, %v", out, err)
	}
	for _, bad := range []string{`{"H":"0g"}`, `{"H":"abc"}`, `{"H":12}`, `{"A":"0xzz"}`, `{"A":"0x1ffffffffffffffff"}`, `{"A":5}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestReadCaptureRejectsBadFiles(t *testing.T) {
	cs := goldens(t)
	good, err := cs[0].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := map[string]func(c *Capture){
		"lens":    func(c *Capture) { c.FuncLens = append(c.FuncLens, 4) },
		"jited":   func(c *Capture) { c.Jited = c.Jited[:len(c.Jited)-1] },
		"input":   func(c *Capture) { c.JITInput = c.JITInput[:8] },
		"stack":   func(c *Capture) { c.StackDepths = nil },
		"nofuncs": func(c *Capture) { c.FuncLens, c.Ksyms, c.StackDepths = nil, nil, nil },
	}
	for name, mutate := range cases {
		var c Capture
		if err := json.Unmarshal(good, &c); err != nil {
			t.Fatal(err)
		}
		mutate(&c)
		b, _ := c.Marshal()
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, b, 0o644)
		if _, err := ReadCapture(p); err == nil {
			t.Errorf("%s: inconsistent capture accepted", name)
		}
	}
	p := filepath.Join(dir, "unknown.json")
	os.WriteFile(p, bytes.Replace(good, []byte(`"name"`), []byte(`"nmae"`), 1), 0o644)
	if _, err := ReadCapture(p); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
	os.WriteFile(p, good[:len(good)/2], 0o644)
	if _, err := ReadCapture(p); err == nil {
		t.Error("truncated file accepted")
	}
}

// TestGoldensConsistent checks every golden on its own: the machine code
// decodes, line offsets fall on instruction boundaries, the JIT input
// differs from the xlated dump only where documented.
func TestGoldensConsistent(t *testing.T) {
	arena := 0
	for _, c := range goldens(t) {
		p, err := c.Program()
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if _, err := ir.FindFuncs(p); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		starts := make([]map[int]bool, len(c.FuncLens))
		for f := range c.FuncLens {
			d, err := Disassemble(c.FuncCode(f))
			if err != nil {
				t.Errorf("%s: function %d: %v", c.Name, f, err)
				continue
			}
			starts[f] = map[int]bool{}
			for _, x := range d {
				starts[f][x.Off] = true
			}
			if c.StackDepths[f]%8 != 0 {
				t.Errorf("%s: stack depth %d not a multiple of 8", c.Name, c.StackDepths[f])
			}
		}
		for _, l := range c.Lines {
			if l.Func >= len(starts) || starts[l.Func] == nil || !starts[l.Func][l.Off] {
				t.Errorf("%s: line of instruction %d at %d/%#x is not an instruction start", c.Name, l.Insn, l.Func, l.Off)
				break
			}
		}
		xl, _ := rawInsns(c.Xlated)
		probe := map[int]bool{}
		for _, i := range c.ProbeMemInsns {
			probe[i] = true
		}
		for i := 0; i < len(xl); i++ {
			x, j := xl[i], p.Insns[i]
			switch {
			case probe[i]:
				if x.Mode() != ir.ModeMEM || j.Mode() != ir.ModeProbeMem || x.Class() != ir.ClassLDX || x.Op&^0xe0 != j.Op&^0xe0 {
					t.Errorf("%s: instruction %d: PROBE_MEM %+v became %+v", c.Name, i, x, j)
				}
			case x.IsPseudoFunc():
				if j != x || p.Insns[i+1].Imm != 0 {
					t.Errorf("%s: instruction %d: function load %+v became %+v", c.Name, i, x, j)
				}
			case x.IsLdImm64() && j.Src == ir.PseudoMapIdxValue:
				if len(c.FuncLens) < 2 || j.Dst != x.Dst || ir.Imm64(j, p.Insns[i+1]) != ir.Imm64(x, xl[i+1]) && x.Src != ir.PseudoMapValue {
					t.Errorf("%s: instruction %d: %+v became %+v", c.Name, i, x, j)
				}
			case x.IsLdImm64() && (x.Src == ir.PseudoMapFD || x.Src == ir.PseudoMapValue):
				if j.Src != 0 || j.Dst != x.Dst || ir.Imm64(j, p.Insns[i+1]) < 0xffff800000000000 {
					t.Errorf("%s: instruction %d: map/func load became %+v", c.Name, i, j)
				}
			case x.IsPseudoCall():
				if j.Imm != int32(x.Off) || j.Off != 0 {
					t.Errorf("%s: instruction %d: call %+v became %+v", c.Name, i, x, j)
				}
			case x.IsHelperCall() && x.Imm == ir.HelperTailCall:
				if j.Op != ir.OpTailCall {
					t.Errorf("%s: instruction %d: tail call became %+v", c.Name, i, j)
				}
			default:
				if x != j {
					t.Errorf("%s: instruction %d: %+v became %+v", c.Name, i, x, j)
				}
			}
			if x.IsLdImm64() {
				i++
			}
		}
		if len(c.ArenaInsns) > 0 {
			arena++
			if c.KernVMStart == 0 || c.UserVMStart != 0x100000000000 {
				t.Errorf("%s: arena bases %v %v", c.Name, c.KernVMStart, c.UserVMStart)
			}
			if !strings.HasPrefix(strings.TrimLeft(strings.ReplaceAll(c.Pushes[0], "rax", ""), " "), "r12") {
				t.Errorf("%s: arena program pushes %q", c.Name, c.Pushes[0])
			}
		}
		if c.CallBase == 0 || c.Ksyms[0] == 0 {
			t.Errorf("%s: missing addresses", c.Name)
		}
	}
	if arena < 20 {
		t.Errorf("only %d arena goldens", arena)
	}
}

// TestDeriveReproducesGoldens derives everything again from the stored
// xlated dump and machine code.
func TestDeriveReproducesGoldens(t *testing.T) {
	for _, c := range goldens(t) {
		d := *c
		d.JITInput, d.ArenaInsns, d.ProbeMemInsns, d.StackDepths, d.Pushes, d.KernVMStart, d.ReturnThunk = nil, nil, nil, nil, nil, 0, 0
		if err := d.derive(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !bytes.Equal(d.JITInput, c.JITInput) || !reflect.DeepEqual(d.ArenaInsns, c.ArenaInsns) || !reflect.DeepEqual(d.ProbeMemInsns, c.ProbeMemInsns) ||
			!reflect.DeepEqual(d.StackDepths, c.StackDepths) || !reflect.DeepEqual(d.Pushes, c.Pushes) ||
			d.KernVMStart != c.KernVMStart || d.ReturnThunk != c.ReturnThunk {
			t.Errorf("%s: derived facts differ from the golden", c.Name)
		}
	}
}

// TestDeriveWithoutLineInfo: map addresses are found by order when there is
// no line info.
func TestDeriveWithoutLineInfo(t *testing.T) {
	n := 0
	for _, c := range goldens(t) {
		if !bytes.Contains(c.Xlated, []byte{ir.OpLdImm64, 0x10}) && !bytes.Contains(c.Xlated, []byte{ir.OpLdImm64, 0x20}) {
			continue
		}
		d := *c
		d.Lines = nil
		if len(c.ArenaInsns) > 0 {
			continue // arena truth needs the offset map
		}
		if err := d.derive(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !bytes.Equal(d.JITInput, c.JITInput) {
			t.Errorf("%s: JIT input without line info differs", c.Name)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no golden loads a map")
	}
}

func TestEquivalent(t *testing.T) {
	cs := goldens(t)
	for _, c := range cs {
		if err := Equivalent(c, c); err != nil {
			t.Fatalf("%s: not equivalent to itself: %v", c.Name, err)
		}
	}
	var c *Capture
	for _, x := range cs {
		if x.Name == "helper_map_hash" {
			c = x
		}
	}
	if c == nil {
		t.Fatal("helper_map_hash golden missing")
	}
	d, err := Disassemble(c.Jited)
	if err != nil {
		t.Fatal(err)
	}
	// Changing an address inside a movabs or call is fine; anywhere else not.
	var movabs, call, plain int = -1, -1, -1
	for _, x := range d {
		switch {
		case x.Inst.Op == x86asm.MOV && x.Inst.Len == 10 && movabs < 0:
			movabs = x.Off + 6
		case x.Inst.Op == x86asm.CALL && call < 0:
			call = x.Off + 2
		case x.Inst.Op == x86asm.ADD && plain < 0:
			plain = x.Off + x.Inst.Len - 1
		}
	}
	if movabs < 0 || call < 0 || plain < 0 {
		t.Fatalf("test program lacks movabs/call/add: %d %d %d", movabs, call, plain)
	}
	for _, tc := range []struct {
		off int
		ok  bool
	}{{movabs, true}, {call, true}, {plain, false}} {
		e := *c
		e.Jited = append([]byte(nil), c.Jited...)
		e.Jited[tc.off] ^= 1
		if err := Equivalent(c, &e); (err == nil) != tc.ok {
			t.Errorf("byte %#x changed: equivalent = %v, want %v", tc.off, err == nil, tc.ok)
		}
	}
	e := *c
	e.StackDepths = []int{8}
	if Equivalent(c, &e) == nil {
		t.Error("different stack depth is equivalent")
	}
}

func TestReadKallsymsParses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kallsyms")
	os.WriteFile(p, []byte("ffffffff81000000 T _text\nffffffff814dccd0 T __bpf_call_base\n0000000000000000 T __x86_indirect_thunk_rcx\nzz T arch_bpf_timed_may_goto\n"), 0o644)
	if _, err := readKallsyms(p, []string{"__bpf_call_base", "arch_bpf_timed_may_goto"}); err == nil {
		t.Error("bad address accepted")
	}
	m, err := readKallsyms(p, []string{"__bpf_call_base", "__x86_indirect_thunk_rcx"})
	if err != nil || m["__bpf_call_base"] != 0xffffffff814dccd0 || m["__x86_indirect_thunk_rcx"] != 0 {
		t.Errorf("got %v, %v", m, err)
	}
}
