package ir

import (
	"fmt"
	"math"
	"slices"
)

// Program editing, as the kernel's verifier does it (bpf_patch_insn_data,
// bpf_patch_insn_single, bpf_adj_branches, bpf_remove_insns,
// verifier_remove_insns): instructions are replaced, inserted or removed and
// every jump, bpf-to-bpf call and function reference (ld_imm64 src=4)
// elsewhere in the program is adjusted so that it still reaches the same
// instruction. The adjustment rule is the kernel's: for an edit that turns
// slots [pos, pos+old) into [pos, pos+new), an instruction before pos whose
// target is at or after pos+old moves its target by new-old, and an
// instruction after the edit whose target is before it moves the other way.
// A jump to pos itself keeps pointing at pos, which is the first instruction
// of the replacement. Offsets inside a replacement are the caller's: they are
// relative to the replacement's own positions, as in the kernel. An offset
// that no longer fits its field (off: int16; gotol, call and function
// reference imm: int32) is an error, like the kernel's -ERANGE, and leaves the
// program untouched.

// SlotLen returns the number of slots of the instruction at i: 2 for a
// ld_imm64, else 1.
func (p *Program) SlotLen(i int) int {
	if i >= 0 && i+1 < len(p.Insns) && p.Insns[i].IsLdImm64() {
		return 2
	}
	return 1
}

// isSecondHalf reports whether slot i is the second slot of a ld_imm64
// (pairing slots from the start, as Validate does). A run of consecutive
// slots with the ld_imm64 opcode starts at an instruction boundary (the slot
// before it has another opcode, so it is a whole instruction or a second
// half), and pairs alternate inside the run, so the parity of the run ending
// at i-1 decides.
func (p *Program) isSecondHalf(i int) bool {
	run := 0
	for k := i - 1; k >= 0 && p.Insns[k].IsLdImm64(); k-- {
		run++
	}
	return run%2 == 1
}

// hasTarget reports the instructions whose jump distance the editor adjusts:
// the kernel's bpf_adj_branches touches every JMP/JMP32 other than exit and
// non-local calls, bpf-to-bpf calls and function references.
func hasTarget(ins Instruction) bool {
	if ins.IsPseudoFunc() || ins.IsPseudoCall() {
		return true
	}
	c := ins.Class()
	if !c.IsJump() {
		return false
	}
	op := ins.JumpOp()
	return op != JumpExit && op != JumpCall
}

// fieldFits reports whether a jump distance fits the field it lives in.
func fieldFits(ins Instruction, d int64) bool {
	if ins.UsesImmDelta() {
		return d >= math.MinInt32 && d <= math.MaxInt32
	}
	return d >= math.MinInt16 && d <= math.MaxInt16
}

func setDelta(ins *Instruction, d int64) {
	if ins.UsesImmDelta() {
		ins.Imm = int32(d)
	} else {
		ins.Off = int16(d)
	}
}

func (p *Program) checkIndex(i int, what string) error {
	if len(p.Aux) != len(p.Insns) {
		return &Error{Index: -1, Reason: fmt.Sprintf("program has %d aux entries for %d instructions", len(p.Aux), len(p.Insns))}
	}
	if i < 0 || i >= len(p.Insns) {
		return &Error{Index: i, Reason: fmt.Sprintf("cannot %s: index outside the program of %d instructions", what, len(p.Insns))}
	}
	if p.isSecondHalf(i) {
		return errAt(i, "cannot %s the second half of a ld_imm64", what)
	}
	return nil
}

type fix struct {
	at int   // old index
	d  int64 // new jump distance
}

// adjustments computes the new jump distances for an edit of [pos, endOld)
// into newLen slots, following bpf_adj_delta_to_off/_imm.
func (p *Program) adjustments(pos, endOld, newLen int) ([]fix, error) {
	delta := int64(newLen - (endOld - pos))
	var fixes []fix
	for j := 0; j < len(p.Insns); j++ {
		ins := p.Insns[j]
		if j >= pos && j < endOld {
			if ins.IsLdImm64() {
				j++
			}
			continue
		}
		if ins.IsLdImm64() && !ins.IsPseudoFunc() {
			j++
			continue
		}
		if !hasTarget(ins) {
			continue
		}
		d := ins.JumpDelta()
		t := int64(j) + 1 + d
		nd := d
		switch {
		case j < pos && t >= int64(endOld):
			nd += delta
		case j >= endOld && t < int64(endOld):
			nd -= delta
		}
		if !fieldFits(ins, nd) {
			return nil, errAt(j, "jump distance %d no longer fits after editing instruction %d (ERANGE)", nd, pos)
		}
		if nd != d {
			fixes = append(fixes, fix{j, nd})
		}
		if ins.IsLdImm64() {
			j++
		}
	}
	return fixes, nil
}

// splice replaces [pos, endOld) by repl with the given aux entries,
// adjusting jumps and functions. fixes come from adjustments.
func (p *Program) splice(pos, endOld int, repl []Instruction, aux []Aux, fixes []fix) {
	delta := len(repl) - (endOld - pos)
	for _, f := range fixes {
		setDelta(&p.Insns[f.at], f.d)
	}
	// In place when the capacity allows (the kernel's memmove), so that a
	// run of patches does not allocate a program each.
	p.Insns = slices.Replace(p.Insns, pos, endOld, repl...)
	p.Aux = slices.Replace(p.Aux, pos, endOld, aux...)
	// adjust_subprog_starts: a function that starts at pos keeps the
	// replacement; later starts and ends move.
	if delta != 0 {
		for k := range p.Funcs {
			f := &p.Funcs[k]
			if f.Start > pos {
				f.Start += delta
			}
			if f.End > pos {
				f.End += delta
			}
		}
	}
}

// Patch replaces the instruction at i (both slots of a ld_imm64) by repl,
// like the kernel's bpf_patch_insn_data. Jumps, calls and function
// references elsewhere are adjusted; those that targeted i now reach
// repl[0]. Offsets inside repl are taken as written (relative to the
// positions repl will occupy). The first replacement slot keeps the
// original Aux (and a ld_imm64 replacing a ld_imm64 keeps the second slot's
// Aux too); every other slot gets a copy of the original Aux with OrigIndex
// -1. Funcs, when set, are kept right: a function starting at i keeps the
// replacement. On error the program is unchanged.
func (p *Program) Patch(i int, repl []Instruction) error {
	if err := p.checkIndex(i, "patch"); err != nil {
		return err
	}
	if len(repl) == 0 {
		return errAt(i, "empty patch (use Remove)")
	}
	old := p.SlotLen(i)
	fixes, err := p.adjustments(i, i+old, len(repl))
	if err != nil {
		return err
	}
	aux := make([]Aux, len(repl))
	for k := range aux {
		aux[k] = p.Aux[i]
		if k > 0 {
			aux[k].OrigIndex = -1
		}
	}
	if old == 2 && len(repl) >= 2 && repl[0].IsLdImm64() {
		aux[1] = p.Aux[i+1]
	}
	p.splice(i, i+old, repl, aux, fixes)
	return nil
}

// Insert puts insns before the instruction at i (i == Len() appends).
// Jumps, calls and function references that targeted i now reach the first
// inserted instruction, as when the verifier patches i with
// [insns..., original]; the original keeps its Aux and its own target, and
// the inserted slots get a copy of its Aux with OrigIndex -1. Offsets inside
// insns are relative to their new positions. On error the program is
// unchanged.
func (p *Program) Insert(i int, insns []Instruction) error {
	if len(insns) == 0 {
		return nil
	}
	if i == len(p.Insns) && len(p.Aux) == len(p.Insns) {
		var base Aux
		if i > 0 {
			base = p.Aux[i-1]
		}
		base.OrigIndex = -1
		for _, ins := range insns {
			p.Insns = append(p.Insns, ins)
			p.Aux = append(p.Aux, base)
		}
		for k := range p.Funcs {
			if p.Funcs[k].End == i {
				p.Funcs[k].End += len(insns)
			}
		}
		return nil
	}
	if err := p.checkIndex(i, "insert before"); err != nil {
		return err
	}
	old := p.SlotLen(i)
	repl := make([]Instruction, 0, len(insns)+old)
	repl = append(repl, insns...)
	repl = append(repl, p.Insns[i:i+old]...)
	fixes, err := p.adjustments(i, i+old, len(repl))
	if err != nil {
		return err
	}
	// The moved original keeps its target: at or before i it stays,
	// after i it moves with the rest of the program.
	moved := len(insns)
	orig := repl[moved]
	if hasTarget(orig) {
		d := orig.JumpDelta()
		t := int64(i) + 1 + d
		if t > int64(i) {
			t += int64(len(insns))
		}
		nd := t - int64(i+moved) - 1
		if !fieldFits(orig, nd) {
			return errAt(i, "jump distance %d no longer fits after inserting %d instructions (ERANGE)", nd, len(insns))
		}
		setDelta(&repl[moved], nd)
	}
	aux := make([]Aux, len(repl))
	for k := 0; k < moved; k++ {
		aux[k] = p.Aux[i]
		aux[k].OrigIndex = -1
	}
	copy(aux[moved:], p.Aux[i:i+old])
	p.splice(i, i+old, repl, aux, fixes)
	return nil
}

// Remove deletes n slots starting at i, like the kernel's
// verifier_remove_insns: jumps, calls and references across the removed
// range are shortened, functions inside it disappear and functions that
// began in it start after it. A jump into the removed range lands on the
// first instruction after it (the kernel leaves such jumps dangling; its
// callers only remove code nothing live reaches); a call or function
// reference into it is an error. The range may not split a ld_imm64 or
// remove the whole program. On error the program is unchanged.
func (p *Program) Remove(i, n int) error {
	if n == 0 {
		return nil
	}
	if n < 0 {
		return errAt(i, "cannot remove %d instructions", n)
	}
	if err := p.checkIndex(i, "remove"); err != nil {
		return err
	}
	end := i + n
	if end > len(p.Insns) {
		return errAt(i, "cannot remove %d instructions: only %d left", n, len(p.Insns)-i)
	}
	if end < len(p.Insns) && p.isSecondHalf(end) {
		return errAt(end-1, "cannot remove the first half of a ld_imm64 without its second half")
	}
	if n == len(p.Insns) {
		return errAt(i, "cannot remove the whole program")
	}
	mapT := func(t int64) int64 {
		switch {
		case t < int64(i):
			return t
		case t < int64(end):
			return int64(i)
		}
		return t - int64(n)
	}
	var fixes []fix
	for j := 0; j < len(p.Insns); j++ {
		ins := p.Insns[j]
		if j >= i && j < end {
			continue
		}
		if ins.IsLdImm64() && !ins.IsPseudoFunc() {
			j++
			continue
		}
		if hasTarget(ins) {
			d := ins.JumpDelta()
			t := int64(j) + 1 + d
			if (ins.IsPseudoCall() || ins.IsPseudoFunc()) && t >= int64(i) && t < int64(end) {
				return errAt(j, "call target %d is removed", t)
			}
			nd := mapT(t) - mapT(int64(j)) - 1
			if !fieldFits(ins, nd) {
				return errAt(j, "jump distance %d does not fit after removing instructions %d..%d", nd, i, end-1)
			}
			if nd != d {
				fixes = append(fixes, fix{j, nd})
			}
		}
		if ins.IsLdImm64() {
			j++
		}
	}
	for _, f := range fixes {
		setDelta(&p.Insns[f.at], f.d)
	}
	p.Insns = append(p.Insns[:i:i], p.Insns[end:]...)
	p.Aux = append(p.Aux[:i:i], p.Aux[end:]...)
	if p.Funcs != nil {
		funcs := p.Funcs[:0]
		for _, f := range p.Funcs {
			f.Start = int(mapT(int64(f.Start)))
			f.End = int(mapT(int64(f.End)))
			if f.End > f.Start {
				funcs = append(funcs, f)
			}
		}
		p.Funcs = funcs
	}
	return nil
}

// Replacement is one edit for PatchAll: the instruction at Index (both slots
// of a ld_imm64) becomes Insns.
type Replacement struct {
	Index int
	Insns []Instruction
}

// PatchAll applies many replacements in one pass over the program: the
// result is exactly that of calling Patch for each of them, from the highest
// Index to the lowest (so offsets inside each replacement are relative to a
// program in which the instructions before it are not yet patched and the
// ones after it are), but the cost is linear in the program instead of
// linear per patch. Indices must be distinct; order does not matter. The
// ERANGE check applies to the final distances (one by one, an intermediate
// distance could overflow where the final one does not). On error the
// program is unchanged.
func (p *Program) PatchAll(reps []Replacement) error {
	if len(reps) == 0 {
		return nil
	}
	n := len(p.Insns)
	if len(p.Aux) != n {
		return &Error{Index: -1, Reason: fmt.Sprintf("program has %d aux entries for %d instructions", len(p.Aux), n)}
	}
	// Slot kinds in one sweep: which slots are second halves.
	second := make([]bool, n)
	for i := 0; i < n; i++ {
		if p.Insns[i].IsLdImm64() && i+1 < n {
			second[i+1] = true
			i++
		}
	}
	repAt := make([]int32, n) // old index -> reps index + 1 (0: not patched)
	for k, r := range reps {
		if r.Index < 0 || r.Index >= n {
			return &Error{Index: r.Index, Reason: fmt.Sprintf("cannot patch: index outside the program of %d instructions", n)}
		}
		if second[r.Index] {
			return errAt(r.Index, "cannot patch the second half of a ld_imm64")
		}
		if len(r.Insns) == 0 {
			return errAt(r.Index, "empty patch (use Remove)")
		}
		if repAt[r.Index] != 0 {
			return errAt(r.Index, "patched twice")
		}
		repAt[r.Index] = int32(k + 1)
	}
	lookup := func(i int) (int, bool) { return int(repAt[i]) - 1, repAt[i] != 0 }
	// shift[i]: how far old slot i moves, i.e. the total growth of the
	// replacements strictly before it. newPos(i) = i + shift[i].
	shift := make([]int, n+1)
	total := 0
	oldLen := make([]int, len(reps))
	for i := 0; i < n; {
		shift[i] = total
		l := 1
		if i+1 < n && second[i+1] {
			l = 2
			shift[i+1] = total
		}
		if k, ok := lookup(i); ok {
			oldLen[k] = l
			total += len(reps[k].Insns) - l
		}
		i += l
	}
	shift[n] = total
	newPos := func(t int64) int64 {
		switch {
		case t < 0:
			return t
		case t > int64(n):
			return t + int64(total)
		}
		return t + int64(shift[t])
	}
	out := make([]Instruction, 0, n+total)
	aux := make([]Aux, 0, n+total)
	for i := 0; i < n; {
		k, ok := lookup(i)
		if !ok {
			ins := p.Insns[i]
			l := 1
			if i+1 < n && second[i+1] {
				l = 2
			}
			if hasTarget(ins) {
				t := int64(i) + 1 + ins.JumpDelta()
				nd := newPos(t) - newPos(int64(i)) - 1
				if !fieldFits(ins, nd) {
					return errAt(i, "jump distance %d no longer fits after patching (ERANGE)", nd)
				}
				setDelta(&ins, nd)
			}
			out = append(out, ins)
			out = append(out, p.Insns[i+1:i+l]...)
			aux = append(aux, p.Aux[i:i+l]...)
			i += l
			continue
		}
		r := reps[k]
		base := int64(len(out)) // final position of the replacement
		for j, ins := range r.Insns {
			if hasTarget(ins) {
				// Target in the coordinates the replacement was
				// written in: unpatched before i, final after.
				at := int64(i + j)
				t := at + 1 + ins.JumpDelta()
				var ft int64
				if t >= int64(i) {
					ft = t + int64(shift[i])
				} else {
					ft = newPos(t)
				}
				nd := ft - (base + int64(j)) - 1
				if !fieldFits(ins, nd) {
					return errAt(i, "jump distance %d in the patch no longer fits (ERANGE)", nd)
				}
				setDelta(&ins, nd)
			}
			out = append(out, ins)
			a := p.Aux[i]
			if j > 0 {
				a.OrigIndex = -1
			}
			aux = append(aux, a)
		}
		if oldLen[k] == 2 && len(r.Insns) >= 2 && r.Insns[0].IsLdImm64() {
			aux[base+1] = p.Aux[i+1]
		}
		i += oldLen[k]
	}
	p.Insns, p.Aux = out, aux
	// adjust_subprog_starts, summed: a function starting at a patched slot
	// keeps the replacement; starts and ends after a patch move with it.
	// (A bound inside a patched ld_imm64 moves with that patch too, as
	// Patch moves every bound greater than the patched index.)
	funcShift := func(x int) int {
		sh := shift[x]
		if x > 0 && x < n && second[x] {
			if k, ok := lookup(x - 1); ok {
				sh += len(reps[k].Insns) - oldLen[k]
			}
		}
		return sh
	}
	for k := range p.Funcs {
		f := &p.Funcs[k]
		if f.Start >= 0 && f.Start <= n {
			f.Start += funcShift(f.Start)
		}
		if f.End >= 0 && f.End <= n {
			f.End += funcShift(f.End)
		}
	}
	return nil
}
