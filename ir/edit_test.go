package ir_test

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

func mustAsm(t *testing.T, text string) *ir.Program {
	t.Helper()
	p, err := asm.Assemble(text)
	if err != nil {
		t.Fatalf("assemble: %v\n%s", err, text)
	}
	return p
}

func insnsOf(t *testing.T, text string) []ir.Instruction {
	return mustAsm(t, text).Insns
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

func TestPatch(t *testing.T) {
	tests := []struct {
		name  string
		prog  string
		at    int
		repl  string
		want  string
		funcs []ir.Func // expected Funcs after the edit (FindFuncs before)
	}{
		{
			name: "forward jump across the patch grows",
			prog: "jeq %r1, 0, +2\nmov %r0, 1\nmov %r0, 2\nexit",
			at:   1, repl: "mov %r0, 1\nmov %r0, 3\nmov %r0, 4",
			want: "jeq %r1, 0, +4\nmov %r0, 1\nmov %r0, 3\nmov %r0, 4\nmov %r0, 2\nexit",
		},
		{
			name: "backward jump across the patch grows",
			prog: "mov %r0, 0\nadd %r0, 1\njlt %r0, 10, -3\nexit",
			at:   1, repl: "add %r0, 1\nadd %r0, 0",
			want: "mov %r0, 0\nadd %r0, 1\nadd %r0, 0\njlt %r0, 10, -4\nexit",
		},
		{
			name: "jumps to the patched instruction reach the first replacement",
			prog: "ja +0\nmov %r0, 1\njne %r0, 5, -3\nexit",
			at:   1, repl: "mov %r0, 7\nmov %r0, 1",
			want: "ja +0\nmov %r0, 7\nmov %r0, 1\njne %r0, 5, -4\nexit",
		},
		{
			name: "jump inside the patch region untouched, jump after untouched",
			prog: "mov %r0, 1\nmov %r1, 2\nja +0\nexit",
			at:   1, repl: "jeq %r1, 0, +1\nmov %r1, 2",
			want: "mov %r0, 1\njeq %r1, 0, +1\nmov %r1, 2\nja +0\nexit",
		},
		{
			name: "ld_imm64 replaced by one slot shrinks jumps over it",
			prog: "jeq %r1, 0, +3\nlddw %r2, 0x1122334455667788\nmov %r0, 0\nexit\njne %r0, 0, -6\nexit",
			at:   1, repl: "mov %r2, 5",
			want: "jeq %r1, 0, +2\nmov %r2, 5\nmov %r0, 0\nexit\njne %r0, 0, -5\nexit",
		},
		{
			name: "one slot replaced by ld_imm64",
			prog: "ja +1\nmov %r2, 5\nexit",
			at:   1, repl: "lddw %r2, 0x100000000",
			want: "ja +2\nlddw %r2, 0x100000000\nexit",
		},
		{
			name: "jump over a ld_imm64 before the patch",
			prog: "lddw %r1, 1\nja +2\nmov %r0, 0\nmov %r0, 1\nexit",
			at:   4, repl: "mov %r0, 1\nmov %r0, 2",
			want: "lddw %r1, 1\nja +3\nmov %r0, 0\nmov %r0, 1\nmov %r0, 2\nexit",
		},
		{
			name: "bpf-to-bpf call across the patch, functions move",
			prog: "mov %r1, 1\ncall local +2\nexit\nexit\nmov %r0, %r1\nexit",
			at:   0, repl: "mov %r1, 1\nmov %r2, 2\nmov %r3, 3",
			want:  "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\ncall local +2\nexit\nexit\nmov %r0, %r1\nexit",
			funcs: []ir.Func{{Start: 0, End: 6}, {Start: 6, End: 8}},
		},
		{
			name: "backward call from a later function",
			prog: "call local +2\nexit\nexit\nmov %r0, 0\ncall local -5\nexit",
			at:   3, repl: "mov %r0, 0\nmov %r0, 1",
			want:  "call local +2\nexit\nexit\nmov %r0, 0\nmov %r0, 1\ncall local -6\nexit",
			funcs: []ir.Func{{Start: 0, End: 3}, {Start: 3, End: 7}},
		},
		{
			name: "patch at a function start keeps it in that function",
			prog: "call local +1\nexit\nmov %r0, 1\nexit",
			at:   2, repl: "mov %r0, 2\nmov %r0, 1",
			want:  "call local +1\nexit\nmov %r0, 2\nmov %r0, 1\nexit",
			funcs: []ir.Func{{Start: 0, End: 2}, {Start: 2, End: 5}},
		},
		{
			name: "gotol imm adjusted both ways",
			prog: "ja32 +2\nmov %r0, 1\nmov %r0, 2\nexit\nja32 -4",
			at:   1, repl: "mov %r0, 1\nmov %r0, 9\nmov %r0, 8",
			want: "ja32 +4\nmov %r0, 1\nmov %r0, 9\nmov %r0, 8\nmov %r0, 2\nexit\nja32 -6",
		},
		{
			name: "shrinking patch of a jump target",
			prog: "jeq %r1, 0, +3\nmov %r0, 1\nja +2\nmov %r0, 2\nmov %r0, 3\nexit",
			at:   3, repl: "mov %r0, 4",
			want: "jeq %r1, 0, +3\nmov %r0, 1\nja +2\nmov %r0, 4\nmov %r0, 3\nexit",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustAsm(t, tc.prog)
			if tc.funcs != nil {
				f, err := ir.FindFuncs(p)
				if err != nil {
					t.Fatal(err)
				}
				p.Funcs = f
			}
			if err := p.Patch(tc.at, insnsOf(t, tc.repl)); err != nil {
				t.Fatal(err)
			}
			want := insnsOf(t, tc.want)
			if !sameInsns(p.Insns, want) {
				t.Fatalf("got\n%s\nwant\n%s", asm.Format(p), tc.want)
			}
			if len(p.Aux) != len(p.Insns) {
				t.Fatalf("%d aux for %d insns", len(p.Aux), len(p.Insns))
			}
			if tc.funcs != nil {
				for k, f := range tc.funcs {
					if p.Funcs[k].Start != f.Start || p.Funcs[k].End != f.End {
						t.Errorf("func %d = [%d,%d), want [%d,%d)", k, p.Funcs[k].Start, p.Funcs[k].End, f.Start, f.End)
					}
				}
				// The edited program splits the same way.
				got, err := ir.FindFuncs(p)
				if err != nil {
					t.Fatal(err)
				}
				for k := range got {
					if got[k].Start != p.Funcs[k].Start || got[k].End != p.Funcs[k].End {
						t.Errorf("FindFuncs after edit: func %d = [%d,%d), Funcs says [%d,%d)", k, got[k].Start, got[k].End, p.Funcs[k].Start, p.Funcs[k].End)
					}
				}
			}
			if err := ir.Validate(p, ir.DecodeOptions{}); err != nil {
				t.Errorf("edited program does not validate: %v", err)
			}
		})
	}
}

func TestPatchPseudoFunc(t *testing.T) {
	// ld_imm64 src=4 imm=+3 refers to slot 5; a patch between moves it.
	ld := ir.Instruction{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc, Imm: 3}
	p := ir.NewProgram("", []ir.Instruction{
		ld, {},
		{Op: 0xb7, Dst: ir.R0},
		{Op: ir.OpExit},
		{Op: ir.OpExit}, // unused
		{Op: 0xb7, Dst: ir.R0, Imm: 1},
		{Op: ir.OpExit},
	})
	p.Insns[0].Imm = 3 // target 0+1+3 = 4? make it 5
	p.Insns[0].Imm = 4
	if p.Target(0) != 5 {
		t.Fatalf("setup: target %d", p.Target(0))
	}
	if err := p.Patch(2, []ir.Instruction{{Op: 0xb7, Dst: ir.R0}, {Op: 0xb7, Dst: ir.R1}}); err != nil {
		t.Fatal(err)
	}
	if p.Target(0) != 6 || p.Insns[0].Imm != 5 {
		t.Fatalf("pseudo func imm %d, target %d; want 5, 6", p.Insns[0].Imm, p.Target(0))
	}
	// And a backward one after the patch.
	q := ir.NewProgram("", []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0}, {Op: ir.OpExit},
		{Op: 0xb7, Dst: ir.R0}, // patched
		{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc, Imm: -4}, {},
		{Op: ir.OpExit},
	})
	if q.Target(3) != 0 {
		t.Fatalf("setup: %d", q.Target(3))
	}
	if err := q.Patch(2, []ir.Instruction{{Op: 0xb7, Dst: ir.R0}, {Op: 0xb7, Dst: ir.R1}, {Op: 0xb7, Dst: ir.R3}}); err != nil {
		t.Fatal(err)
	}
	if q.Target(5) != 0 {
		t.Fatalf("backward pseudo func now targets %d", q.Target(5))
	}
}

func TestPatchAux(t *testing.T) {
	p := mustAsm(t, "mov %r0, 0\nldxw %r0, [%r1+4]\nexit")
	p.Aux[1].PtrType = ir.PtrCtx
	p.Aux[1].ZextDst = true
	p.Aux[2].Symbol = "x"
	if err := p.Patch(1, insnsOf(t, "ldxw %r0, [%r1+4]\nmov32 %r0, %r0\nadd %r0, 1")); err != nil {
		t.Fatal(err)
	}
	wantOrig := []int32{0, 1, -1, -1, 2}
	for k, w := range wantOrig {
		if p.Aux[k].OrigIndex != w {
			t.Errorf("aux[%d].OrigIndex = %d, want %d", k, p.Aux[k].OrigIndex, w)
		}
	}
	for k := 1; k <= 3; k++ {
		if p.Aux[k].PtrType != ir.PtrCtx || !p.Aux[k].ZextDst {
			t.Errorf("aux[%d] = %+v, want the original's fields", k, p.Aux[k])
		}
	}
	if p.Aux[4].Symbol != "x" {
		t.Errorf("aux after the patch moved wrongly: %+v", p.Aux[4])
	}

	// ld_imm64 replaced by ld_imm64: both slots keep their aux.
	q := mustAsm(t, "lddw %r1, 5\nexit")
	q.Aux[0].Symbol, q.Aux[0].SymbolKind = "map", ir.SymMap
	q.Aux[1].Symbol = "second"
	if err := q.Patch(0, insnsOf(t, "lddw %r1, 0xffff888000000000")); err != nil {
		t.Fatal(err)
	}
	if q.Aux[0].Symbol != "map" || q.Aux[1].Symbol != "second" || q.Aux[1].OrigIndex != 1 {
		t.Errorf("ld_imm64 aux = %+v", q.Aux[:2])
	}
}

func TestPatchErrors(t *testing.T) {
	big := "jeq %r1, 0, +32767\n" + strings.Repeat("mov %r0, 0\n", 32767) + "exit"
	tests := []struct {
		name string
		prog string
		at   int
		repl []ir.Instruction
		want string
	}{
		{"second half of ld_imm64", "lddw %r1, 1\nexit", 1, []ir.Instruction{{Op: ir.OpExit}}, "instruction 1: cannot patch the second half of a ld_imm64"},
		{"index past the end", "exit", 1, []ir.Instruction{{Op: ir.OpExit}}, "instruction 1: cannot patch: index outside the program of 1 instructions"},
		{"negative index", "exit", -1, []ir.Instruction{{Op: ir.OpExit}}, "cannot patch: index outside"},
		{"empty replacement", "mov %r0, 0\nexit", 0, nil, "instruction 0: empty patch (use Remove)"},
		{"off overflows int16", big, 5, []ir.Instruction{{Op: 0xb7}, {Op: 0xb7}}, "instruction 0: jump distance 32768 no longer fits after editing instruction 5 (ERANGE)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustAsm(t, tc.prog)
			before := append([]ir.Instruction(nil), p.Insns...)
			err := p.Patch(tc.at, tc.repl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !sameInsns(before, p.Insns) || len(p.Aux) != len(p.Insns) {
				t.Fatal("program changed on error")
			}
		})
	}
}

func TestInsert(t *testing.T) {
	tests := []struct {
		name string
		prog string
		at   int
		ins  string
		want string
	}{
		{
			name: "before a jump target: jumps reach the inserted code",
			prog: "jeq %r1, 0, +1\nmov %r0, 1\nmov %r0, 2\nexit",
			at:   2, ins: "mov %r3, 3",
			want: "jeq %r1, 0, +1\nmov %r0, 1\nmov %r3, 3\nmov %r0, 2\nexit",
		},
		{
			name: "before a forward jump: the moved jump keeps its target",
			prog: "mov %r0, 0\njeq %r1, 0, +1\nmov %r0, 1\nexit",
			at:   1, ins: "mov %r2, 2\nmov %r3, 3",
			want: "mov %r0, 0\nmov %r2, 2\nmov %r3, 3\njeq %r1, 0, +1\nmov %r0, 1\nexit",
		},
		{
			name: "before a backward jump: the moved jump keeps its target",
			prog: "mov %r0, 0\nadd %r0, 1\njlt %r0, 5, -2\nexit",
			at:   2, ins: "mov %r2, 2",
			want: "mov %r0, 0\nadd %r0, 1\nmov %r2, 2\njlt %r0, 5, -3\nexit",
		},
		{
			name: "before a self loop: it now loops through the inserted code",
			prog: "mov %r0, 0\nja -1\nexit",
			at:   1, ins: "add %r0, 1",
			want: "mov %r0, 0\nadd %r0, 1\nja -2\nexit",
		},
		{
			name: "before a ld_imm64",
			prog: "ja +0\nlddw %r1, 7\nexit",
			at:   1, ins: "mov %r2, 2",
			want: "ja +0\nmov %r2, 2\nlddw %r1, 7\nexit",
		},
		{
			name: "before a local call",
			prog: "call local +1\nexit\nmov %r0, 1\nexit",
			at:   0, ins: "mov %r1, 1",
			want: "mov %r1, 1\ncall local +1\nexit\nmov %r0, 1\nexit",
		},
		{
			name: "append",
			prog: "ja +1\nexit\nexit",
			at:   3, ins: "mov %r0, 0\nexit",
			want: "ja +1\nexit\nexit\nmov %r0, 0\nexit",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustAsm(t, tc.prog)
			n := p.Len()
			if err := p.Insert(tc.at, insnsOf(t, tc.ins)); err != nil {
				t.Fatal(err)
			}
			want := insnsOf(t, tc.want)
			if !sameInsns(p.Insns, want) {
				t.Fatalf("got\n%s\nwant\n%s", asm.Format(p), tc.want)
			}
			k := len(p.Insns) - n
			if tc.at < n && p.Aux[tc.at+k].OrigIndex != int32(tc.at) {
				t.Errorf("original moved to %d has OrigIndex %d", tc.at+k, p.Aux[tc.at+k].OrigIndex)
			}
			for j := tc.at; j < tc.at+k; j++ {
				if p.Aux[j].OrigIndex != -1 {
					t.Errorf("inserted aux[%d].OrigIndex = %d", j, p.Aux[j].OrigIndex)
				}
			}
		})
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name   string
		prog   string
		at, n  int
		want   string
		err    string
		before []ir.Func
		funcs  []ir.Func
	}{
		{
			name: "jumps across shrink",
			prog: "jeq %r1, 0, +3\nmov %r0, 1\nmov %r0, 2\nmov %r0, 3\nexit\njne %r0, 0, -6\nexit",
			at:   1, n: 2,
			want: "jeq %r1, 0, +1\nmov %r0, 3\nexit\njne %r0, 0, -4\nexit",
		},
		{
			name: "jump into the removed range lands after it",
			prog: "jeq %r1, 0, +1\nja +0\nmov %r0, 1\nexit",
			at:   1, n: 1,
			want: "jeq %r1, 0, +0\nmov %r0, 1\nexit",
		},
		{
			name: "ld_imm64 removed whole",
			prog: "ja +2\nlddw %r1, 1\nexit",
			at:   1, n: 2,
			want: "ja +0\nexit",
		},
		{
			name: "function removed, calls adjusted",
			prog: "call local +3\nexit\nmov %r0, 5\nexit\nmov %r0, 1\nexit",
			at:   2, n: 2,
			want:   "call local +1\nexit\nmov %r0, 1\nexit",
			before: []ir.Func{{Start: 0, End: 2}, {Start: 2, End: 4}, {Start: 4, End: 6}},
			funcs:  []ir.Func{{Start: 0, End: 2}, {Start: 2, End: 4}},
		},
		{name: "splits ld_imm64 at the end", prog: "lddw %r1, 1\nexit", at: 0, n: 1, err: "instruction 0: cannot remove the first half of a ld_imm64"},
		{name: "splits ld_imm64 at the start", prog: "lddw %r1, 1\nexit", at: 1, n: 2, err: "instruction 1: cannot remove the second half"},
		{name: "call target removed", prog: "call local +1\nexit\nmov %r0, 1\nexit", at: 2, n: 1, err: "instruction 0: call target 2 is removed"},
		{name: "past the end", prog: "mov %r0, 0\nexit", at: 1, n: 2, err: "instruction 1: cannot remove 2 instructions: only 1 left"},
		{name: "whole program", prog: "mov %r0, 0\nexit", at: 0, n: 2, err: "cannot remove the whole program"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustAsm(t, tc.prog)
			p.Funcs = tc.before
			before := append([]ir.Instruction(nil), p.Insns...)
			err := p.Remove(tc.at, tc.n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if !sameInsns(before, p.Insns) {
					t.Fatal("program changed on error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameInsns(p.Insns, insnsOf(t, tc.want)) {
				t.Fatalf("got\n%s\nwant\n%s", asm.Format(p), tc.want)
			}
			if len(p.Aux) != len(p.Insns) {
				t.Fatal("aux length")
			}
			if tc.funcs != nil {
				if len(p.Funcs) != len(tc.funcs) {
					t.Fatalf("funcs %+v, want %+v", p.Funcs, tc.funcs)
				}
				for k, f := range tc.funcs {
					if p.Funcs[k].Start != f.Start || p.Funcs[k].End != f.End {
						t.Errorf("func %d = [%d,%d), want [%d,%d)", k, p.Funcs[k].Start, p.Funcs[k].End, f.Start, f.End)
					}
				}
			}
		})
	}
}

// TestEditRandom inserts, patches and removes at random places in random
// programs and checks through OrigIndex that every surviving jump still
// reaches the instruction it reached before.
func TestEditRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 500; iter++ {
		n := 3 + rng.Intn(30)
		insns := make([]ir.Instruction, n)
		for i := range insns {
			switch rng.Intn(3) {
			case 0:
				insns[i] = ir.Instruction{Op: 0x15, Dst: ir.R1, Off: int16(rng.Intn(n) - i - 1)} // jeq r1, 0
			case 1:
				insns[i] = ir.Instruction{Op: ir.OpGotoL, Imm: int32(rng.Intn(n) - i - 1)}
			default:
				insns[i] = ir.Instruction{Op: 0x07, Dst: ir.R0, Imm: int32(i)} // add r0, i
			}
		}
		insns[n-1] = ir.Instruction{Op: ir.OpExit}
		p := ir.NewProgram("", insns)
		origTarget := map[int32]int32{}
		for i, ins := range p.Insns {
			if ins.IsJumpWithOffset() {
				origTarget[int32(i)] = int32(p.Target(i))
			}
		}
		at := rng.Intn(n)
		k := 1 + rng.Intn(4)
		nops := make([]ir.Instruction, k)
		for j := range nops {
			nops[j] = ir.Instruction{Op: 0xbf, Dst: ir.R3, Src: ir.R3} // mov r3, r3
		}
		var err error
		op := rng.Intn(3)
		switch op {
		case 0:
			err = p.Insert(at, nops)
		case 1:
			// Patch with [nops..., original]: like Insert but the
			// original's own target is the caller's business, so
			// only patch non-jumps.
			if p.Insns[at].IsJumpWithOffset() {
				continue
			}
			err = p.Patch(at, append(nops, p.Insns[at]))
		case 2:
			if at == n-1 {
				continue
			}
			err = p.Remove(at, 1)
		}
		if err != nil {
			t.Fatal(err)
		}
		// Where did each original index go?
		newIndex := map[int32]int{}
		for i, a := range p.Aux {
			if a.OrigIndex >= 0 {
				newIndex[a.OrigIndex] = i
			}
		}
		if op == 1 {
			// Patch: the first slot carries the original's aux.
			newIndex[int32(at)] = at + k
		}
		for i, a := range p.Aux {
			if a.OrigIndex < 0 || !p.Insns[i].IsJumpWithOffset() {
				continue
			}
			ot := origTarget[a.OrigIndex]
			got := p.Target(i)
			want, ok := newIndex[ot]
			switch {
			case op != 2 && ot == int32(at):
				want = at // jumps to the edited instruction reach the new code
			case op == 2 && ot == int32(at):
				want = at // removed: lands on what follows
			case !ok:
				t.Fatalf("iter %d: target %d vanished", iter, ot)
			}
			if got != want {
				t.Fatalf("iter %d op %d at %d: insn %d (orig %d) targets %d, want %d (orig %d)\n%s", iter, op, at, i, a.OrigIndex, got, want, ot, asm.Format(p))
			}
		}
	}
}

// TestPatchAllEqualsPatch checks PatchAll against Patch applied from the
// highest index to the lowest, on random programs with ld_imm64s, jumps,
// gotol, calls and function references, and random replacements that
// contain jumps of their own.
func TestPatchAllEqualsPatch(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	randJump := func(span int) ir.Instruction {
		d := rng.Intn(2*span+1) - span
		switch rng.Intn(4) {
		case 0:
			return ir.Instruction{Op: 0x15, Dst: ir.R1, Off: int16(d)}
		case 1:
			return ir.Instruction{Op: ir.OpGotoL, Imm: int32(d)}
		case 2:
			return ir.Instruction{Op: ir.OpCall, Src: ir.CallLocal, Imm: int32(d)}
		}
		return ir.Instruction{Op: ir.OpJA, Off: int16(d)}
	}
	compared, patches := 0, 0
	defer func() { t.Logf("%d programs compared, %d patches", compared, patches) }()
	for iter := 0; iter < 2000; iter++ {
		n := 2 + rng.Intn(25)
		var insns []ir.Instruction
		for len(insns) < n {
			switch rng.Intn(5) {
			case 0:
				insns = append(insns, randJump(n))
			case 1:
				src := ir.PseudoNone
				if rng.Intn(2) == 0 {
					src = ir.PseudoFunc
				}
				insns = append(insns, ir.Instruction{Op: ir.OpLdImm64, Dst: 2, Src: src, Imm: int32(rng.Intn(2*n) - n)}, ir.Instruction{})
			default:
				insns = append(insns, ir.Instruction{Op: 0x07, Imm: int32(len(insns))})
			}
		}
		insns = append(insns, ir.Instruction{Op: ir.OpExit})
		base := ir.NewProgram("", insns)
		for i := range base.Aux {
			base.Aux[i].Line = &ir.SourceLine{Line: uint32(i)}
		}
		base.Funcs = []ir.Func{{Start: 0, End: len(insns) / 2}, {Start: len(insns) / 2, End: len(insns)}}
		var starts []int
		for i := 0; i < base.Len(); i += base.SlotLen(i) {
			starts = append(starts, i)
		}
		var reps []ir.Replacement
		for _, s := range starts {
			if rng.Intn(3) != 0 {
				continue
			}
			var r []ir.Instruction
			for k := rng.Intn(4); k >= 0; k-- {
				switch rng.Intn(4) {
				case 0:
					r = append(r, randJump(5))
				case 1:
					r = append(r, ir.Instruction{Op: ir.OpLdImm64, Dst: 3, Imm: 9}, ir.Instruction{})
				default:
					r = append(r, ir.Instruction{Op: 0xb7, Dst: 4, Imm: int32(k)})
				}
			}
			reps = append(reps, ir.Replacement{Index: s, Insns: r})
		}
		// Shuffle: PatchAll must not depend on the order.
		rng.Shuffle(len(reps), func(a, b int) { reps[a], reps[b] = reps[b], reps[a] })

		seq := base.Clone()
		byIndex := map[int][]ir.Instruction{}
		for _, r := range reps {
			byIndex[r.Index] = r.Insns
		}
		var seqErr error
		for k := len(starts) - 1; k >= 0 && seqErr == nil; k-- {
			if r, ok := byIndex[starts[k]]; ok {
				seqErr = seq.Patch(starts[k], append([]ir.Instruction(nil), r...))
			}
		}
		all := base.Clone()
		allErr := all.PatchAll(reps)
		if (seqErr != nil) != (allErr != nil) {
			t.Fatalf("iter %d: Patch err %v, PatchAll err %v", iter, seqErr, allErr)
		}
		if seqErr != nil {
			if !sameInsns(all.Insns, base.Insns) {
				t.Fatalf("iter %d: PatchAll changed the program on error", iter)
			}
			continue
		}
		compared++
		patches += len(reps)
		if !sameInsns(seq.Insns, all.Insns) {
			t.Fatalf("iter %d: PatchAll differs\nsequential:\n%s\nPatchAll:\n%s", iter, seq, all)
		}
		for i := range seq.Aux {
			if seq.Aux[i].OrigIndex != all.Aux[i].OrigIndex || seq.Aux[i].Line != all.Aux[i].Line {
				t.Fatalf("iter %d: aux %d differs: %+v vs %+v", iter, i, seq.Aux[i], all.Aux[i])
			}
		}
		for k := range seq.Funcs {
			if seq.Funcs[k] != all.Funcs[k] {
				t.Fatalf("iter %d: func %d: %+v vs %+v", iter, k, seq.Funcs[k], all.Funcs[k])
			}
		}
	}
}

func TestPatchAllErrors(t *testing.T) {
	p := mustAsm(t, "lddw %r1, 1\nmov %r0, 0\nexit")
	for _, tc := range []struct {
		reps []ir.Replacement
		want string
	}{
		{[]ir.Replacement{{Index: 1, Insns: []ir.Instruction{mov0}}}, "instruction 1: cannot patch the second half of a ld_imm64"},
		{[]ir.Replacement{{Index: 9, Insns: []ir.Instruction{mov0}}}, "instruction 9: cannot patch: index outside"},
		{[]ir.Replacement{{Index: 2}}, "instruction 2: empty patch"},
		{[]ir.Replacement{{Index: 2, Insns: []ir.Instruction{mov0}}, {Index: 2, Insns: []ir.Instruction{mov0}}}, "instruction 2: patched twice"},
	} {
		q := p.Clone()
		err := q.PatchAll(tc.reps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
		if !sameInsns(q.Insns, p.Insns) {
			t.Error("program changed on error")
		}
	}
}

func benchProgram(n int) *ir.Program {
	insns := make([]ir.Instruction, n)
	for i := range insns {
		if i%10 == 0 && i+20 < n {
			insns[i] = ir.Instruction{Op: 0x15, Dst: ir.R1, Off: 15}
		} else {
			insns[i] = ir.Instruction{Op: 0x3f, Dst: 1, Src: 2} // r1 /= r2
		}
	}
	insns[n-1] = ir.Instruction{Op: ir.OpExit}
	return ir.NewProgram("", insns)
}

// guard is a div-by-zero patch like the verifier's.
var guard = []ir.Instruction{{Op: 0x55, Dst: 2, Off: 2}, {Op: 0xac, Dst: 1, Src: 1}, {Op: ir.OpJA, Off: 1}, {Op: 0x3f, Dst: 1, Src: 2}}

// BenchmarkPatchSequential patches every division of a 2k-instruction
// program one Patch at a time (quadratic, like the kernel).
func BenchmarkPatchSequential(b *testing.B) {
	base := benchProgram(2000)
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		p := base.Clone()
		for i := p.Len() - 1; i >= 0; i-- {
			if p.Insns[i].Op == 0x3f {
				if err := p.Patch(i, guard); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/insn")
}

// BenchmarkPatchAll does the same edits with one PatchAll.
func BenchmarkPatchAll(b *testing.B) {
	base := benchProgram(2000)
	var reps []ir.Replacement
	for i, ins := range base.Insns {
		if ins.Op == 0x3f {
			reps = append(reps, ir.Replacement{Index: i, Insns: guard})
		}
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		p := base.Clone()
		if err := p.PatchAll(reps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/insn")
}
