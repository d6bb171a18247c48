package ir_test

import (
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

type wantBlock struct {
	start, end int
	succs      []int
}

func TestCFG(t *testing.T) {
	tests := []struct {
		name   string
		prog   string
		blocks []wantBlock
		rpo    [][]int
	}{
		{
			name:   "straight line",
			prog:   "mov %r0, 0\nadd %r0, 1\nexit",
			blocks: []wantBlock{{0, 3, nil}},
			rpo:    [][]int{{0}},
		},
		{
			name: "diamond",
			prog: "jeq %r1, 0, +2\nmov %r0, 1\nja +1\nmov %r0, 2\nexit",
			blocks: []wantBlock{
				{0, 1, []int{1, 2}},
				{1, 3, []int{3}},
				{3, 4, []int{3}},
				{4, 5, nil},
			},
		},
		{
			name: "loop with may_goto",
			prog: "mov %r0, 0\n.insn 0x00000000000200e5\nadd %r0, 1\nja -3\nexit",
			blocks: []wantBlock{
				{0, 1, []int{1}},
				{1, 2, []int{2, 3}},
				{2, 4, []int{1}},
				{4, 5, nil},
			},
			rpo: [][]int{{0, 1, 3, 2}},
		},
		{
			name: "ld_imm64 inside a block and jumped over",
			prog: "jeq %r1, 0, +2\nlddw %r0, 5\nexit",
			blocks: []wantBlock{
				{0, 1, []int{1, 2}},
				{1, 3, []int{2}},
				{3, 4, nil},
			},
		},
		{
			name: "two functions",
			prog: "call local +2\nexit\nexit\njgt %r1, 3, +1\nmov %r0, 1\nexit",
			blocks: []wantBlock{
				{0, 2, nil},
				{2, 3, nil}, // unreachable tail of function 0
				{3, 4, []int{3, 4}},
				{4, 5, []int{4}},
				{5, 6, nil},
			},
			rpo: [][]int{{0}, {2, 3, 4}},
		},
		{
			name: "gotol and jump to itself",
			prog: "ja32 +1\nja -1\nexit",
			blocks: []wantBlock{
				{0, 1, []int{2}},
				{1, 2, []int{1}},
				{2, 3, nil},
			},
			rpo: [][]int{{0, 2}},
		},
		{
			name: "conditional jump to the next instruction has one successor",
			prog: "jeq %r1, 0, +0\nexit",
			blocks: []wantBlock{
				{0, 1, []int{1}},
				{1, 2, nil},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustAsm(t, tc.prog)
			c, err := ir.NewCFG(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Blocks) != len(tc.blocks) {
				t.Fatalf("%d blocks, want %d: %+v", len(c.Blocks), len(tc.blocks), c.Blocks)
			}
			for k, w := range tc.blocks {
				b := c.Blocks[k]
				succs := w.succs
				if b.Start != w.start || b.End != w.end || !reflect.DeepEqual(b.Succs, succs) {
					t.Errorf("block %d = [%d,%d) succs %v, want [%d,%d) succs %v", k, b.Start, b.End, b.Succs, w.start, w.end, succs)
				}
				for i := b.Start; i < b.End; i++ {
					if c.BlockOf(i) != k {
						t.Errorf("BlockOf(%d) = %d, want %d", i, c.BlockOf(i), k)
					}
				}
			}
			if tc.rpo != nil && !reflect.DeepEqual(c.RPO, tc.rpo) {
				t.Errorf("RPO = %v, want %v", c.RPO, tc.rpo)
			}
			checkCFG(t, p, c)
		})
	}
}

// checkCFG checks invariants: preds mirror succs, RPO puts every block
// before its successors except along back edges (edges to a block that is
// still on the DFS path, i.e. whose RPO position is not later).
func checkCFG(t *testing.T, p *ir.Program, c *ir.CFG) {
	t.Helper()
	for bi, b := range c.Blocks {
		for _, s := range b.Succs {
			found := false
			for _, q := range c.Blocks[s].Preds {
				found = found || q == bi
			}
			if !found {
				t.Errorf("block %d -> %d has no matching pred", bi, s)
			}
			if c.Blocks[s].Func != b.Func {
				t.Errorf("edge %d -> %d crosses functions", bi, s)
			}
		}
	}
	for f, order := range c.RPO {
		if len(order) == 0 || order[0] != c.Entry[f] {
			t.Errorf("RPO of function %d does not start at its entry: %v", f, order)
		}
		pos := map[int]int{}
		for k, b := range order {
			pos[b] = k
		}
		for _, b := range order {
			for _, s := range c.Blocks[b].Succs {
				if _, ok := pos[s]; !ok {
					t.Errorf("successor %d of reachable block %d missing from RPO", s, b)
				}
			}
		}
	}
	// Every block except function entries and unreachable ones has preds.
	total := 0
	for _, b := range c.Blocks {
		total += b.End - b.Start
	}
	if total != len(p.Insns) {
		t.Errorf("blocks cover %d slots of %d", total, len(p.Insns))
	}
}

func TestCFGErrors(t *testing.T) {
	p := ir.NewProgram("", []ir.Instruction{{Op: ir.OpJA, Off: 5}, {Op: ir.OpExit}})
	if _, err := ir.NewCFG(p); err == nil || !strings.Contains(err.Error(), "instruction 0") {
		t.Errorf("err = %v", err)
	}
	p = ir.NewProgram("", []ir.Instruction{{Op: ir.OpJA, Off: 1}, {Op: ir.OpLdImm64}, {}, {Op: ir.OpExit}})
	if _, err := ir.NewCFG(p); err == nil || !strings.Contains(err.Error(), "second half") {
		t.Errorf("err = %v", err)
	}
}

// TestCFGConformance builds the CFG of every conformance program.
func TestCFGConformance(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/conformance/*.data")
	if len(files) == 0 {
		t.Skip("no conformance files")
	}
	blocks := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := asm.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ir.NewCFG(cf.Program)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		checkCFG(t, cf.Program, c)
		checkDominators(t, c)
		blocks += len(c.Blocks)
	}
	t.Logf("%d programs, %d blocks", len(files), blocks)
}

func TestDominators(t *testing.T) {
	tests := []struct {
		name string
		prog string
		idom []int
	}{
		// 0 -> {1, 2}; 1 -> 3; 2 -> 3: the join is dominated by the fork.
		{"diamond", "jeq %r1, 0, +2\nmov %r0, 1\nja +1\nmov %r0, 2\nexit", []int{0, 0, 0, 0}},
		// 0 -> 1; 1 -> {2, 3}; 2 -> 1.
		{"loop", "mov %r0, 0\n.insn 0x00000000000200e5\nadd %r0, 1\nja -3\nexit", []int{0, 0, 1, 1}},
		// Block 1 of function 0 is unreachable; function 1 starts at 2.
		{"two functions", "call local +2\nexit\nexit\njgt %r1, 3, +1\nmov %r0, 1\nexit", []int{0, -1, 2, 2, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ir.NewCFG(mustAsm(t, tc.prog))
			if err != nil {
				t.Fatal(err)
			}
			idom := c.Dominators()
			if !reflect.DeepEqual(idom, tc.idom) {
				t.Fatalf("idom = %v, want %v", idom, tc.idom)
			}
			for b := range idom {
				if idom[b] >= 0 && !ir.Dominates(idom, c.Entry[c.Blocks[b].Func], b) {
					t.Errorf("entry does not dominate block %d", b)
				}
			}
		})
	}
	c, _ := ir.NewCFG(mustAsm(t, "jeq %r1, 0, +2\nmov %r0, 1\nja +1\nmov %r0, 2\nexit"))
	idom := c.Dominators()
	if ir.Dominates(idom, 1, 3) || ir.Dominates(idom, 2, 3) || !ir.Dominates(idom, 0, 3) || !ir.Dominates(idom, 3, 3) {
		t.Error("Dominates on the diamond")
	}
}

// checkDominators compares Dominators with the definition: a dominates b
// iff b cannot be reached from its function's entry without passing a.
func checkDominators(t *testing.T, c *ir.CFG) {
	t.Helper()
	idom := c.Dominators()
	reach := func(entry, without int) []bool {
		seen := make([]bool, len(c.Blocks))
		if entry == without {
			return seen
		}
		stack := []int{entry}
		seen[entry] = true
		for len(stack) > 0 {
			b := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, s := range c.Blocks[b].Succs {
				if s != without && !seen[s] {
					seen[s] = true
					stack = append(stack, s)
				}
			}
		}
		return seen
	}
	for f := range c.Funcs {
		all := reach(c.Entry[f], -1)
		for a := range c.Blocks {
			if c.Blocks[a].Func != f || !all[a] {
				continue
			}
			r := reach(c.Entry[f], a)
			for b := range c.Blocks {
				if c.Blocks[b].Func != f || !all[b] {
					continue
				}
				want := a == b || !r[b]
				if got := ir.Dominates(idom, a, b); got != want {
					t.Fatalf("Dominates(%d, %d) = %v, want %v (idom %v)", a, b, got, want, idom)
				}
			}
		}
	}
}

// TestCFGRandom checks the CFG invariants and dominators on random
// programs full of jumps.
func TestCFGRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for iter := 0; iter < 300; iter++ {
		n := 2 + rng.Intn(40)
		insns := make([]ir.Instruction, n)
		for i := range insns {
			switch rng.Intn(5) {
			case 0:
				insns[i] = ir.Instruction{Op: 0x15, Dst: ir.R1, Off: int16(rng.Intn(n) - i - 1)}
			case 1:
				insns[i] = ir.Instruction{Op: ir.OpJA, Off: int16(rng.Intn(n) - i - 1)}
			case 2:
				insns[i] = ir.Instruction{Op: ir.OpExit}
			default:
				insns[i] = ir.Instruction{Op: 0x07, Imm: int32(i)}
			}
		}
		insns[n-1] = ir.Instruction{Op: ir.OpExit}
		p := ir.NewProgram("", insns)
		c, err := ir.NewCFG(p)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		checkCFG(t, p, c)
		checkDominators(t, c)
		// Every instruction after a jump or exit, and every target,
		// starts a block.
		for i, ins := range p.Insns {
			if ins.IsJumpWithOffset() && c.Blocks[c.BlockOf(p.Target(i))].Start != p.Target(i) {
				t.Fatalf("iter %d: target %d does not start a block", iter, p.Target(i))
			}
			if (ins.IsJumpWithOffset() || ins.IsExit()) && i+1 < n && c.Blocks[c.BlockOf(i+1)].Start != i+1 {
				t.Fatalf("iter %d: %d follows a jump but does not start a block", iter, i+1)
			}
		}
	}
}
