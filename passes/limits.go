package passes

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
)

// Kernel limits the verifier's check_max_stack_depth enforces (Linux 6.18,
// include/linux/bpf.h and kernel/bpf/verifier.c).
const (
	// MaxStack is MAX_BPF_STACK: the bytes one function may use below its
	// r10, and the combined stack of every call chain.
	MaxStack = 512
	// MaxCallFrames is MAX_CALL_FRAMES: main plus at most seven nested
	// bpf-to-bpf calls (or callbacks).
	MaxCallFrames = 8
)

// checkStackLimits rejects what check_max_stack_depth rejects, once
// StackDepth has filled funcs[k].StackDepth:
//
//   - a function whose frame is over MaxStack bytes (the error names its
//     deepest direct r10 access when there is one);
//   - a call chain from main of more than MaxCallFrames frames ("the call
//     stack of N frames is too deep");
//   - a call chain whose frames, each rounded up to 16 bytes as with the JIT
//     on, add up to more than MaxStack ("combined stack size ... Too
//     large");
//   - a cycle in the call graph (recursion).
//
// Calls and callback references (ld_imm64 of a function) are the edges, as
// in the kernel's walk. The errors name the instruction of the call that
// goes too deep.
func checkStackLimits(p *ir.Program, funcs []ir.Func) error {
	for k, f := range funcs {
		if int(f.StackDepth) > MaxStack {
			at := f.Start
			deepest := 0
			for i := f.Start; i < f.End; i++ {
				ins := p.Insns[i]
				if i > f.Start && p.Insns[i-1].IsLdImm64() {
					continue
				}
				var base ir.Register
				switch ins.Class() {
				case ir.ClassLDX:
					base = ins.Src
				case ir.ClassST, ir.ClassSTX:
					base = ins.Dst
				default:
					continue
				}
				if base == ir.R10 && int(ins.Off) < deepest {
					deepest, at = int(ins.Off), i
				}
			}
			return &ir.Error{Index: at, Reason: fmt.Sprintf("function %s uses %d bytes of stack, more than the kernel's limit of %d (MAX_BPF_STACK)", funcName(f, k), f.StackDepth, MaxStack)}
		}
	}
	// calls[k]: (instruction, callee) pairs of function k.
	type call struct{ at, callee int }
	calls := make([][]call, len(funcs))
	for k, f := range funcs {
		for i := f.Start; i < f.End; i++ {
			ins := p.Insns[i]
			if ins.IsPseudoCall() || ins.IsPseudoFunc() {
				t := p.Target(i)
				if c := ir.FuncOf(funcs, t); c < len(funcs) && funcs[c].Start == t {
					calls[k] = append(calls[k], call{i, c})
				}
			}
			if ins.IsLdImm64() {
				i++
			}
		}
	}
	if len(funcs) == 0 {
		return nil
	}
	// frames[k], stack[k]: the deepest chain starting at k (memoized, so
	// the walk is linear in the call graph); color finds cycles.
	frames := make([]int, len(funcs))
	stack := make([]int, len(funcs))
	color := make([]uint8, len(funcs)) // 0 new, 1 on the path, 2 done
	var visit func(k int) error
	visit = func(k int) error {
		color[k] = 1
		frames[k], stack[k] = 1, roundUp16(int(funcs[k].StackDepth))
		for _, c := range calls[k] {
			switch color[c.callee] {
			case 1:
				return &ir.Error{Index: c.at, Reason: fmt.Sprintf("recursive call of %s (the kernel rejects cycles in the call graph)", funcName(funcs[c.callee], c.callee))}
			case 0:
				if err := visit(c.callee); err != nil {
					return err
				}
			}
			frames[k] = max(frames[k], 1+frames[c.callee])
			stack[k] = max(stack[k], roundUp16(int(funcs[k].StackDepth))+stack[c.callee])
		}
		color[k] = 2
		return nil
	}
	if err := visit(0); err != nil {
		return err
	}
	// Follow the deepest chain from main to the call that breaks a limit.
	for k, n, d := 0, 1, roundUp16(int(funcs[0].StackDepth)); ; {
		next := -1
		for _, c := range calls[k] {
			if n+1 > MaxCallFrames {
				return &ir.Error{Index: c.at, Reason: fmt.Sprintf("the call of %s makes the call stack %d frames deep, more than the kernel's limit of %d (MAX_CALL_FRAMES)", funcName(funcs[c.callee], c.callee), n+1, MaxCallFrames)}
			}
			if s := d + roundUp16(int(funcs[c.callee].StackDepth)); s > MaxStack {
				return &ir.Error{Index: c.at, Reason: fmt.Sprintf("combined stack size of %d calls is %d bytes, more than the kernel's limit of %d (MAX_BPF_STACK)", n+1, s, MaxStack)}
			}
			if n+frames[c.callee] > MaxCallFrames || d+stack[c.callee] > MaxStack {
				next = c.callee
				break
			}
		}
		if next < 0 {
			return nil
		}
		k, n, d = next, n+1, d+roundUp16(int(funcs[next].StackDepth))
	}
}

func roundUp16(n int) int { return (n + 15) &^ 15 }

func funcName(f ir.Func, k int) string {
	if f.Name != "" {
		return f.Name
	}
	if k == 0 {
		return "main"
	}
	return fmt.Sprintf("at instruction %d", f.Start)
}
