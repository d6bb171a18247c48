package compiler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/internal/fuzzgen"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
)

// FuzzCompileBytes drives the whole compile — detection, loading (raw bytes
// or an ELF object), the pass pipeline and the backend — with arbitrary
// bytes, twice (the results must be identical). The first byte selects the mode (bit 0: the input is an xlated dump
// with the kernel-internal forms; bit 1: the context is plain memory, as for
// syscall programs and the conformance suite). Any input either gives an error or code
// for which checkImage holds; a panic is a finding.
func FuzzCompileBytes(f *testing.F) {
	for seed := uint64(0); seed < 8; seed++ {
		f.Add(append([]byte{2}, ir.Encode(fuzzgen.FromSeed(seed, fuzzgen.Options{Items: 12}))...))
	}
	f.Add(append([]byte{0}, seven...))
	objs, _ := filepath.Glob(filepath.Join(elfDir, "*.o"))
	for _, o := range objs {
		if b, err := os.ReadFile(o); err == nil && len(b) <= 16<<10 {
			f.Add(append([]byte{0}, b...))
		}
	}
	f.Add(append([]byte{1}, ir.Encode(arenaXlated())...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		mode, data := b[0], b[1:]
		ins, err := LoadBytes("fuzz.bin", data, LoadOptions{FromXlated: mode&1 == 1})
		if err != nil {
			return
		}
		for _, in := range ins {
			o := Options{FromXlated: mode&1 == 1, FakeMapAddrs: true}
			if mode&3 == 2 {
				o.Pipeline = passes.Default(passes.Options{CtxIsMemory: true})
			}
			res, err := Compile(in, o)
			if err != nil {
				continue
			}
			if err := checkImage(res.Image, res.Target); err != nil {
				t.Fatalf("%s: %v", in.Name, err)
			}
			// Compiling is deterministic (and does not modify the input).
			again, err := Compile(in, o)
			if err != nil {
				t.Fatalf("%s: second compile: %v", in.Name, err)
			}
			if !bytes.Equal(again.Image.Code(), res.Image.Code()) {
				t.Fatalf("%s: two compiles of the same input differ", in.Name)
			}
		}
	})
}

// arenaXlated is a post-verifier arena program: PROBE_MEM32 load and store
// (exception-table entries), a PROBE_MEM load and an arena atomic.
func arenaXlated() *ir.Program {
	p := ir.NewProgram("arena", []ir.Instruction{
		{Op: uint8(ir.ClassALU) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R1, Src: ir.R1},
		{Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeMem32), Dst: ir.R0, Src: ir.R1},
		{Op: uint8(ir.ClassSTX) | uint8(ir.SizeW) | uint8(ir.ModeProbeMem32), Dst: ir.R1, Src: ir.R0, Off: 8},
		{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeAtomic), Dst: ir.R1, Src: ir.R0, Off: 16, Imm: ir.AtomicAdd | ir.AtomicFetch},
		{Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeMem), Dst: ir.R2, Src: ir.R0, Off: 4},
		{Op: ir.OpExit},
	})
	p.UsesArena = true
	return p
}

// checkImage verifies compiled code structurally: every function decodes
// with x86asm from start to end; every relative jump lands on an
// instruction start of its own function (or is the target's return or
// retpoline thunk); every call that lands in a
// function of the image lands on an instruction start; every Addrs entry
// is an instruction boundary; every exception-table entry covers an
// instruction start whose instruction has a memory operand (it can fault)
// and whose length is the entry's.
func checkImage(im *amd64.Image, tg amd64.Target) error {
	type fn struct {
		starts map[uint64]int // exec address -> length
		lo, hi uint64
	}
	fns := make([]fn, len(im.Funcs))
	insts := make([][]x86asm.Inst, len(im.Funcs))
	pcs := make([][]uint64, len(im.Funcs))
	for k := range im.Funcs {
		f := &im.Funcs[k]
		fns[k] = fn{starts: map[uint64]int{}, lo: f.ExecAddr, hi: f.ExecAddr + uint64(len(f.Code))}
		for off := 0; off < len(f.Code); {
			in, err := x86asm.Decode(f.Code[off:], 64)
			if err != nil {
				return fmt.Errorf("function %d: byte %d does not decode: %v (% x)", k, off, err, f.Code[off:min(off+16, len(f.Code))])
			}
			pc := f.ExecAddr + uint64(off)
			fns[k].starts[pc] = in.Len
			insts[k] = append(insts[k], in)
			pcs[k] = append(pcs[k], pc)
			off += in.Len
		}
		for i, a := range f.Addrs {
			if int(a) < len(f.Code) {
				if _, ok := fns[k].starts[f.ExecAddr+uint64(a)]; !ok {
					return fmt.Errorf("function %d: addrs[%d] = %d is not an instruction boundary", k, i, a)
				}
			}
		}
	}
	for k := range im.Funcs {
		for j, in := range insts[k] {
			rel, ok := in.Args[0].(x86asm.Rel)
			if !ok {
				continue
			}
			pc := pcs[k][j]
			target := pc + uint64(in.Len) + uint64(int64(rel))
			if in.Op == x86asm.CALL {
				for m := range fns {
					if target >= fns[m].lo && target < fns[m].hi {
						if _, ok := fns[m].starts[target]; !ok {
							return fmt.Errorf("function %d: call at +%#x lands inside an instruction of function %d (+%#x)", k, pc-fns[k].lo, m, target-fns[m].lo)
						}
					}
				}
				continue
			}
			if (target == tg.ReturnThunk || target == tg.IndirectThunkRCX) && target != 0 && in.Op == x86asm.JMP {
				continue // ret / jmp rcx through the retbleed and retpoline thunks
			}
			if target < fns[k].lo || target >= fns[k].hi {
				return fmt.Errorf("function %d: %v at +%#x jumps out of its function (to %#x)", k, in.Op, pc-fns[k].lo, target)
			}
			if _, ok := fns[k].starts[target]; !ok {
				return fmt.Errorf("function %d: %v at +%#x lands inside an instruction (+%#x)", k, in.Op, pc-fns[k].lo, target-fns[k].lo)
			}
		}
		f := &im.Funcs[k]
		tab := f.Table()
		if tab == nil {
			continue
		}
		if !tab.Sorted() {
			return fmt.Errorf("function %d: exception table not sorted", k)
		}
		for e := range tab.Entries {
			at := tab.InsnAddr(e)
			n, ok := fns[k].starts[at]
			if !ok {
				return fmt.Errorf("function %d: extable entry %d points at %#x, not an instruction start", k, e, at)
			}
			if n != tab.Entries[e].InsnLen() {
				return fmt.Errorf("function %d: extable entry %d: length %d, instruction is %d bytes", k, e, tab.Entries[e].InsnLen(), n)
			}
			idx := int(at - fns[k].lo)
			in, _ := x86asm.Decode(f.Code[idx:], 64)
			if !hasMem(in) {
				return fmt.Errorf("function %d: extable entry %d covers %q, which has no memory operand", k, e, x86asm.IntelSyntax(in, 0, nil))
			}
		}
	}
	return nil
}

func hasMem(in x86asm.Inst) bool {
	for _, a := range in.Args {
		if _, ok := a.(x86asm.Mem); ok {
			return true
		}
	}
	return false
}

// TestCheckImageCatches: the structural check rejects a jump into the middle
// of an instruction, a jump out of the function and an extable entry on an
// instruction without a memory operand.
func TestCheckImageCatches(t *testing.T) {
	base := uint64(0x1000)
	mk := func(code []byte, ents ...extable.Entry) *amd64.Image {
		return &amd64.Image{Funcs: []amd64.Func{{Code: code, ExecAddr: base, Extable: ents}}}
	}
	// mov eax, 1 (b8 01 00 00 00); jmp rel8; ret
	good := []byte{0xb8, 1, 0, 0, 0, 0xeb, 0x00, 0xc3}
	if err := checkImage(mk(good), amd64.Target{}); err != nil {
		t.Fatalf("good code rejected: %v", err)
	}
	tests := map[string]*amd64.Image{
		"into an instruction": mk([]byte{0xb8, 1, 0, 0, 0, 0xeb, 0xfa, 0xc3}),
		"out of the function": mk([]byte{0xb8, 1, 0, 0, 0, 0xeb, 0x40, 0xc3}),
		// Extable at roundup(8,4) = 8 from the code; entry -> offset 0 (mov eax, 1).
		"extable without memory": mk(good, extable.NewEntry(-8, 5, extable.DontClear, false, 0, 0)),
	}
	for name, im := range tests {
		if err := checkImage(im, amd64.Target{}); err == nil {
			t.Errorf("%s: not caught", name)
		}
	}
	// And an entry on a real load is accepted: mov rax, [rdi] (48 8b 07); ret.
	load := mk([]byte{0x48, 0x8b, 0x07, 0xc3}, extable.NewEntry(-4, 3, extable.DontClear, false, 0, 0))
	if err := checkImage(load, amd64.Target{}); err != nil {
		t.Errorf("load with extable entry: %v", err)
	}
}

// TestCompileCorpusChecks runs checkImage over the generated programs and
// the xlated arena program (the fuzz seeds), so the property holds in the
// normal test run too.
func TestCompileCorpusChecks(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	check := func(name string, data []byte, xlated bool) {
		ins, err := LoadBytes(name+".bin", data, LoadOptions{FromXlated: xlated})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := Options{FromXlated: xlated}
		if !xlated {
			o.Pipeline = passes.Default(passes.Options{CtxIsMemory: true})
		}
		res, err := Compile(ins[0], o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := checkImage(res.Image, res.Target); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for seed := uint64(0); seed < uint64(n); seed++ {
		check(fmt.Sprintf("seed%d", seed), ir.Encode(fuzzgen.FromSeed(seed, fuzzgen.Options{})), false)
	}
	check("arena", ir.Encode(arenaXlated()), true)
}
