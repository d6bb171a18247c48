package ir

import "fmt"

// Control-flow graph. Blocks are maximal runs of slots entered only at their
// first instruction and left only at their last, per function: a block
// starts at a function start, a jump target, or the instruction after a jump
// or exit. Calls (helpers, kfuncs, bpf-to-bpf, callx, tail calls) return to
// the next instruction, so they do not end a block. An indirect jump (gotox)
// ends its block with no known successors. The second slot of a ld_imm64
// belongs to the block of its first slot.

// Block is one basic block.
type Block struct {
	Start, End int   // slot range [Start, End)
	Func       int   // index of the function in CFG.Funcs
	Succs      []int // successor blocks: fall-through first, then the jump target
	Preds      []int // predecessor blocks, in increasing block order
}

// Last returns the slot index of the block's last instruction (the first
// slot of a ld_imm64 if it ends with one).
func (b *Block) Last(p *Program) int {
	last := b.End - 1
	if last-1 >= b.Start && p.Insns[last-1].IsLdImm64() {
		// A block never ends in the middle of a ld_imm64, but a block
		// whose last slot is a ld_imm64's second half ends with it.
		if isSecond(p, b.Start, last) {
			return last - 1
		}
	}
	return last
}

// isSecond reports whether slot i is the second half of a ld_imm64,
// scanning from a known instruction boundary start.
func isSecond(p *Program, start, i int) bool {
	for k := start; k < i; k++ {
		if p.Insns[k].IsLdImm64() {
			if k+1 == i {
				return true
			}
			k++
		}
	}
	return false
}

// CFG is the control-flow graph of a program.
type CFG struct {
	Funcs  []Func
	Blocks []Block // in slot order
	// Entry[f] is the entry block of function f.
	Entry []int
	// RPO[f] lists the blocks of function f reachable from its entry, in
	// reverse postorder (successors visited in Succs order).
	RPO     [][]int
	blockOf []int32
}

// BlockOf returns the index of the block containing slot i.
func (c *CFG) BlockOf(i int) int { return int(c.blockOf[i]) }

// NewCFG builds the control-flow graph of p, using p.Funcs when set and
// FindFuncs otherwise. p should have passed Validate.
func NewCFG(p *Program) (*CFG, error) {
	n := len(p.Insns)
	funcs := p.Funcs
	if funcs == nil {
		var err error
		if funcs, err = FindFuncs(p); err != nil {
			return nil, err
		}
	}
	leader := make([]bool, n+1)
	for _, f := range funcs {
		if f.Start < 0 || f.End > n || f.Start >= f.End {
			return nil, &Error{Index: -1, Reason: fmt.Sprintf("function [%d, %d) outside the program of %d instructions", f.Start, f.End, n)}
		}
		leader[f.Start] = true
	}
	second := make([]bool, n)
	for i := 0; i < n; i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			if i+1 < n {
				second[i+1] = true
			}
			i++
			continue
		}
		if ins.IsJumpWithOffset() {
			t := p.Target(i)
			if t < 0 || t >= n {
				return nil, errAt(i, "jump target %d outside the program", t)
			}
			leader[t] = true
			leader[i+1] = true
		} else if ins.IsExit() || ins.Op == OpJA|uint8(SourceX) {
			leader[i+1] = true
		}
	}
	for i := range second {
		if second[i] && leader[i] {
			return nil, errAt(i, "jump target is the second half of a ld_imm64")
		}
	}
	c := &CFG{Funcs: funcs, blockOf: make([]int32, n)}
	fi := 0
	for i := 0; i < n; {
		for fi+1 < len(funcs) && funcs[fi+1].Start <= i {
			fi++
		}
		end := i + 1
		for end < n && !leader[end] {
			end++
		}
		if i < funcs[fi].Start || i >= funcs[fi].End {
			return nil, errAt(i, "instruction outside every function")
		}
		b := len(c.Blocks)
		c.Blocks = append(c.Blocks, Block{Start: i, End: end, Func: fi})
		for k := i; k < end; k++ {
			c.blockOf[k] = int32(b)
		}
		i = end
	}
	c.Entry = make([]int, len(funcs))
	for k, f := range funcs {
		c.Entry[k] = c.BlockOf(f.Start)
	}
	for bi := range c.Blocks {
		b := &c.Blocks[bi]
		last := b.Last(p)
		ins := p.Insns[last]
		f := funcs[b.Func]
		addSucc := func(slot int) error {
			if slot < f.Start || slot >= f.End {
				return errAt(last, "control leaves function %d to instruction %d", b.Func, slot)
			}
			s := c.BlockOf(slot)
			for _, x := range b.Succs {
				if x == s {
					return nil
				}
			}
			b.Succs = append(b.Succs, s)
			return nil
		}
		var err error
		switch {
		case ins.IsExit(), ins.Op == OpJA|uint8(SourceX):
		case ins.Op == OpJA || ins.Op == OpGotoL:
			err = addSucc(p.Target(last))
		case ins.IsJumpWithOffset():
			if err = addSucc(b.End); err == nil {
				err = addSucc(p.Target(last))
			}
		default:
			err = addSucc(b.End)
		}
		if err != nil {
			return nil, err
		}
	}
	for bi := range c.Blocks {
		for _, s := range c.Blocks[bi].Succs {
			c.Blocks[s].Preds = append(c.Blocks[s].Preds, bi)
		}
	}
	c.RPO = make([][]int, len(funcs))
	state := make([]uint8, len(c.Blocks)) // 0 new, 1 on stack, 2 done
	type frame struct{ b, next int }
	for k := range funcs {
		var post []int
		stack := []frame{{c.Entry[k], 0}}
		state[c.Entry[k]] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			succs := c.Blocks[top.b].Succs
			if top.next < len(succs) {
				s := succs[top.next]
				top.next++
				if state[s] == 0 {
					state[s] = 1
					stack = append(stack, frame{s, 0})
				}
				continue
			}
			state[top.b] = 2
			post = append(post, top.b)
			stack = stack[:len(stack)-1]
		}
		for l, r := 0, len(post)-1; l < r; l, r = l+1, r-1 {
			post[l], post[r] = post[r], post[l]
		}
		c.RPO[k] = post
	}
	return c, nil
}

// Dominators returns the immediate dominator of every block (Cooper, Harvey
// and Kennedy's iterative algorithm over the reverse postorder): idom[b] is
// the block that dominates b most closely, idom[entry] = entry, and -1 marks
// blocks unreachable from their function's entry.
func (c *CFG) Dominators() []int {
	idom := make([]int, len(c.Blocks))
	for i := range idom {
		idom[i] = -1
	}
	order := make([]int, len(c.Blocks)) // position in its function's RPO
	for _, rpo := range c.RPO {
		for k, b := range rpo {
			order[b] = k
		}
	}
	intersect := func(a, b int) int {
		for a != b {
			for order[a] > order[b] {
				a = idom[a]
			}
			for order[b] > order[a] {
				b = idom[b]
			}
		}
		return a
	}
	for f, rpo := range c.RPO {
		entry := c.Entry[f]
		idom[entry] = entry
		for changed := true; changed; {
			changed = false
			for _, b := range rpo[1:] {
				nd := -1
				for _, q := range c.Blocks[b].Preds {
					if idom[q] < 0 {
						continue // unreachable or not yet processed
					}
					if nd < 0 {
						nd = q
					} else {
						nd = intersect(q, nd)
					}
				}
				if nd != idom[b] {
					idom[b] = nd
					changed = true
				}
			}
		}
	}
	return idom
}

// Dominates reports whether block a dominates block b, given the result of
// Dominators.
func Dominates(idom []int, a, b int) bool {
	if idom[b] < 0 || idom[a] < 0 {
		return false
	}
	for {
		if a == b {
			return true
		}
		if idom[b] == b {
			return false
		}
		b = idom[b]
	}
}
