package asm

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// lossy reports slots whose kernel text does not determine them (see
// ParseKernel).
func lossy(p *ir.Program, i int) bool {
	ins := p.Insns[i]
	switch {
	case ins.IsCallX(), ins.IsZextReg():
		return true
	case ins.IsPseudoCall() && ins.Off != 0: // xlated: callee index in imm
		return true
	case ins.IsLdImm64() && (ins.Src == ir.PseudoMapIdx || ins.Src == ir.PseudoBTFID):
		return true
	case ins.IsLdImm64() && (ins.Src == ir.PseudoMapFD || ins.Src == ir.PseudoFunc) && i+1 < p.Len() && p.Insns[i+1].Imm != 0:
		return true
	}
	return false
}

// TestParseKernelRoundTrip prints every conformance program and every
// captured kernel program (source and xlated) with String and reads the
// text back.
func TestParseKernelRoundTrip(t *testing.T) {
	var progs []*ir.Program
	var names []string
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "*.data"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		progs, names = append(progs, cf.Program), append(names, filepath.Base(f))
	}
	goldens, _ := filepath.Glob("../testdata/xlated/*.json")
	for _, f := range goldens {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Source, Xlated string }
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{g.Source, g.Xlated} {
			raw, _ := hex.DecodeString(h)
			var insns []ir.Instruction
			for k := 0; k+8 <= len(raw); k += 8 {
				var v uint64
				for j := 7; j >= 0; j-- {
					v = v<<8 | uint64(raw[k+j])
				}
				insns = append(insns, slotFromU64(v))
			}
			progs, names = append(progs, ir.NewProgram("", insns)), append(names, filepath.Base(f))
		}
	}
	slots := 0
	for k, p := range progs {
		text := p.String()
		q, err := ParseKernel(text)
		if err != nil {
			t.Errorf("%s: %v", names[k], err)
			continue
		}
		if q.Len() != p.Len() {
			t.Errorf("%s: %d slots back, want %d", names[k], q.Len(), p.Len())
			continue
		}
		for i := 0; i < p.Len(); i++ {
			if lossy(p, i) {
				i += p.SlotLen(i) - 1
				continue
			}
			n := p.SlotLen(i)
			for j := i; j < i+n; j++ {
				if q.Insns[j] != p.Insns[j] {
					t.Errorf("%s: slot %d: %q reads back as %+v, want %+v", names[k], j, p.Format(i), q.Insns[j], p.Insns[j])
				}
			}
			slots += n
			i += n - 1
		}
	}
	t.Logf("%d programs, %d slots read back exactly", len(progs), slots)
}

func TestParseKernelForms(t *testing.T) {
	// Every form of the printer's table, read back.
	text := `int f0(void * ctx):
   0: (bf) r1 = addr_space_cast(r2, 1, 0)
   1: (bf) r0 = &(void __percpu *)(r0)
   2: (39) r0 = *(u64 *)(r1 +8) probe_mem
   3: (51) r0 = *(s8 *)(r1 +8) probe_memsx
   4: (c1) r0 = *(s32 *)(r1 +8) probe_mem32sx
   5: (ba) *(u64 *)(r1 +4) = 7 probe_mem32
   6: (fb) r2 = atomic64_fetch_add((u64 *)(r1 +0), r2) probe_atomic
   7: (e3) lock *(u32 *)(r1 +0) += r2 probe_atomic
   8: (c2) nospec
   9: (f5) tail_call
  10: (0d) gotox r3
  11: (e5) may_goto pc+2
  12: (85) call kernel-function#1234
  13: (18) r1 = map[idx:2]+8
  15: (18) r1 = subprog[-4]
  17: (48) r0 = *(u16 *)skb[r7 + 3]     ; a comment
  18: (95) exit
`
	p, err := ParseKernel(text)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 19 {
		t.Fatalf("%d slots, want 19", p.Len())
	}
	for _, c := range []struct {
		i    int
		want ir.Instruction
	}{
		{0, ins(0xbf, 1, 2, 1, ir.CastToUser)},
		{1, ins(0xbf, 0, 0, -1, 0)},
		{3, ins(0x51, 0, 1, 8, 0)},
		{6, ins(0xfb, 1, 2, 0, 0x01)},
		{12, ins(0x85, 0, 2, 0, 1234)},
		{13, ins(0x18, 1, ir.PseudoMapIdxValue, 0, 2)},
		{14, ins(0, 0, 0, 0, 8)},
		{15, ins(0x18, 1, ir.PseudoFunc, 0, -4)},
		{17, ins(0x48, 0, 7, 0, 3)},
	} {
		if p.Insns[c.i] != c.want {
			t.Errorf("slot %d = %+v, want %+v", c.i, p.Insns[c.i], c.want)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(p.String()), "\n") {
		if !strings.Contains(text, strings.TrimSpace(strings.SplitN(line, ":", 2)[1])) {
			t.Errorf("line %d %q not in the input", i, line)
		}
	}
	errs := []struct{ text, want string }{
		{"", "line 1: no instructions"},
		{"0: (b7) r0 = 0\n1: (0f) r0 += 1\n2: (95) exit", "line 2: text reads as opcode 0x07, the opcode column says 0x0f"},
		{"r0 = frobnicate", "line 1: cannot read \"r0 = frobnicate\""},
		{"r99 = 1", "line 1: bad number \"99\""},
		{"if r1 == w2 goto pc+1", "mixed register widths"},
		{"r1 = *(u64 *)(r2 +99999)", "bad number \"+99999\""},
		{"BUG_ldx_39", "cannot read"},
	}
	for _, tc := range errs {
		_, err := ParseKernel(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func kernelSeeds() []string {
	return []string{
		"   0: (b7) r0 = 0\n   1: (95) exit\n",
		"0: (18) r1 = map[id:5][0]+16\n2: (85) call bpf_map_lookup_elem#1\n3: (15) if r0 == 0x0 goto pc+1\n4: (95) exit",
		"r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)\nstore_release((u8 *)(r1 +2), r2)\nexit",
		"if w1 s< w2 goto pc-2\nw0 = (s16)w1\nr2 = bswap32 r2\nr0 = *(u8 *)skb[12]\ngotol pc+70000",
		"int f0(void * ctx):\n  0: (bf) r1 = addr_space_cast(r2, 0, 1)\n",
	}
}

func TestWriteKernelCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -writecorpus to rewrite testdata/fuzz/FuzzParseKernel")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseKernel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, s := range kernelSeeds() {
		body := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed"+string(rune('0'+k))), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseKernel: ParseKernel never panics, errors are *Error, and what it
// reads prints and reads back to the same slots (the lossy forms aside).
func FuzzParseKernel(f *testing.F) {
	for _, s := range kernelSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParseKernel(text)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		q, err := ParseKernel(p.String())
		if err != nil {
			t.Fatalf("printed text does not read back: %v\n%s", err, p)
		}
		if q.Len() != p.Len() {
			t.Fatalf("%d slots back, want %d\n%s", q.Len(), p.Len(), p)
		}
		for i := 0; i < p.Len(); i += p.SlotLen(i) {
			if lossy(p, i) {
				continue
			}
			for j := i; j < i+p.SlotLen(i); j++ {
				if q.Insns[j] != p.Insns[j] {
					t.Fatalf("slot %d: %+v reads back as %+v\n%s", j, p.Insns[j], q.Insns[j], p)
				}
			}
		}
	})
}
