// Package helpers is the registry of BPF helper functions and kfuncs that
// bpfc's executors (the interpreter in interp and the compiled-code runner
// in vm) call when a program executes BPF_CALL.
//
// A helper is a Go function of the five argument registers r1..r5 that
// returns r0. It reaches the running program's memory, arena and trace
// output through a *Context that the executor owns; pointers a program passes
// are real addresses in the process (the executor's stack, the supplied
// memory regions, the arena's views), and Context.Mem checks them, so a
// helper never dereferences a wild pointer. A helper can end the program
// (Context.Stop, as the conformance suite's "unwind" helper does) or fail it
// with an error (Context.Abort).
//
// Helpers are found by id (src_reg 0 calls, the kernel's enum bpf_func_id),
// kfuncs by name (the ELF loader records the name of each kfunc call in the
// instruction's aux data) or by BTF id. Registries are plain values built
// once and then only read, so any number of runs can share one. Two sets are
// predefined: Kernel (a few common kernel helpers with their kernel ids plus
// the arena kfuncs) and Conformance (helper 5 is the bpf_conformance suite's
// "unwind", as in ubpf, plus the arena kfuncs).
package helpers

import (
	"fmt"
	"io"
	"sort"

	"github.com/bpfc/bpfc/arena"
)

// Func is a helper or kfunc: r1..r5 in, r0 out.
type Func func(c *Context, r1, r2, r3, r4, r5 uint64) uint64

// Helper is one registered function.
type Helper struct {
	ID   int32  // helper id, or BTF id for a kfunc (0: by name only)
	Name string // e.g. "bpf_ktime_get_ns"
	Fn   Func
}

// Memory is the executor's view of the memory a program may touch. Bytes
// returns the n bytes at addr when they all lie in one accessible region
// (writable when write is set), else nil.
type Memory interface {
	Bytes(addr uint64, n int, write bool) []byte
}

// Context is what a helper sees of the run that called it. Executors create
// one per run (or reuse it after Reset).
type Context struct {
	Mem   Memory       // the run's memory (never nil while a helper runs)
	Arena *arena.Arena // the program's arena, nil without one
	Trace io.Writer    // bpf_trace_printk output; nil discards it
	// Maps are the maps the map helpers reach, by the address a ld_imm64
	// of the map loads (Map.Addr; MapSet builds it).
	Maps map[uint64]*Map
	// Rand is the state of bpf_get_prandom_u32 (xorshift); a run may seed it.
	Rand uint64
	// Clock returns bpf_ktime_get_ns; nil means the monotonic clock.
	Clock func() uint64
	// User is free for the embedder.
	User any

	stopped bool
	ret     uint64
	err     error
}

// Stop ends the program after the helper returns, with r0 = ret.
func (c *Context) Stop(ret uint64) { c.stopped, c.ret = true, ret }

// Abort fails the program with err after the helper returns.
func (c *Context) Abort(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Stopped reports whether a helper asked the program to stop, and its r0.
func (c *Context) Stopped() (ret uint64, ok bool) { return c.ret, c.stopped }

// Err returns the error a helper aborted with, or nil.
func (c *Context) Err() error { return c.err }

// Interrupted reports Stop or Abort: the executor checks it after a call.
func (c *Context) Interrupted() bool { return c.stopped || c.err != nil }

// Reset clears Stop/Abort state for another run.
func (c *Context) Reset() { c.stopped, c.ret, c.err = false, 0, nil }

// Registry maps helper ids and kfunc names/BTF ids to functions.
type Registry struct {
	byID    map[int32]Helper
	kByName map[string]Helper
	kByID   map[int32]Helper
	table   []Func // dense copy of byID for small ids
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byID: map[int32]Helper{}, kByName: map[string]Helper{}, kByID: map[int32]Helper{}}
}

// Register adds helper id (replacing any earlier one with that id).
func (r *Registry) Register(id int32, name string, fn Func) *Registry {
	if fn == nil {
		panic("helpers: nil function for " + name)
	}
	r.byID[id] = Helper{ID: id, Name: name, Fn: fn}
	if id >= 0 && id < 1024 {
		for int(id) >= len(r.table) {
			r.table = append(r.table, nil)
		}
		r.table[id] = fn
	}
	return r
}

// RegisterKfunc adds a kfunc by name and, when btfID != 0, by BTF id.
func (r *Registry) RegisterKfunc(name string, btfID int32, fn Func) *Registry {
	if fn == nil {
		panic("helpers: nil function for " + name)
	}
	h := Helper{ID: btfID, Name: name, Fn: fn}
	r.kByName[name] = h
	if btfID != 0 {
		r.kByID[btfID] = h
	}
	return r
}

// SetKfuncID gives an already registered kfunc a BTF id (for example the id
// the live kernel's vmlinux BTF uses); false if name is not registered.
func (r *Registry) SetKfuncID(name string, btfID int32) bool {
	h, ok := r.kByName[name]
	if !ok {
		return false
	}
	h.ID = btfID
	r.kByName[name] = h
	r.kByID[btfID] = h
	return true
}

// Helper returns helper id.
func (r *Registry) Helper(id int32) (Helper, bool) {
	if id >= 0 && int(id) < len(r.table) && r.table[id] != nil {
		return r.byID[id], true
	}
	h, ok := r.byID[id]
	return h, ok
}

// Func returns the function of helper id, nil if there is none (fast path).
func (r *Registry) Func(id int32) Func {
	if id >= 0 && int(id) < len(r.table) {
		return r.table[id]
	}
	return r.byID[id].Fn
}

// Kfunc returns a kfunc by name.
func (r *Registry) Kfunc(name string) (Helper, bool) {
	h, ok := r.kByName[name]
	return h, ok
}

// KfuncByID returns a kfunc by BTF id.
func (r *Registry) KfuncByID(id int32) (Helper, bool) {
	h, ok := r.kByID[id]
	return h, ok
}

// ResolveKfunc finds the kfunc a call names: by name when the loader
// recorded one, else by BTF id.
func (r *Registry) ResolveKfunc(name string, btfID int32) (Helper, error) {
	if name != "" {
		if h, ok := r.kByName[name]; ok {
			return h, nil
		}
		return Helper{}, fmt.Errorf("unknown kfunc %s", name)
	}
	if h, ok := r.kByID[btfID]; ok {
		return h, nil
	}
	return Helper{}, fmt.Errorf("unknown kfunc with BTF id %d", btfID)
}

// Helpers lists the registered helpers by id.
func (r *Registry) Helpers() []Helper {
	out := make([]Helper, 0, len(r.byID))
	for _, h := range r.byID {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Kfuncs lists the registered kfuncs by name.
func (r *Registry) Kfuncs() []Helper {
	out := make([]Helper, 0, len(r.kByName))
	for _, h := range r.kByName {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Clone returns an independent copy to extend.
func (r *Registry) Clone() *Registry {
	c := NewRegistry()
	for _, h := range r.Helpers() {
		c.Register(h.ID, h.Name, h.Fn)
	}
	for _, h := range r.kByName {
		c.RegisterKfunc(h.Name, h.ID, h.Fn)
	}
	return c
}
