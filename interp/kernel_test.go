package interp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/arena"
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
	object string
	prog   *elf.Program
	def    *elf.Map
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
			out = append(out, arenaProg{object: filepath.Base(path), prog: p, def: def})
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
	q, err := Prepare(ap.prog.Prog, Options{Arena: a, Symbols: map[string]uint64{ap.def.Name: fakeMapAddr}})
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
	for i := range p.Insns {
		if p.Insns[i].IsLdImm64() && p.Aux[i].SymbolKind == ir.SymMap && p.Aux[i].Symbol == ap.def.Name {
			p.Insns[i].Src, p.Insns[i].Imm = ir.PseudoMapIdx, 0
		}
	}
	l, err := kernel.Load(&kernel.Spec{
		Name: ap.prog.Name, Type: kernel.Syscall, Program: p,
		Maps: []kernel.MapDef{{Type: kernel.MapArena, MaxEntries: ap.def.MaxEntries, Flags: ap.def.Flags, Extra: ap.def.MapExtra}},
	})
	if err != nil {
		return run, err
	}
	defer l.Close()
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
	ok, reason := kernel.Available()
	if *updateRuns && !ok {
		t.Fatalf("-update-runs needs the live kernel: %s", reason)
	}
	var fresh []arenaRun
	matched := 0
	for _, ap := range progs {
		key := ap.object + "/" + ap.prog.Name
		got, err := runInterp(ap)
		if err != nil {
			t.Errorf("%s: interpreter: %v", key, err)
			continue
		}
		if ok {
			k, err := runKernel(ap)
			if err != nil {
				t.Errorf("%s: kernel: %v", key, err)
				continue
			}
			fresh = append(fresh, k)
			if d := diffRuns(k, got); d != "" {
				t.Errorf("%s: interpreter differs from the live kernel:%s", key, d)
				continue
			}
		}
		if g, found := byName[key]; found && !*updateRuns {
			if d := diffRuns(g, got); d != "" {
				t.Errorf("%s: interpreter differs from the golden:%s", key, d)
				continue
			}
		} else if !ok {
			t.Errorf("%s: no golden run (capture with -update-runs where BPF works)", key)
			continue
		}
		matched++
	}
	t.Logf("%d/%d arena programs match (live kernel: %v %s)", matched, len(progs), ok, reason)
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
