package amd64

import (
	"fmt"

	"github.com/bpfc/bpfc/extable"
	"github.com/bpfc/bpfc/ir"
)

// Image is a compiled program.
type Image struct {
	Funcs  []Func // one per BPF function, in program order
	Passes int    // layout passes taken (max over functions), as the kernel counts
}

// Func is one compiled function.
type Func struct {
	Code     []byte          // machine code (len = the kernel's jited_func_len)
	ExecAddr uint64          // where it runs: what rel32s were computed against
	Addrs    []int32         // kernel addrs[]: Addrs[0] = prologue length, Addrs[i] = end of instruction i-1 (= start of instruction i), function-relative; for the second slot of a ld_imm64 (which the kernel never updates) the ld_imm64's end
	Extable  []extable.Entry // in code order, placed at roundup(len(Code),4) after the code
	Passes   int             // layout passes the kernel takes for this function
	Start    int             // first slot of the function in the program
}

// Code returns all functions' code concatenated (the kernel's
// jited_prog_insns).
func (im *Image) Code() []byte {
	n := 0
	for _, f := range im.Funcs {
		n += len(f.Code)
	}
	out := make([]byte, 0, n)
	for _, f := range im.Funcs {
		out = append(out, f.Code...)
	}
	return out
}

// ExtableAddr is the exec address of the function's first extable entry.
func (f *Func) ExtableAddr() uint64 { return f.ExecAddr + uint64(roundUp4(len(f.Code))) }

// Table returns the function's exception table at its exec address.
func (f *Func) Table() *extable.Table {
	return &extable.Table{Base: f.ExtableAddr(), Entries: f.Extable}
}

// Compile lays out p and writes every function into a fresh buffer. The
// exec address of function k is execBase[k]; missing entries are 0 for the
// first function and the previous function's address plus its buffer size
// rounded up to 64 (the kernel's pack chunk) for the others.
func Compile(p *ir.Program, t Target, execBase []uint64) (*Image, error) {
	l, err := NewLayout(p, t)
	if err != nil {
		return nil, err
	}
	return l.Compile(execBase)
}

// ExecAddrs returns the exec address of every function following Compile's
// defaulting rule for missing execBase entries.
func (l *Layout) ExecAddrs(execBase []uint64) []uint64 {
	addrs := make([]uint64, len(l.funcs))
	for k := range l.funcs {
		switch {
		case k < len(execBase):
			addrs[k] = execBase[k]
		case k > 0:
			addrs[k] = addrs[k-1] + uint64((l.Size(k-1)+63)&^63)
		}
	}
	return addrs
}

// Compile writes every function into a fresh buffer (see Compile).
func (l *Layout) Compile(execBase []uint64) (*Image, error) {
	addrs := l.ExecAddrs(execBase)
	total := 0
	for k := range l.funcs {
		total += l.Size(k)
	}
	buf := make([]byte, total)
	im := &Image{Funcs: make([]Func, len(l.funcs))}
	for k := range l.funcs {
		n := l.Size(k)
		f, err := l.Write(k, buf[:n:n], addrs[k], addrs)
		if err != nil {
			return nil, err
		}
		buf = buf[n:]
		im.Funcs[k] = *f
		if f.Passes > im.Passes {
			im.Passes = f.Passes
		}
	}
	return im, nil
}

// Write writes function k into rw (at least Size(k) bytes) for execution
// at exec, with every relative offset (jumps, calls, extable) computed
// against exec. funcAddrs gives the exec address of every function, for
// bpf-to-bpf calls and function references (nil: only this function, at
// exec). The returned Func's Code aliases rw.
func (l *Layout) Write(k int, rw []byte, exec uint64, funcAddrs []uint64) (fn *Func, err error) {
	defer func() {
		if r := recover(); r != nil {
			fn, err = nil, &ir.Error{Index: -1, Reason: fmt.Sprintf("internal error in the backend: %v", r)}
		}
	}()
	if k < 0 || k >= len(l.funcs) {
		return nil, &ir.Error{Index: -1, Reason: fmt.Sprintf("no function %d", k)}
	}
	f := l.funcs[k]
	if len(rw) < l.Size(k) {
		return nil, &ir.Error{Index: f.start, Reason: fmt.Sprintf("function %d needs a %d-byte buffer, got %d", k, l.Size(k), len(rw))}
	}
	if funcAddrs == nil && len(l.funcs) == 1 {
		funcAddrs = []uint64{exec}
	}
	addrs := make([]int32, f.n+1)
	code := f.code
	pos := int32(0)
	segStart := f.prologue
	copy(rw, code[:f.prologue])
	pos = f.prologue
	fill := func(first, last int32, base int32) { // addrs of a run of fixed instructions
		d := base - f.fixOff[first]
		for t, o := range f.fixOff[first : last+1] {
			addrs[first+int32(t)] = o + d
		}
	}
	for s := range f.vars {
		v := &f.vars[s]
		first := f.segFirst(s)
		fill(first, v.j, segStart)
		pos += int32(copy(rw[pos:], code[f.fixOff[first]:f.fixOff[v.j]+int32(v.prefix)]))
		end := f.segEnd[s]
		fm := f.form[s]
		var target int32
		switch {
		case v.kind == vExit:
			target = f.finalSegStart(int(f.feSeg)) + f.feOff
		case v.minus2:
			target = end - 2
		default:
			target = f.finalSegStart(int(v.tseg)) + v.toff
		}
		rel := int64(target) - int64(end)
		w := rw[pos:pos]
		switch fm & 3 {
		case formShort:
			for n := int(fm >> 2); n > 0; {
				c := min(n, l.t.nopMax())
				w = append(w, nops[c]...)
				n -= c
			}
			if !isImm8(rel) {
				return nil, insnErr(f.start+int(v.j), "short jump displacement %d out of range", rel)
			}
			if v.kind == vCond {
				w = append(w, v.cc, byte(rel))
			} else {
				w = append(w, 0xEB, byte(rel))
			}
		case formNear:
			if !isSimm32(rel) {
				return nil, insnErr(f.start+int(v.j), "jump displacement %d out of range", rel)
			}
			if v.kind == vCond {
				w = append(w, 0x0F, v.cc+0x10)
			} else {
				w = append(w, 0xE9)
			}
			w = le32(w, uint32(rel))
		case formZero:
			for n := int(fm >> 2); n > 0; {
				c := min(n, l.t.nopMax())
				w = append(w, nops[c]...)
				n -= c
			}
		}
		pos += int32(len(w))
		if pos != end {
			return nil, insnErr(f.start+int(v.j), "final pass placed the instruction's end at %d, the layout at %d", pos, end)
		}
		segStart = end
	}
	first := f.segFirst(len(f.vars))
	fill(first, int32(f.n), segStart)
	pos += int32(copy(rw[pos:], code[f.fixOff[first]:f.fixOff[f.n]]))
	if pos != f.size {
		return nil, insnErr(f.start, "function %d: final pass wrote %d bytes, the layout has %d", k, pos, f.size)
	}
	// Relocations.
	var tmp emitter
	for _, r := range f.relocs {
		at := addrs[r.j] + r.off
		var target uint64
		switch r.kind {
		case rAbs:
			target = r.val
		case rFunc, rImm64Fn:
			if int(r.val) >= len(funcAddrs) {
				return nil, insnErr(f.start+int(r.j), "no exec address for function %d", r.val)
			}
			target = funcAddrs[r.val]
		}
		if r.kind == rImm64Fn {
			tmp.b = tmp.b[:0]
			tmp.movImm64(r.reg, target)
			if int32(len(tmp.b)) != r.size {
				return nil, insnErr(f.start+int(r.j), "function address %#x needs %d bytes, the layout reserved %d (PseudoFuncAddr %#x)", target, len(tmp.b), r.size, l.t.PseudoFuncAddr)
			}
			copy(rw[at:], tmp.b)
			continue
		}
		rel := int64(target - (exec + uint64(at) + 4))
		if !isSimm32(rel) {
			return nil, insnErr(f.start+int(r.j), "call target %#x is out of rel32 range from %#x", target, exec+uint64(at))
		}
		putLE32(rw[at:], uint32(rel))
	}
	out := &Func{Code: rw[:f.size:f.size], ExecAddr: exec, Addrs: addrs, Passes: f.passes, Start: f.start}
	if len(f.ex) > 0 || l.Size(k) > int(f.size) {
		exOff := int32(roundUp4(int(f.size)))
		for q := f.size; q < exOff; q++ {
			rw[q] = 0xCC
		}
		out.Extable = make([]extable.Entry, len(f.ex))
		for q, e := range f.ex {
			insnAt := addrs[e.j] + e.off
			ent := extable.Entry{Insn: insnAt - (exOff + int32(q)*extable.EntrySize), Fixup: e.fixup, Data: e.data}
			ent.Put(rw[exOff+int32(q)*extable.EntrySize:])
			out.Extable[q] = ent
		}
	}
	return out, nil
}

// finalSegStart is the start of segment seg after layout.
func (f *funcCode) finalSegStart(seg int) int32 {
	if seg == 0 {
		return f.prologue
	}
	return f.segEnd[seg-1]
}
