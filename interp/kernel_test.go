package interp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/elf"
)

var updateRuns = flag.Bool("update-runs", false, "run the testdata/arena programs in the live kernel and rewrite testdata/arena_runs.json")

const (
	arenaObjDir = "../testdata/arena"
	runsGolden  = "testdata/arena_runs.json"
	fakeMapAddr = 0xffff_8880_0000_0000 // the arena map "pointer" passed to kfuncs
)

// arenaRun is what one testdata/arena program did in the live kernel with
// BPF_PROG_TEST_RUN: return value, context afterwards and the non-zero
// 64-byte chunks of its arena (user view).
type arenaRun struct {
	Object  string            `json:"object"`
	Program string            `json:"program"`
	CtxIn   string            `json:"ctx_in"`
	Retval  uint32            `json:"retval"`
	CtxOut  string            `json:"ctx_out"`
	Arena   map[string]string `json:"arena"` // hex offset -> 64 bytes hex
	// KernelError is set when the kernel rejected the program: nothing to
	// compare.
	KernelError string `json:"kernel_error,omitempty"`
}

// runInput is the context given to every program: struct args {a, b, c, d;
// ret[4]} of arena.h.
func runInput() []byte {
	ctx := make([]byte, 64)
	for i, v := range []uint64{5, 7, 11, 13} {
		binary.LittleEndian.PutUint64(ctx[8*i:], v)
	}
	return ctx
}

func arenaChunks(view func(off int) []byte, size int) map[string]string {
	out := map[string]string{}
	zero := make([]byte, 64)
	for off := 0; off < size; off += 64 {
		b := view(off)
		if b == nil || bytes.Equal(b, zero) {
			continue
		}
		out[fmt.Sprintf("%#x", off)] = hex.EncodeToString(b)
	}
	return out
}

type arenaProg struct {
	obj     *elf.Object
	object  string
	prog    *elf.Program
	def     *elf.Map
	globals *elf.ArenaGlobals // nil without .addr_space.1
}

// globalsOffset is where libbpf places the arena globals: in the last
// pages of the arena (arena_data_off).
func (ap arenaProg) globalsOffset() uint64 {
	size := (uint64(ap.globals.Size) + arena.PageSize - 1) &^ (arena.PageSize - 1)
	return uint64(ap.def.MaxEntries)*arena.PageSize - size
}

func arenaPrograms(t *testing.T) []arenaProg {
	objs, err := filepath.Glob(filepath.Join(arenaObjDir, "*.o"))
	if err != nil || len(objs) == 0 {
		t.Skipf("no objects in %s", arenaObjDir)
	}
	sort.Strings(objs)
	var out []arenaProg
	for _, path := range objs {
		obj, err := elf.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var def *elf.Map
		for _, m := range obj.Maps {
			if m.Type == ebpf.Arena {
				def = m
			}
		}
		if def == nil {
			t.Fatalf("%s: no arena map", path)
		}
		for _, p := range obj.Programs {
			if p.Section != "syscall" {
				continue // only syscall programs can be test-run with a ctx
			}
			out = append(out, arenaProg{obj: obj, object: filepath.Base(path), prog: p, def: def, globals: obj.Arena})
		}
	}
	return out
}

// runInterp runs one program in the interpreter the way the kernel runs it:
// an arena of the map's size at its map_extra address, the context in r1.
func runInterp(ap arenaProg) (arenaRun, error) {
	run := arenaRun{Object: ap.object, Program: ap.prog.Name}
	a, err := arena.New(int(ap.def.MaxEntries), arena.Options{UserVMStart: ap.def.MapExtra})
	if err != nil {
		return run, err
	}
	defer a.Close()
	syms := map[string]uint64{ap.def.Name: fakeMapAddr}
	maps, err := ObjectMaps(ap.obj)
	if err != nil {
		return run, err
	}
	if ap.globals != nil && ap.globals.Size > 0 {
		base, err := a.LoadGlobals(ap.globals.Data, ap.globals.Size)
		if err != nil {
			return run, err
		}
		syms[elf.ArenaSection] = base
	}
	q, err := Prepare(ap.prog.Prog, Options{Arena: a, Symbols: syms, Maps: maps})
	if err != nil {
		return run, err
	}
	ctx := runInput()
	run.CtxIn = hex.EncodeToString(ctx)
	res, err := q.Run(RunOptions{Ctx: ctx, Budget: 10_000_000})
	if err != nil {
		return run, err
	}
	run.Retval = uint32(res.R0)
	run.CtxOut = hex.EncodeToString(ctx)
	run.Arena = arenaChunks(func(off int) []byte { return a.Bytes(a.UserVMStart()+uint64(off), 64) }, int(a.Size()))
	return run, nil
}

// runKernel loads the program into the live kernel and test-runs it.
func runKernel(ap arenaProg) (arenaRun, error) {
	run := arenaRun{Object: ap.object, Program: ap.prog.Name}
	p := ap.prog.Prog.Clone()
	// fd_array: the arena first, then the object's array and hash maps.
	defs := []kernel.MapDef{{Type: kernel.MapArena, MaxEntries: ap.def.MaxEntries, Flags: ap.def.Flags, Extra: ap.def.MapExtra}}
	index := map[string]int32{ap.def.Name: 0}
	for _, m := range ap.obj.Maps {
		if m.Section == ".maps" && (m.Type == ebpf.Array || m.Type == ebpf.Hash) {
			index[m.Name] = int32(len(defs))
			defs = append(defs, kernel.MapDef{Type: kernel.MapType(m.Type), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries, Flags: m.Flags})
		}
	}
	for i := range p.Insns {
		if k, ok := index[p.Aux[i].Symbol]; ok && p.Insns[i].IsLdImm64() && p.Aux[i].SymbolKind == ir.SymMap && p.Insns[i].Src == ir.PseudoMapFD {
			p.Insns[i].Src, p.Insns[i].Imm = ir.PseudoMapIdx, k
		}
		if p.Insns[i].IsLdImm64() && p.Aux[i].SymbolKind == ir.SymArena {
			// libbpf: the arena map's value at arena_data_off + offset.
			p.Insns[i].Src, p.Insns[i].Imm = ir.PseudoMapIdxValue, 0
			p.Insns[i+1].Imm += int32(ap.globalsOffset())
		}
	}
	l, err := kernel.Load(&kernel.Spec{
		Name: ap.prog.Name, Type: kernel.Syscall, Program: p, Maps: defs,
	})
	if err != nil {
		return run, err
	}
	defer l.Close()
	if ap.globals != nil && len(ap.globals.Data) > 0 {
		copy(l.ArenaMemory()[ap.globalsOffset():], ap.globals.Data) // faults the pages in, as libbpf's memcpy
	}
	ctx := runInput()
	run.CtxIn = hex.EncodeToString(ctx)
	res, err := l.TestRun(kernel.RunOptions{Ctx: ctx})
	if err != nil {
		return run, err
	}
	run.Retval = res.Retval
	run.CtxOut = hex.EncodeToString(res.Ctx)
	mem := l.ArenaMemory()
	run.Arena = arenaChunks(func(off int) []byte { return mem[off : off+64] }, len(mem))
	return run, nil
}

func diffRuns(want, got arenaRun) string {
	var d bytes.Buffer
	if want.Retval != got.Retval {
		fmt.Fprintf(&d, " retval %d != %d;", got.Retval, want.Retval)
	}
	if want.CtxOut != got.CtxOut {
		fmt.Fprintf(&d, " ctx %s != %s;", got.CtxOut, want.CtxOut)
	}
	keys := map[string]bool{}
	for k := range want.Arena {
		keys[k] = true
	}
	for k := range got.Arena {
		keys[k] = true
	}
	var ks []string
	for k := range keys {
		if want.Arena[k] != got.Arena[k] {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	for i, k := range ks {
		if i == 3 {
			fmt.Fprintf(&d, " ... %d chunks differ", len(ks))
			break
		}
		fmt.Fprintf(&d, " arena %s: %q != %q;", k, got.Arena[k], want.Arena[k])
	}
	return d.String()
}

// TestArenaProgramsMatchKernel runs the 30 testdata/arena programs in the
// interpreter and compares return value, context and arena contents with
// what the live kernel produced: directly when BPF is available, and always
// with the captured goldens (testdata/arena_runs.json; -update-runs
// rewrites them from the kernel).
func TestArenaProgramsMatchKernel(t *testing.T) {
	progs := arenaPrograms(t)
	var golden []arenaRun
	if b, err := os.ReadFile(runsGolden); err == nil {
		if err := json.Unmarshal(b, &golden); err != nil {
			t.Fatalf("%s: %v", runsGolden, err)
		}
	}
	byName := map[string]arenaRun{}
	for _, g := range golden {
		byName[g.Object+"/"+g.Program] = g
	}
	ok, reason := kernelAvailable()
	if *updateRuns && !ok {
		t.Fatalf("-update-runs needs the live kernel: %s", reason)
	}
	var fresh []arenaRun
	matched, missing := 0, 0
	for _, ap := range progs {
		key := ap.object + "/" + ap.prog.Name
		if g, found := byName[key]; found && g.KernelError != "" && !ok {
			t.Logf("%s: skipped, the kernel rejects it", key)
			continue
		}
		var k arenaRun
		if ok {
			var err error
			k, err = runKernel(ap)
			var le *kernel.LoadError
			if errors.As(err, &le) {
				k.KernelError = firstLine(le.Error())
				fresh = append(fresh, k)
				t.Logf("%s: skipped, the kernel rejects it: %s", key, k.KernelError)
				continue
			}
			if err != nil {
				t.Errorf("%s: kernel: %v", key, err)
				continue
			}
			fresh = append(fresh, k)
		}
		got, err := runInterp(ap)
		if err != nil {
			t.Errorf("%s: interpreter: %v", key, err)
			continue
		}
		if ok {
			if d := diffRuns(k, got); d != "" {
				t.Errorf("%s: interpreter differs from the live kernel:%s", key, d)
				continue
			}
		}
		if g, found := byName[key]; found && g.KernelError != "" {
			// The kernel rejected it when the goldens were captured (the
			// verifier's verdict on p32 varies between loads).
		} else if found && !*updateRuns {
			if d := diffRuns(g, got); d != "" {
				t.Errorf("%s: interpreter differs from the golden:%s", key, d)
				continue
			}
		} else if !ok {
			// A program added after the goldens were captured: nothing to
			// compare with here (the live-kernel run covers it).
			t.Logf("%s: no golden run (capture with -update-runs where BPF works)", key)
			missing++
			continue
		}
		matched++
	}
	t.Logf("%d/%d arena programs match (live kernel: %v %s; %d without golden)", matched, len(progs), ok, reason, missing)
	if matched < 30 {
		t.Errorf("only %d arena programs compared", matched)
	}
	if *updateRuns {
		b, _ := json.MarshalIndent(fresh, "", "  ")
		if err := os.MkdirAll(filepath.Dir(runsGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(runsGolden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d runs to %s", len(fresh), runsGolden)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// kernelCapture is the part of a testdata/arena/*.json live-kernel capture
// this test uses.
type kernelCapture struct {
	Object   string            `json:"object"`
	Program  string            `json:"program"`
	Error    string            `json:"error"`
	Xlated   string            `json:"xlated"`
	CallBase uint64            `json:"call_base"`
	Addrs    map[string]uint64 `json:"addrs"`
}

// TestXlatedArenaProgramsMatchKernel runs the verifier's output for the
// same programs as captured from the live kernel (casts to kernel lowered to
// mov32, arena accesses shown as MEM by the dump, kfunc calls by address)
// and expects the same results as the kernel's run.
func TestXlatedArenaProgramsMatchKernel(t *testing.T) {
	var golden []arenaRun
	b, err := os.ReadFile(runsGolden)
	if err != nil {
		t.Skipf("no golden runs: %v", err)
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	byName := map[string]arenaRun{}
	for _, g := range golden {
		byName[g.Object+"/"+g.Program] = g
	}
	progs := arenaPrograms(t)
	defs := map[string]*elf.Map{}
	globals := map[string]*elf.ArenaGlobals{}
	for _, ap := range progs {
		defs[ap.object+"/"+ap.prog.Name] = ap.def
		globals[ap.object+"/"+ap.prog.Name] = ap.globals
	}
	files, _ := filepath.Glob(filepath.Join(arenaObjDir, "*.json"))
	matched, skipped := 0, 0
	syms := kernelSyms(t)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c kernelCapture
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		key := c.Object + "/" + c.Program
		want, found := byName[key]
		def := defs[key]
		if c.Error != "" || (found && want.KernelError != "") {
			t.Logf("%s: skipped, the kernel rejects it", key)
			skipped++
			continue
		}
		if !found || def == nil {
			// TestArenaProgramsMatchKernel reports missing goldens.
			t.Logf("%s: skipped, no golden run (or arena map)", key)
			skipped++
			continue
		}
		code, err := hex.DecodeString(c.Xlated)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ir.DecodeWith(code, ir.DecodeOptions{Xlated: true})
		if err != nil {
			t.Errorf("%s: decode xlated: %v", key, err)
			continue
		}
		reg := helperSetForCapture(c, syms)
		// The dump shows map loads as src PseudoMapFD / PseudoMapValue
		// with the map id in imm. The only map is the arena: its "value"
		// is the arena itself (user_vm_start + offset, globals at the
		// end), and the map pointer handed to kfuncs is not used.
		fds := map[int32]uint64{}
		for i, in := range p.Insns {
			if in.IsLdImm64() && (in.Src == ir.PseudoMapFD || in.Src == ir.PseudoMapValue) {
				fds[in.Imm] = def.MapExtra
			}
			if in.IsPseudoCall() {
				// After jit_subprogs a call keeps its relative offset in
				// off and the callee's function index in imm.
				p.Insns[i].Imm, p.Insns[i].Off = int32(in.Off), 0
			}
		}
		a, err := arena.New(int(def.MaxEntries), arena.Options{UserVMStart: def.MapExtra})
		if err != nil {
			t.Fatal(err)
		}
		if g := globals[key]; g != nil && g.Size > 0 {
			if _, err := a.LoadGlobals(g.Data, g.Size); err != nil {
				t.Fatal(err)
			}
		}
		q, err := Prepare(p, Options{Arena: a, Helpers: reg, MapFDs: fds})
		if err != nil && strings.Contains(err.Error(), "unknown helper") {
			// Calls the verifier added by address (timed may_goto's
			// arch_bpf_timed_may_goto) have no Go counterpart.
			a.Close()
			t.Logf("%s: skipped: %v", key, err)
			skipped++
			continue
		}
		if err != nil {
			a.Close()
			t.Errorf("%s: prepare xlated: %v", key, err)
			continue
		}
		ctx := runInput()
		res, err := q.Run(RunOptions{Ctx: ctx, Budget: 10_000_000})
		got := arenaRun{Retval: uint32(res.R0), CtxOut: hex.EncodeToString(ctx),
			Arena: arenaChunks(func(off int) []byte { return a.Bytes(a.UserVMStart()+uint64(off), 64) }, int(a.Size()))}
		a.Close()
		if err != nil {
			t.Errorf("%s: run xlated: %v", key, err)
			continue
		}
		if d := diffRuns(want, got); d != "" {
			t.Errorf("%s: xlated run differs from the kernel:%s", key, d)
			continue
		}
		matched++
	}
	t.Logf("%d/%d xlated arena programs match the kernel's runs (%d skipped: rejected by the kernel or with kernel-internal helper calls)", matched, len(files)-skipped, skipped)
	if matched < 20 {
		t.Errorf("only %d xlated programs compared", matched)
	}
}

const kernelSymsFile = "testdata/kernel_syms.json"

// kernelSyms are call immediates (address - __bpf_call_base) of kernel
// functions the verifier calls by address, from the live kernel or, without
// it, from kernelSymsFile (rewritten by -update-runs). They are the same for
// every boot of one kernel build.
func kernelSyms(t *testing.T) map[string]int32 {
	out := map[string]int32{}
	if ok, _ := kernelAvailable(); ok {
		base, err := kernel.CallBase()
		if err != nil {
			t.Fatal(err)
		}
		if addr, err := kernel.Kallsyms(helpers.NameTimedMayGoto); err == nil {
			out[helpers.NameTimedMayGoto] = int32(addr - base)
		}
		if *updateRuns {
			b, _ := json.MarshalIndent(out, "", "  ")
			if err := os.WriteFile(kernelSymsFile, append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	if b, err := os.ReadFile(kernelSymsFile); err == nil {
		json.Unmarshal(b, &out)
	}
	return out
}

// helperSetForCapture registers the arena kfuncs under the call immediates
// the kernel gave them (address - __bpf_call_base), and the timed may_goto
// function.
func helperSetForCapture(c kernelCapture, syms map[string]int32) *helpers.Registry {
	reg := helpers.Kernel().Clone()
	if id, ok := syms[helpers.NameTimedMayGoto]; ok {
		reg.Register(id, helpers.NameTimedMayGoto, helpers.TimedMayGotoPlaceholder)
	}
	for _, name := range []string{helpers.KfuncArenaAllocPages, helpers.KfuncArenaFreePages} {
		if addr, ok := c.Addrs[name]; ok {
			reg.SetKfuncID(name, int32(addr-c.CallBase))
		}
	}
	return reg
}

// kernelAvailable is kernel.Available, unless BPFC_NO_KERNEL is set (to
// check the golden-only path on a machine with BPF).
func kernelAvailable() (bool, string) {
	if os.Getenv("BPFC_NO_KERNEL") != "" {
		return false, "BPFC_NO_KERNEL is set"
	}
	return kernel.Available()
}
