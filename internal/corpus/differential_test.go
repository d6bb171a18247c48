package corpus

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/vm"
)

// TestInterpMatchesKernelRuns runs every pure corpus program in bpfc's
// interpreter on the inputs the kernel ran it on (the goldens' runs) and
// requires the same context afterwards and the same 32-bit return value.
func TestInterpMatchesKernelRuns(t *testing.T) {
	caps := readGoldens(t)
	progs, runs := 0, 0
	for _, c := range caps {
		if len(c.Runs) == 0 {
			continue
		}
		p, err := kernel.SourceProgram(c)
		if err != nil {
			t.Fatal(err)
		}
		q, err := interp.Prepare(p, interp.Options{})
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		ok := true
		for k, r := range c.Runs {
			ctx := append([]byte(nil), r.Ctx...)
			res, err := q.Run(interp.RunOptions{Ctx: ctx, Budget: 1 << 24})
			if err != nil {
				t.Errorf("%s: run %d: %v", c.Name, k, err)
				ok = false
				break
			}
			if uint32(res.R0) != r.Retval || !bytes.Equal(ctx, r.CtxOut) {
				t.Errorf("%s: run %d: interpreter r0 %#x ctx %#x, kernel retval %#x ctx %#x", c.Name, k, res.R0, words(ctx), r.Retval, words(r.CtxOut))
				ok = false
				break
			}
			runs++
		}
		if ok {
			progs++
		}
	}
	t.Logf("interpreter = kernel on %d programs, %d runs", progs, runs)
}

func words(b []byte) []uint64 {
	var out []uint64
	for i := 0; i+8 <= len(b); i += 8 {
		out = append(out, binary.LittleEndian.Uint64(b[i:]))
	}
	return out
}

// TestVMMatchesKernelRuns does the same with bpfc's in-process JIT (vm):
// the program compiled by the pipeline and backend for this process.
func TestVMMatchesKernelRuns(t *testing.T) {
	caps := readGoldens(t)
	progs, runs := 0, 0
	for _, c := range caps {
		if len(c.Runs) == 0 {
			continue
		}
		p, err := kernel.SourceProgram(c)
		if err != nil {
			t.Fatal(err)
		}
		q, err := vm.Load(p, &vm.LoadOptions{})
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		ok := true
		for k, r := range c.Runs {
			mem := append([]byte(nil), r.Ctx...)
			r0, err := q.RunConfig(context.Background(), &vm.RunConfig{Mem: mem})
			if err != nil {
				t.Errorf("%s: run %d: %v", c.Name, k, err)
				ok = false
				break
			}
			if uint32(r0) != r.Retval || !bytes.Equal(mem, r.CtxOut) {
				t.Errorf("%s: run %d: vm r0 %#x ctx %#x, kernel retval %#x ctx %#x", c.Name, k, r0, words(mem), r.Retval, words(r.CtxOut))
				ok = false
				break
			}
			runs++
		}
		q.Close()
		if ok {
			progs++
		}
	}
	t.Logf("in-process JIT = kernel on %d programs, %d runs", progs, runs)
}
