package vm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir/elf"
)

// kernelRun is one live-kernel BPF_PROG_TEST_RUN of a testdata/arena
// program, as captured by the interp package's tests
// (interp/testdata/arena_runs.json): return value, context afterwards and
// the non-zero 64-byte chunks of the arena.
type kernelRun struct {
	Object  string            `json:"object"`
	Program string            `json:"program"`
	CtxIn   string            `json:"ctx_in"`
	Retval  uint32            `json:"retval"`
	CtxOut  string            `json:"ctx_out"`
	Arena   map[string]string `json:"arena"`
	Error   string            `json:"kernel_error,omitempty"`
}

// TestArenaCorpusMatchesKernel compiles every testdata/arena program (clang
// objects with arena lists, trees, hash tables, atomics, casts...) through
// the full pipeline, runs it in the vm with a real arena at the map's
// address, and compares the return value, the context and every byte of
// the arena with what the live kernel did.
func TestArenaCorpusMatchesKernel(t *testing.T) {
	raw, err := os.ReadFile("../interp/testdata/arena_runs.json")
	if err != nil {
		t.Skipf("no kernel runs: %v", err)
	}
	var runs []kernelRun
	if err := json.Unmarshal(raw, &runs); err != nil {
		t.Fatal(err)
	}
	golden := map[string]kernelRun{}
	for _, r := range runs {
		golden[r.Object+"/"+r.Program] = r
	}
	objs, _ := filepath.Glob("../testdata/arena/*.o")
	sort.Strings(objs)
	n, ok := 0, 0
	for _, path := range objs {
		obj, err := elf.Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		var def *elf.Map
		for _, m := range obj.Maps {
			if m.Type == ebpf.Arena {
				def = m
			}
		}
		for _, ep := range obj.Programs {
			want, have := golden[filepath.Base(path)+"/"+ep.Name]
			if !have || want.Error != "" || def == nil {
				continue
			}
			n++
			name := filepath.Base(path) + "/" + ep.Name
			if err := runArenaProgram(obj, ep, want); err != nil {
				// Missing features (tail calls, prog arrays, helpers the
				// registry lacks) are listed, not failed.
				if strings.Contains(err.Error(), "not supported in the vm") || strings.Contains(err.Error(), "not in the helper registry") {
					t.Logf("%s: skipped: %v", name, err)
					n--
					continue
				}
				t.Errorf("%s: %v", name, err)
				continue
			}
			ok++
		}
	}
	if n == 0 {
		t.Skip("no arena programs with kernel runs")
	}
	t.Logf("arena corpus: %d/%d programs match the live kernel (r0, context, arena bytes)", ok, n)
}

func runArenaProgram(obj *elf.Object, ep *elf.Program, want kernelRun) error {
	env, err := NewObjectEnv(obj)
	if err != nil {
		return err
	}
	defer env.Close()
	a := env.Arena
	p, err := Load(ep.Prog, env.LoadOptions(&LoadOptions{Options: Options{Helpers: helpers.Kernel(), Name: ep.Name}}))
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer p.Close()
	ctx, err := hex.DecodeString(want.CtxIn)
	if err != nil {
		return err
	}
	r0, err := p.RunConfig(context.Background(), &RunConfig{Mem: ctx, Budget: 100_000_000})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if uint32(r0) != want.Retval {
		return fmt.Errorf("r0 = %d, kernel %d", uint32(r0), want.Retval)
	}
	if got := hex.EncodeToString(ctx); got != want.CtxOut {
		return fmt.Errorf("context %s, kernel %s", got, want.CtxOut)
	}
	zero := make([]byte, 64)
	for off := uint64(0); off < a.Size(); off += 64 {
		b := a.Bytes(a.UserVMStart()+off, 64)
		key := fmt.Sprintf("%#x", off)
		w := want.Arena[key]
		if b == nil || bytes.Equal(b, zero) {
			if w != "" {
				return fmt.Errorf("arena %s: zero/unallocated, kernel %s", key, w)
			}
			continue
		}
		if got := hex.EncodeToString(b); got != w {
			return fmt.Errorf("arena %s: %s, kernel %q", key, got, w)
		}
	}
	return nil
}

// TestELFCallsMatchInterp: the bpf-to-bpf calls, bpf_loop callback and
// kfunc calls of testdata/elf/calls.o give the interpreter's results.
func TestELFCallsMatchInterp(t *testing.T) {
	obj, err := elf.Load("../testdata/elf/calls.o")
	if err != nil {
		t.Skip(err)
	}
	for _, ep := range obj.Programs {
		ctx := make([]byte, 256)
		p, err := Load(ep.Prog, &LoadOptions{Options: Options{Helpers: helpers.Kernel()}})
		if err != nil {
			t.Errorf("%s: load: %v", ep.Name, err)
			continue
		}
		got, err := p.RunMem(context.Background(), ctx)
		p.Close()
		if err != nil {
			t.Errorf("%s: run: %v", ep.Name, err)
			continue
		}
		q, err := interp.Prepare(ep.Prog, interp.Options{Helpers: helpers.Kernel()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := q.Run(interp.RunOptions{Ctx: make([]byte, 256)})
		if err != nil {
			t.Fatalf("%s: interpreter: %v", ep.Name, err)
		}
		if got != res.R0 {
			t.Errorf("%s: vm %#x, interpreter %#x", ep.Name, got, res.R0)
		}
	}
}
