package passes

import (
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// StackDepth computes each function's stack depth as the verifier's
// check_max_stack_depth sees it (subprog_info[].stack_depth): the deepest
// byte below the function's own r10 that it touches, before rounding (the
// JIT's prologue rounds it up to 8). The xlated dump does not carry it, so
// it is derived from the code:
//
//   - loads, stores and atomics whose base is r10 or a copy of it (r10 plus
//     or minus constants, moved between registers, spilled to and filled
//     from 8-byte stack slots) count at base + off;
//   - a pointer into the frame passed in R1..R5 to a helper, kfunc or
//     bpf-to-bpf call counts at its own offset (the callee accesses the
//     caller's stack from there upwards, as the verifier charges it).
//
// It is a forward dataflow over each function's basic blocks; where paths
// join with different offsets for a register the deeper one is kept (a
// pointer walked through a buffer starts at its deepest point), and values
// the analysis cannot follow become unknown. Function arguments are unknown
// (pointers into a caller's frame are charged to the caller at the call).
// It fills ir.Func.StackDepth; nothing else changes.
type StackDepth struct{}

// Name implements pipeline.Pass.
func (StackDepth) Name() string { return "stackdepth" }

// Describe implements pipeline.Describer.
func (StackDepth) Describe() string {
	return "stack bytes each function touches below r10 (through copies of r10 and helper arguments)"
}

func init() {
	pipeline.Default.Register("stackdepth", func() pipeline.Pass { return StackDepth{} })
}

// Run implements pipeline.Pass.
func (StackDepth) Run(p *ir.Program, _ *pipeline.Context) error {
	funcs, err := funcsOf(p)
	if err != nil {
		return err
	}
	for k := range funcs {
		d, err := funcStackDepth(p, funcs[k])
		if err != nil {
			return err
		}
		funcs[k].StackDepth = d
	}
	p.Funcs = funcs
	return checkStackLimits(p, funcs) // limits.go
}

const (
	sdUnknown  = int32(-1 << 31)
	sdSlots    = 64 // 512 bytes of 8-byte slots
	sdMinDepth = -512 * 4
)

// sdState is what the analysis knows at a point: registers holding r10+v
// and stack slots holding spilled r10+v.
type sdState struct {
	reg  [12]int32
	slot [sdSlots]int32
	has  uint64 // slot bitmask
}

func (s *sdState) reset() {
	for i := range s.reg {
		s.reg[i] = sdUnknown
	}
	s.reg[ir.R10] = 0
	s.has = 0
}

// merge merges o into s; it reports whether s changed.
func (s *sdState) merge(o *sdState) bool {
	changed := false
	for i := range s.reg {
		a, b := s.reg[i], o.reg[i]
		if a == b {
			continue
		}
		v := sdUnknown
		if a != sdUnknown && b != sdUnknown {
			v = min(a, b)
			if v < sdMinDepth {
				v = sdUnknown
			}
		}
		if v != a {
			s.reg[i] = v
			changed = true
		}
	}
	both := s.has & o.has
	for m := both; m != 0; m &= m - 1 {
		i := trailingZeros64(m)
		if s.slot[i] != o.slot[i] {
			v := min(s.slot[i], o.slot[i])
			if v < sdMinDepth {
				both &^= 1 << i
			} else if v != s.slot[i] {
				s.slot[i] = v
				changed = true
			}
		}
	}
	if both != s.has {
		s.has = both
		changed = true
	}
	return changed
}

func trailingZeros64(x uint64) int {
	n := 0
	for x&1 == 0 {
		x >>= 1
		n++
	}
	return n
}

// funcStackDepth runs the analysis over one function.
func funcStackDepth(p *ir.Program, f ir.Func) (int32, error) {
	n := f.End - f.Start
	// Block leaders: the entry, jump targets, instructions after jumps.
	// The leaders are marked first (-1) and numbered after, so that the
	// block states are allocated once.
	// The direct path (sdDirect) needs no leaders, only this loop's checks.
	direct := sdUseDirect && sdDirect(p, f)
	var leader []int32 // index+1 into states, 0 = not a leader
	if !direct {
		leader = make([]int32, n)
	}
	mark := func(i int) {
		if !direct && i >= f.Start && i < f.End {
			leader[i-f.Start] = -1
		}
	}
	mark(f.Start)
	var buf []int
	for i := f.Start; i < f.End; i++ {
		ins := p.Insns[i]
		if ins.IsJumpWithOffset() || ins.IsExit() {
			var err error
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return 0, err
			}
			for _, t := range buf {
				if t < f.Start || t >= f.End {
					if t == f.End && !ins.IsJumpWithOffset() {
						continue
					}
					return 0, &ir.Error{Index: i, Reason: "jump leaves the function"}
				}
				mark(t)
			}
			mark(i + 1)
		}
		if ins.IsLdImm64() {
			i++
		}
	}
	if direct {
		return sdDirectDepth(p, f)
	}
	nlead := int32(0)
	for k, l := range leader {
		if l != 0 {
			nlead++
			leader[k] = nlead
		}
	}
	states := make([]sdState, nlead)
	visited := make([]bool, len(states))
	states[0].reset()
	visited[0] = true
	work := []int{f.Start}
	depth := int32(0)
	note := func(v int32) {
		if v != sdUnknown && v < 0 && -v > depth {
			depth = -v
		}
	}
	var cur sdState
	for len(work) > 0 {
		start := work[len(work)-1]
		work = work[:len(work)-1]
		cur = states[leader[start-f.Start]-1]
		i := start
		for {
			ins := p.Insns[i]
			sdStep(&cur, p, i, ins, note)
			var err error
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return 0, err
			}
			next := -1
			if len(buf) == 1 && buf[0] < f.End && leader[buf[0]-f.Start] == 0 {
				next = buf[0]
			} else {
				for _, t := range buf {
					if t >= f.End || t < f.Start {
						continue
					}
					li := leader[t-f.Start] - 1
					if li < 0 {
						continue
					}
					if !visited[li] {
						visited[li] = true
						states[li] = cur
						work = append(work, t)
					} else if states[li].merge(&cur) {
						work = append(work, t)
					}
				}
			}
			if next < 0 {
				break
			}
			i = next
		}
	}
	return depth, nil
}

// sdStep applies one instruction to the state, reporting stack accesses.
func sdStep(s *sdState, p *ir.Program, i int, ins ir.Instruction, note func(int32)) {
	if ins.Dst > ir.RAX || ins.Src > ir.RAX {
		return
	}
	def := func(r ir.Register) {
		if r != ir.R10 {
			s.reg[r] = sdUnknown
		}
	}
	access := func(base ir.Register, off int16, size int) (int32, bool) {
		v := s.reg[base]
		if v == sdUnknown {
			return 0, false
		}
		a := v + int32(off)
		note(a)
		// Any write overlapping a tracked slot forgets it.
		for o := a &^ 7; o < a+int32(size); o += 8 {
			if k := -o/8 - 1; o < 0 && k >= 0 && k < sdSlots {
				s.has &^= 1 << k
			}
		}
		return a, true
	}
	switch c := ins.Class(); c {
	case ir.ClassALU, ir.ClassALU64:
		dst := ins.Dst
		switch {
		case c == ir.ClassALU64 && ins.ALUOp() == ir.ALUMov && ins.Source() == ir.SourceX && ins.Off == 0:
			if dst != ir.R10 {
				s.reg[dst] = s.reg[ins.Src]
			}
		case c == ir.ClassALU64 && (ins.ALUOp() == ir.ALUAdd || ins.ALUOp() == ir.ALUSub) && ins.Source() == ir.SourceK:
			if v := s.reg[dst]; v != sdUnknown && dst != ir.R10 {
				d := int64(ins.Imm)
				if ins.ALUOp() == ir.ALUSub {
					d = -d
				}
				nv := int64(v) + d
				if nv < int64(sdMinDepth) || nv > 1<<20 {
					s.reg[dst] = sdUnknown
				} else {
					s.reg[dst] = int32(nv)
				}
			}
		default:
			def(dst)
		}
	case ir.ClassLD:
		def(ins.Dst)
	case ir.ClassLDX:
		v := s.reg[ins.Src]
		size := ins.Size().Bytes()
		def(ins.Dst)
		if v == sdUnknown {
			return
		}
		a := v + int32(ins.Off)
		note(a)
		if ins.Mode() == ir.ModeMEM && size == 8 && a < 0 && a%8 == 0 {
			if k := -a/8 - 1; k < sdSlots && s.has&(1<<k) != 0 {
				s.reg[ins.Dst] = s.slot[k]
			}
		}
	case ir.ClassST:
		if ins.Mode() == ir.ModeNOSPEC {
			return
		}
		access(ins.Dst, ins.Off, ins.Size().Bytes())
	case ir.ClassSTX:
		val := s.reg[ins.Src]
		a, ok := access(ins.Dst, ins.Off, ins.Size().Bytes())
		if ins.IsAtomic() {
			switch {
			case ins.Imm == ir.AtomicCmpXchg:
				def(ir.R0)
			case ins.Imm == ir.AtomicLoadAcq:
				def(ins.Dst)
			case ins.Imm&ir.AtomicFetch != 0:
				def(ins.Src)
			}
			return
		}
		if ok && ins.Mode() == ir.ModeMEM && ins.Size() == ir.SizeDW && val != sdUnknown && a < 0 && a%8 == 0 {
			if k := -a/8 - 1; k < sdSlots {
				s.slot[k] = val
				s.has |= 1 << k
			}
		}
	case ir.ClassJMP, ir.ClassJMP32:
		if ins.IsCall() || ins.IsTailCall() || ins.IsCallX() {
			for r := ir.R1; r <= ir.R5; r++ {
				if v := s.reg[r]; v != sdUnknown {
					note(v)
				}
			}
			for r := ir.R0; r <= ir.R5; r++ {
				def(r)
			}
		}
	}
}

// sdUseDirect enables the direct path (tests compare it with the dataflow).
var sdUseDirect = true

// sdDirect reports whether no register or stack slot of f can ever hold a
// copy of r10: r10 is never the source of a register ALU operation (a
// mov64 copies it; other operations make an unknown value anyway, but
// are excluded too) nor stored, and there is no gotox (whose error the
// dataflow reports when it reaches it). Then the dataflow's states stay
// "unknown" everywhere but in r10 itself, and the depth is the deepest
// access through r10 in reachable code, which sdDirectDepth computes
// without block states.
func sdDirect(p *ir.Program, f ir.Func) bool {
	for i := f.Start; i < f.End; i++ {
		ins := p.Insns[i]
		if ins.IsLdImm64() {
			i++
			continue
		}
		if ins.Dst > ir.RAX || ins.Src > ir.RAX {
			continue // sdStep ignores it
		}
		switch c := ins.Class(); c {
		case ir.ClassALU, ir.ClassALU64:
			if ins.Src == ir.R10 && ins.Source() == ir.SourceX {
				return false
			}
		case ir.ClassSTX:
			if ins.Src == ir.R10 {
				return false
			}
		case ir.ClassJMP:
			if ins.JumpOp() == ir.JumpJA && ins.Source() == ir.SourceX {
				return false
			}
		}
	}
	return true
}

// sdDirectDepth is funcStackDepth for a function sdDirect accepts: the
// deepest r10+off access over the instructions reachable from the entry
// (one bit per instruction, no block states).
func sdDirectDepth(p *ir.Program, f ir.Func) (int32, error) {
	seen := make([]bool, f.End-f.Start)
	work := make([]int, 0, 64)
	work = append(work, f.Start)
	seen[0] = true
	depth := int32(0)
	note := func(off int16) {
		if off < 0 && -int32(off) > depth {
			depth = -int32(off)
		}
	}
	var buf []int
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		// Straight-line runs are followed in place; only the targets of
		// jumps go on the work list.
		for {
			ins := p.Insns[i]
			c := ins.Class()
			if ins.Dst <= ir.RAX && ins.Src <= ir.RAX {
				switch c {
				case ir.ClassLDX:
					if ins.Src == ir.R10 {
						note(ins.Off)
					}
				case ir.ClassST:
					if ins.Mode() != ir.ModeNOSPEC && ins.Dst == ir.R10 {
						note(ins.Off)
					}
				case ir.ClassSTX:
					if ins.Dst == ir.R10 {
						note(ins.Off)
					}
				}
			}
			if !c.IsJump() {
				next := i + 1
				if ins.IsLdImm64() {
					next = i + 2
				}
				if next >= f.End || seen[next-f.Start] {
					break
				}
				seen[next-f.Start] = true
				i = next
				continue
			}
			var err error
			buf, err = succs(p, i, buf[:0])
			if err != nil {
				return 0, err
			}
			for _, t := range buf {
				if t >= f.Start && t < f.End && !seen[t-f.Start] {
					seen[t-f.Start] = true
					work = append(work, t)
				}
			}
			break
		}
	}
	return depth, nil
}
