package corpus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// Entry is one corpus program: a name, what it covers, and how to build
// and load it.
type Entry struct {
	Name  string
	Note  string
	Type  kernel.ProgType
	Flags uint32
	Maps  []kernel.MapDef
	// CtxSize is the context size a syscall program reads and writes (for
	// BPF_PROG_TEST_RUN).
	CtxSize int
	// Random: the kernel's output differs between loads (random values
	// the verifier inserts), so captures are not compared across reloads.
	Random bool
	// Pending, when set, says why bpfc does not reproduce this program yet:
	// its golden goes to testdata/kernel/pending/, which the comparison
	// tests report on without failing (and other packages' tests, reading
	// testdata/kernel/*.json, do not see).
	Pending string
	Build   func(b *B)
}

// Program builds the entry's instructions.
func (e *Entry) Program() (*ir.Program, error) {
	b := NewB()
	e.Build(b)
	return b.Program(e.Name)
}

// Spec returns what internal/kernel loads.
func (e *Entry) Spec() (*kernel.Spec, error) {
	b := NewB()
	e.Build(b)
	p, err := b.Program(e.Name)
	if err != nil {
		return nil, err
	}
	decls, err := b.FuncDecls()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	return &kernel.Spec{Name: e.Name, Type: e.Type, Flags: e.Flags, Program: p, Maps: e.Maps, FuncDecls: decls}, nil
}

// Pure reports a program whose results depend only on its context: a
// syscall program without maps, helper or kfunc calls, may_goto (timed) or
// random verifier patches. Its test runs are recorded in the golden.
func (e *Entry) Pure() bool {
	if e.Type != kernel.Syscall || len(e.Maps) > 0 || e.Random {
		return false
	}
	p, err := e.Program()
	if err != nil {
		return false
	}
	for _, in := range p.Insns {
		if (in.IsCall() && !in.IsPseudoCall()) || in.Op == ir.OpMayGoto {
			return false
		}
	}
	return true
}

// Inputs returns the contexts a pure program is run with: zeros, all ones,
// small numbers, and pseudo-random words (fixed seed).
func (e *Entry) Inputs() [][]byte {
	n := e.CtxSize
	zero := make([]byte, n)
	ones := bytes.Repeat([]byte{0xff}, n)
	small := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(small[i:], uint64(i/8+1)*3)
	}
	rnd := make([]byte, n)
	r := rand.New(rand.NewPCG(0xb9f, 0x1234))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		switch i / 8 % 4 {
		case 1:
			v = uint64(int64(int32(v))) // sign-extended 32-bit
		case 2:
			v &= 0xffffffff
		}
		binary.LittleEndian.PutUint64(rnd[i:], v)
	}
	return [][]byte{zero, ones, small, rnd}
}

var registry []Entry

func add(e Entry) {
	if e.Type == 0 {
		e.Type = kernel.Syscall
	}
	if e.Type == kernel.Syscall && e.CtxSize == 0 {
		e.CtxSize = ctxSize
	}
	registry = append(registry, e)
}

// All returns every corpus program, sorted by name. Names are unique.
func All() []Entry {
	once()
	out := append([]Entry(nil), registry...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the entry called name.
func Lookup(name string) (Entry, error) {
	for _, e := range All() {
		if e.Name == name {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("corpus: no program %q", name)
}

var built bool

func once() {
	if built {
		return
	}
	built = true
	aluFamily()
	memFamily()
	atomicFamily()
	jumpFamily()
	layoutFamily()
	callFamily()
	stackFamily()
	arenaFamily()
	probeFamily()
	extraFamily()
}

// Shorthands.
const (
	R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = ir.R0, ir.R1, ir.R2, ir.R3, ir.R4, ir.R5, ir.R6, ir.R7, ir.R8, ir.R9, ir.R10

	B8  = ir.SizeB
	H16 = ir.SizeH
	W32 = ir.SizeW
	DW  = ir.SizeDW

	ALU   = ir.ClassALU
	ALU64 = ir.ClassALU64
)

var allRegs = []ir.Register{R0, R1, R2, R3, R4, R5, R6, R7, R8, R9}

// ctxSize is the context of the scalar frame: ten u64 inputs/outputs.
const ctxSize = 128

// Helper ids.
const (
	helperMapLookup   = 1
	helperMapUpdate   = 2
	helperMapDelete   = 3
	helperKtimeGetNs  = 5
	helperPrandomU32  = 7
	helperTailCall    = 12
	helperGetCurComm  = 16
	helperProbeReadKr = 113
)

// scalarFrame is the common shape of a syscall program over unknown
// scalars: the context pointer is kept at r10-8, r0..r9 are loaded from
// ctx[0..9] (u64 each), the body runs, and r0..r9 are written back to
// ctx[0..9] and r0 is returned. Everything the body computes is observable
// with BPF_PROG_TEST_RUN.
func scalarFrame(b *B, body func(b *B)) {
	b.Emit(Stx(DW, R10, R1, -8))
	for _, r := range allRegs {
		if r != R1 {
			b.Emit(Ldx(DW, r, R1, int16(8*r)))
		}
	}
	b.Emit(Ldx(DW, R1, R1, 8))
	body(b)
	b.Emit(Stx(DW, R10, R0, -16), Ldx(DW, R0, R10, -8))
	for _, r := range allRegs[1:] {
		b.Emit(Stx(DW, R0, r, int16(8*r)))
	}
	b.Emit(Ldx(DW, R1, R10, -16), Stx(DW, R0, R1, 0), MovX64(R0, R1))
	b.Exit()
}

// scalars loads the given registers from the syscall context (r1), r1
// last if it is among them.
func scalars(b *B, regs ...ir.Register) {
	hasR1 := false
	for _, r := range regs {
		if r == R1 {
			hasR1 = true
			continue
		}
		b.Emit(Ldx(DW, r, R1, int16(8*r)))
	}
	if hasR1 {
		b.Emit(Ldx(DW, R1, R1, 8))
	}
}

// fill emits straight-line ALU code that the JIT turns into exactly n bytes
// of x86 (n >= 2): `w0 += 1` is 3 bytes (83 c0 01), `w0 = w0` is 2 (89 c0).
func fill(b *B, n int) {
	if n == 1 || n < 0 {
		n = 2 // cannot make 1 byte; callers avoid it
	}
	twos := 0
	for (n-2*twos)%3 != 0 {
		twos++
	}
	for i := 0; i < (n-2*twos)/3; i++ {
		b.Emit(AluK(ALU, ir.ALUAdd, R0, 1))
	}
	for i := 0; i < twos; i++ {
		b.Emit(AluX(ALU, ir.ALUMov, R0, R0))
	}
}
