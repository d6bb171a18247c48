package interp

import (
	"errors"
	"testing"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp/progen"
	"github.com/bpfc/bpfc/ir"
)

var fuzzArena *arena.Arena

// FuzzRun feeds arbitrary bytes through decoding, preparation and a run with
// an arena and a budget: any outcome but a panic (or a Go fault) is fine, and
// every run error must be an *Error naming an instruction.
func FuzzRun(f *testing.F) {
	for seed := uint64(0); seed < 16; seed++ {
		f.Add(ir.Encode(progen.Generate(seed, progen.Options{Insns: 24})))
	}
	f.Add(ir.Encode(arenaProgram(true)))
	f.Add(ir.Encode(arenaProgram(false)))
	f.Add([]byte{0x95, 0, 0, 0, 0, 0, 0, 0})
	if fuzzArena == nil {
		a, err := arena.New(16, arena.Options{})
		if err != nil {
			f.Fatal(err)
		}
		fuzzArena = a
	}
	reg := helpers.Kernel().Clone()
	reg.Register(helpers.IDConformanceUnwind+1000, "unwind", helpers.Unwind)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ir.DecodeWith(b, ir.DecodeOptions{Xlated: true})
		if err != nil {
			return
		}
		for i := range p.Insns {
			if p.Insns[i].IsKfuncCall() {
				p.Aux[i].Symbol = helpers.KfuncArenaAllocPages
			}
		}
		q, err := Prepare(p, Options{Arena: fuzzArena, Helpers: reg, Symbols: map[string]uint64{}, MapFDs: map[int32]uint64{0: 0x1000}})
		if err != nil {
			return
		}
		q.SetTailCalls([]*Program{q})
		mem := make([]byte, 64)
		_, err = q.Run(RunOptions{Mem: mem, Ctx: make([]byte, 32), Budget: 20000})
		var ie *Error
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		// Keep the shared arena from filling up across inputs.
		fuzzArena.FreePages(fuzzArena.UserVMStart(), fuzzArena.Pages())
	})
}

// FuzzMutated starts from valid generated programs (calls, arena accesses)
// and flips bytes, to reach deep into the interpreter with almost-valid
// programs.
func FuzzMutated(f *testing.F) {
	f.Add(uint64(1), []byte{0, 0})
	f.Add(uint64(2), []byte{5, 0x40, 9, 0x08})
	f.Add(uint64(7), []byte{33, 0xff, 12, 0x10, 40, 0x80})
	if fuzzArena == nil {
		a, err := arena.New(16, arena.Options{})
		if err != nil {
			f.Fatal(err)
		}
		fuzzArena = a
	}
	f.Fuzz(func(t *testing.T, seed uint64, mut []byte) {
		opts := progen.Options{Insns: 24, Calls: seed&1 == 1, Arena: seed&2 == 2, AcquireRelease: seed&4 == 4}
		p := progen.Generate(seed%4096, opts)
		b := ir.Encode(p)
		for i := 0; i+1 < len(mut); i += 2 {
			b[(int(mut[i])*131+i)%len(b)] ^= mut[i+1]
		}
		q, err := ir.DecodeWith(b, ir.DecodeOptions{Xlated: true})
		if err != nil {
			return
		}
		copy(q.Aux, p.Aux) // keep the kfunc and map symbols
		prog, err := Prepare(q, Options{Arena: fuzzArena, Symbols: map[string]uint64{progen.ArenaMap: 1}})
		if err != nil {
			return
		}
		_, err = prog.Run(RunOptions{Ctx: make([]byte, progen.CtxSize), Budget: 50000})
		var ie *Error
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		fuzzArena.FreePages(fuzzArena.UserVMStart(), fuzzArena.Pages())
	})
}
