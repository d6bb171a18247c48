// Package pipeline runs an ordered list of passes over an ir.Program, with a
// registry of passes by name so that embedders can list, disable, reorder,
// replace or add passes, and with per-pass timing and dumps through zap.
//
// A pass never reaches into the backend: it transforms the program and the
// data the program carries (aux entries, Funcs, UsesArena), which is all the
// backend reads.
//
// # Writing a pass
//
// A pass is any type with Name and Run (and optionally Describe, shown by
// `bpfc passes`). Run edits the program in place; ir.Program's Patch,
// Insert and Remove keep jump offsets and aux data consistent, and
// inserted instructions get Aux.OrigIndex -1. An error should be an
// *ir.Error naming the instruction; Run wraps it as "pass NAME: ...".
//
//	pl := passes.Default(passes.Options{})
//	pl.InsertAfter("fixups", myPass{})
//	res, err := pl.Run(prog, &pipeline.Context{Logger: log})
//
// # Statistics and dumps
//
// Run returns a Result with one Stat per pass that ran (time, instruction
// counts before and after, instructions changed: compared by original
// index, encoding and aux data, see Diff) and, for the passes DumpAfter
// names ("all" for every pass), a Snapshot of the program after the pass
// with the changed instructions marked. Each snapshot is also handed to
// the Dumper, by default LogDump, which logs it at info level as one entry
// per pass. With a JSON zap encoder that entry is one JSON object per pass
// whose fields are stable:
//
//	msg       "dump"
//	pass      the pass's name
//	duration  the pass's time (seconds, in zap's production encoding)
//	insns     the number of slots after the pass
//	changed   how many of them the pass changed
//	program   one string per slot: "*" when changed (else " "), the
//	          index, ": ", the instruction in verifier-log syntax
//	orig      one number per slot: its index in the program as loaded
//	          (ir.Aux.OrigIndex; -1 for inserted slots), to line
//	          instructions up across passes
//
// plus the logger's own fields (bpfc adds file and prog).
package pipeline

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bpfc/bpfc/ir"
)

// Pass is one transformation or analysis of a program.
type Pass interface {
	// Name is the pass's registry name (lower case, dashes).
	Name() string
	// Run transforms p in place. An error stops the pipeline.
	Run(p *ir.Program, ctx *Context) error
}

// Describer is implemented by passes that give a one-line description for
// `bpfc passes`.
type Describer interface {
	Describe() string
}

// Context carries what passes need besides the program: settings from the
// driver and the target, and the logger.
type Context struct {
	// Logger receives per-pass timing at debug level and dumps; never nil
	// once Run has started (a nop logger by default).
	Logger *zap.Logger
	// File names the input in error messages.
	File string

	// FromXlated: the program is the kernel's xlated copy; the verifier's
	// rewrites are done and only what the JIT needs is derived.
	FromXlated bool
	// ForceZext inserts an explicit zero-extension after every 32-bit
	// definition whose upper half is read (targets without implicit zext).
	ForceZext bool
	// Symbols maps map, arena-global and other symbol names to the addresses
	// ld_imm64 should load.
	Symbols map[string]uint64
	// KernVMStart and UserVMStart are the arena bases.
	KernVMStart, UserVMStart uint64
}

// Stat is what one pass did.
type Stat struct {
	Pass        string
	Duration    time.Duration
	InsnsBefore int
	InsnsAfter  int
	Changed     int // instructions whose encoding or aux changed, or were inserted/removed
}

// Result is what a pipeline run did, pass by pass.
type Result struct {
	Stats []Stat
	// Snapshots holds the program after each pass named in DumpAfter.
	Snapshots []Snapshot
}

// Snapshot is the program as it stood after a pass.
type Snapshot struct {
	Pass    string
	Program *ir.Program
	Changed []bool // per instruction of Program: differs from before the pass
}

type slot struct {
	pass    Pass
	enabled bool
}

// Pipeline is an ordered list of passes. The zero value is empty and usable.
type Pipeline struct {
	slots []slot
	// DumpAfter names passes after which the program is dumped (logged at
	// info level and kept in Result.Snapshots); "all" dumps after each.
	DumpAfter []string
	// Dumper renders a snapshot to the logger; nil uses LogDump.
	Dumper func(log *zap.Logger, s Snapshot, st Stat)
}

// New returns a pipeline of the given passes in order.
func New(passes ...Pass) *Pipeline {
	pl := &Pipeline{}
	for _, p := range passes {
		pl.Append(p)
	}
	return pl
}

// Append adds a pass at the end.
func (pl *Pipeline) Append(p Pass) { pl.slots = append(pl.slots, slot{pass: p, enabled: true}) }

func (pl *Pipeline) index(name string) int {
	for i, s := range pl.slots {
		if s.pass.Name() == name {
			return i
		}
	}
	return -1
}

func (pl *Pipeline) insertAt(i int, p Pass) {
	pl.slots = append(pl.slots, slot{})
	copy(pl.slots[i+1:], pl.slots[i:])
	pl.slots[i] = slot{pass: p, enabled: true}
}

// InsertAfter inserts p after the pass called name.
func (pl *Pipeline) InsertAfter(name string, p Pass) error {
	i := pl.index(name)
	if i < 0 {
		return fmt.Errorf("no pass %q in the pipeline", name)
	}
	pl.insertAt(i+1, p)
	return nil
}

// InsertBefore inserts p before the pass called name.
func (pl *Pipeline) InsertBefore(name string, p Pass) error {
	i := pl.index(name)
	if i < 0 {
		return fmt.Errorf("no pass %q in the pipeline", name)
	}
	pl.insertAt(i, p)
	return nil
}

// Replace puts p in the place of the pass called name.
func (pl *Pipeline) Replace(name string, p Pass) error {
	i := pl.index(name)
	if i < 0 {
		return fmt.Errorf("no pass %q in the pipeline", name)
	}
	pl.slots[i] = slot{pass: p, enabled: true}
	return nil
}

// Remove takes the pass called name out of the pipeline.
func (pl *Pipeline) Remove(name string) error {
	i := pl.index(name)
	if i < 0 {
		return fmt.Errorf("no pass %q in the pipeline", name)
	}
	pl.slots = append(pl.slots[:i], pl.slots[i+1:]...)
	return nil
}

// SetEnabled enables or disables the pass called name.
func (pl *Pipeline) SetEnabled(name string, on bool) error {
	i := pl.index(name)
	if i < 0 {
		return fmt.Errorf("no pass %q in the pipeline", name)
	}
	pl.slots[i].enabled = on
	return nil
}

// Passes returns the passes in order, with whether each is enabled.
func (pl *Pipeline) Passes() (passes []Pass, enabled []bool) {
	for _, s := range pl.slots {
		passes = append(passes, s.pass)
		enabled = append(enabled, s.enabled)
	}
	return passes, enabled
}

// Names returns the names of the passes in order.
func (pl *Pipeline) Names() []string {
	var names []string
	for _, s := range pl.slots {
		names = append(names, s.pass.Name())
	}
	return names
}

func (pl *Pipeline) dumps(name string) bool {
	for _, d := range pl.DumpAfter {
		if d == "all" || d == name {
			return true
		}
	}
	return false
}

// Run runs the enabled passes over p in order. An error from a pass is
// returned wrapped with the pass's name.
func (pl *Pipeline) Run(p *ir.Program, ctx *Context) (*Result, error) {
	if ctx == nil {
		ctx = &Context{}
	}
	if ctx.Logger == nil {
		ctx.Logger = zap.NewNop()
	}
	for _, d := range pl.DumpAfter {
		if d != "all" && pl.index(d) < 0 {
			return nil, fmt.Errorf("--dump-after: no pass %q in the pipeline (passes: %v)", d, pl.Names())
		}
	}
	res := &Result{}
	log := ctx.Logger
	debug := log.Core().Enabled(zap.DebugLevel)
	for _, s := range pl.slots {
		if !s.enabled {
			continue
		}
		name := s.pass.Name()
		dump := pl.dumps(name)
		var before *ir.Program
		if debug || dump {
			before = p.Clone()
		}
		n0 := p.Len()
		t0 := time.Now()
		err := s.pass.Run(p, ctx)
		st := Stat{Pass: name, Duration: time.Since(t0), InsnsBefore: n0, InsnsAfter: p.Len()}
		if err != nil {
			return res, fmt.Errorf("pass %s: %w", name, err)
		}
		var changed []bool
		if before != nil {
			changed = Diff(before, p)
			for _, c := range changed {
				if c {
					st.Changed++
				}
			}
		}
		res.Stats = append(res.Stats, st)
		if debug {
			log.Debug("pass",
				zap.String("pass", name),
				zap.Duration("duration", st.Duration),
				zap.Int("insns_before", st.InsnsBefore),
				zap.Int("insns_after", st.InsnsAfter),
				zap.Int("changed", st.Changed))
		}
		if dump {
			snap := Snapshot{Pass: name, Program: p.Clone(), Changed: changed}
			res.Snapshots = append(res.Snapshots, snap)
			dumper := pl.Dumper
			if dumper == nil {
				dumper = LogDump
			}
			dumper(log, snap, st)
		}
	}
	return res, nil
}

// Diff marks the instructions of after that differ from before: by
// original index where both carry one, else by position.
func Diff(before, after *ir.Program) []bool {
	changed := make([]bool, after.Len())
	byOrig := make(map[int32]int, before.Len())
	for i, a := range before.Aux {
		if a.OrigIndex >= 0 {
			byOrig[a.OrigIndex] = i
		}
	}
	for i := range after.Insns {
		o := after.Aux[i].OrigIndex
		j, ok := byOrig[o]
		if o < 0 || !ok {
			changed[i] = true
			continue
		}
		if before.Insns[j] != after.Insns[i] || !sameAux(before.Aux[j], after.Aux[i]) {
			changed[i] = true
		}
	}
	return changed
}

func sameAux(a, b ir.Aux) bool {
	return a.ZextDst == b.ZextDst && a.PtrType == b.PtrType && a.Symbol == b.Symbol && a.SymbolKind == b.SymbolKind
}

// LogDump logs a snapshot at info level: one entry per pass with the program
// text, changed instructions marked with '*'.
func LogDump(log *zap.Logger, s Snapshot, st Stat) {
	lines := make([]string, 0, s.Program.Len())
	orig := make([]int32, 0, s.Program.Len())
	for i := range s.Program.Insns {
		orig = append(orig, s.Program.Aux[i].OrigIndex)
		mark := " "
		if s.Changed != nil && s.Changed[i] {
			mark = "*"
		}
		lines = append(lines, fmt.Sprintf("%s %4d: %s", mark, i, s.Program.Format(i)))
	}
	log.Info("dump",
		zap.String("pass", s.Pass),
		zap.Duration("duration", st.Duration),
		zap.Int("insns", s.Program.Len()),
		zap.Int("changed", st.Changed),
		zap.Strings("program", lines),
		zap.Int32s("orig", orig))
}

// Registry maps pass names to constructors.
type Registry struct {
	mu    sync.RWMutex
	makes map[string]func() Pass
}

// Register adds a pass constructor under the name its passes report.
func (r *Registry) Register(name string, mk func() Pass) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.makes == nil {
		r.makes = map[string]func() Pass{}
	}
	r.makes[name] = mk
}

// New constructs the pass called name.
func (r *Registry) New(name string) (Pass, error) {
	r.mu.RLock()
	mk, ok := r.makes[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown pass %q", name)
	}
	return mk(), nil
}

// Names lists the registered passes, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.makes))
	for n := range r.makes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Default is the process-wide registry the passes package registers into.
var Default = &Registry{}
