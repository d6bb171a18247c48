package interp

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
)

func newArena(t *testing.T, pages int) *arena.Arena {
	t.Helper()
	a, err := arena.New(pages, arena.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// kfunc returns a kfunc call with the name in aux, as ir/elf produces it.
type progBuilder struct {
	insns []ir.Instruction
	syms  map[int]string
}

func (b *progBuilder) add(ins ...ir.Instruction) *progBuilder {
	b.insns = append(b.insns, ins...)
	return b
}

func (b *progBuilder) kfunc(name string) *progBuilder {
	if b.syms == nil {
		b.syms = map[int]string{}
	}
	b.syms[len(b.insns)] = name
	return b.add(ir.Instruction{Op: ir.OpCall, Src: ir.CallKfunc})
}

func (b *progBuilder) program(name string) *ir.Program {
	p := ir.NewProgram(name, b.insns)
	for i, s := range b.syms {
		p.Aux[i].Symbol, p.Aux[i].SymbolKind = s, ir.SymKfunc
	}
	return p
}

func mov(dst ir.Register, imm int32) ir.Instruction {
	return ir.Instruction{Op: 0xb7, Dst: dst, Imm: imm}
}
func movr(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: 0xbf, Dst: dst, Src: src}
}
func mem(cls ir.Class, size ir.Size, mode ir.Mode, dst, src ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: uint8(cls) | uint8(size) | uint8(mode), Dst: dst, Src: src, Off: off, Imm: imm}
}
func castKern(r ir.Register) ir.Instruction {
	return ir.Instruction{Op: 0xbf, Dst: r, Src: r, Off: ir.OffAddrSpaceCast, Imm: ir.CastToKernel}
}
func castUser(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: 0xbf, Dst: dst, Src: src, Off: ir.OffAddrSpaceCast, Imm: ir.CastToUser}
}

// allocOne emits r0 = bpf_arena_alloc_pages(map, 0, 1, -1, 0).
func (b *progBuilder) allocOne() *progBuilder {
	b.add(mov(ir.R1, 0), mov(ir.R2, 0), mov(ir.R3, 1), mov(ir.R4, -1), mov(ir.R5, 0))
	return b.kfunc(helpers.KfuncArenaAllocPages)
}

// The same arena program in the converted (PROBE_MEM32, as the verifier
// leaves it for the JIT) and unconverted (plain MEM through a 32-bit pointer
// after addr_space_cast, as clang emits it) forms.
func arenaProgram(probe bool) *ir.Program {
	ld, st, stx, at := ir.ModeMEM, ir.ModeMEM, ir.ModeMEM, ir.ModeATOMIC
	if probe {
		ld, st, stx, at = ir.ModeProbeMem32, ir.ModeProbeMem32, ir.ModeProbeMem32, ir.ModeProbeAtomic
	}
	b := &progBuilder{}
	b.add(movr(ir.R9, ir.R1)) // ctx
	b.allocOne()
	b.add(
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R0, 0, 0), // ctx[0] = user address
		movr(ir.R6, ir.R0),
		castKern(ir.R6), // r6 = lo32
		mem(ir.ClassST, ir.SizeDW, st, ir.R6, 0, 8, 0x55), // *(u64 *)(r6+8) = 0x55
		mov(ir.R2, -2), //
		mem(ir.ClassSTX, ir.SizeW, stx, ir.R6, ir.R2, 16, 0), // *(u32 *)(r6+16) = -2
		mem(ir.ClassLDX, ir.SizeW, ld, ir.R7, ir.R6, 16, 0),  // r7 = *(u32 *)(r6+16)
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R7, 8, 0),
		mov(ir.R8, 123), //
		mem(ir.ClassLDX, ir.SizeDW, ld, ir.R8, ir.R6, 4096, 0), // unallocated page: r8 = 0
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R8, 16, 0),
		mem(ir.ClassST, ir.SizeDW, st, ir.R6, 0, 4096+8, 1), // skipped
		mov(ir.R3, 77), //
		mem(ir.ClassSTX, ir.SizeDW, at, ir.R6, ir.R3, 4096, ir.AtomicAdd|ir.AtomicFetch), // skipped, r3 stays
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R3, 24, 0),
		mov(ir.R3, 2),
		mem(ir.ClassSTX, ir.SizeDW, at, ir.R6, ir.R3, 8, ir.AtomicAdd|ir.AtomicFetch), // 0x55 -> 0x57, r3 = 0x55
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R3, 32, 0),
		mov(ir.R8, -1),
		mem(ir.ClassLDX, ir.SizeW, ld, ir.R8, ir.R6, -4, 0), // below the arena start: guard, r8 = 0
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R8, 40, 0),
		castUser(ir.R0, ir.R6), // back to the user address
		ir.Instruction{Op: ir.OpExit},
	)
	return b.program("arena")
}

func TestArenaAccesses(t *testing.T) {
	for _, tc := range []struct {
		probe bool
		user  uint64 // 0: any user_vm_start
	}{{true, 0}, {false, 0}, {true, 0x7e3480000000}, {false, 0x7e3480000000}} {
		probe := tc.probe
		name := "unconverted"
		if probe {
			name = "probe_mem32"
		}
		if tc.user != 0 {
			name += "_lo32_base"
		}
		t.Run(name, func(t *testing.T) {
			a, err := arena.New(4, arena.Options{UserVMStart: tc.user})
			if err != nil {
				t.Skip(err)
			}
			defer a.Close()
			q := prepare(t, arenaProgram(probe), Options{Arena: a})
			ctx := make([]byte, 48)
			res, err := q.Run(RunOptions{Ctx: ctx})
			if err != nil {
				t.Fatal(err)
			}
			u := binary.LittleEndian.Uint64(ctx)
			if u != a.UserVMStart() || res.R0 != u {
				t.Fatalf("alloc %#x, cast back %#x, user_vm_start %#x", u, res.R0, a.UserVMStart())
			}
			want := []uint64{u, 0xfffffffe, 0, 77, 0x55, 0}
			for i, w := range want {
				if got := binary.LittleEndian.Uint64(ctx[8*i:]); got != w {
					t.Errorf("ctx[%d] = %#x, want %#x", i, got, w)
				}
			}
			b := a.Bytes(u, 24)
			if binary.LittleEndian.Uint64(b[8:]) != 0x57 || binary.LittleEndian.Uint32(b[16:]) != 0xfffffffe {
				t.Errorf("arena contents % x", b)
			}
			if a.AllocatedPages() != 1 {
				t.Errorf("%d pages allocated, want 1 (faulting stores must not allocate)", a.AllocatedPages())
			}
		})
	}
}

func TestArenaWithoutArena(t *testing.T) {
	// PROBE_MEM32 accesses without an arena all fault: loads read 0.
	p := ir.NewProgram("noarena", []ir.Instruction{
		mov(ir.R1, 64),
		mov(ir.R0, 5),
		mem(ir.ClassLDX, ir.SizeDW, ir.ModeProbeMem32, ir.R0, ir.R1, 0, 0),
		mem(ir.ClassST, ir.SizeDW, ir.ModeProbeMem32, ir.R1, 0, 0, 1),
		{Op: ir.OpExit},
	})
	res, err := prepare(t, p, Options{}).Run(RunOptions{})
	if err != nil || res.R0 != 0 {
		t.Fatalf("r0=%d err=%v", res.R0, err)
	}
}

func TestArenaWildPointer(t *testing.T) {
	a := newArena(t, 4)
	// A register with high bits set takes a PROBE_MEM32 access outside the
	// reservation: the kernel would oops; the interpreter reports it.
	p := ir.NewProgram("wild", []ir.Instruction{
		ir.LdImm64(ir.R1, 0x10_0000_0000)[0], ir.LdImm64(ir.R1, 0x10_0000_0000)[1],
		mem(ir.ClassLDX, ir.SizeDW, ir.ModeProbeMem32, ir.R0, ir.R1, 0, 0),
		{Op: ir.OpExit},
	})
	_, err := prepare(t, p, Options{Arena: a}).Run(RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "instruction 2: arena load of 8 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestArenaUserViewAndFree(t *testing.T) {
	a := newArena(t, 4)
	// Allocate two pages, write through the user address (a plain store, as
	// a program that keeps user pointers does), free the first page, then
	// read it back: freed memory reads 0 (fault), the second page survives.
	b := &progBuilder{}
	b.add(movr(ir.R9, ir.R1))
	b.add(mov(ir.R1, 0), mov(ir.R2, 0), mov(ir.R3, 2), mov(ir.R4, -1), mov(ir.R5, 0)).kfunc(helpers.KfuncArenaAllocPages)
	b.add(
		movr(ir.R6, ir.R0),
		mem(ir.ClassST, ir.SizeDW, ir.ModeMEM, ir.R6, 0, 0, 11),
		mem(ir.ClassST, ir.SizeDW, ir.ModeMEM, ir.R6, 0, 4096, 22),
		mov(ir.R1, 0), movr(ir.R2, ir.R6), mov(ir.R3, 1),
	).kfunc(helpers.KfuncArenaFreePages)
	b.add(
		mov(ir.R7, -1),
		mem(ir.ClassLDX, ir.SizeDW, ir.ModeMEM, ir.R7, ir.R6, 0, 0),
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R7, 0, 0),
		mem(ir.ClassLDX, ir.SizeDW, ir.ModeMEM, ir.R7, ir.R6, 4096, 0),
		mem(ir.ClassSTX, ir.SizeDW, ir.ModeMEM, ir.R9, ir.R7, 8, 0),
		mem(ir.ClassST, ir.SizeDW, ir.ModeMEM, ir.R6, 0, 0, 33), // skipped: page freed
		movr(ir.R0, ir.R6),
		ir.Instruction{Op: ir.OpExit},
	)
	ctx := make([]byte, 16)
	res, err := prepare(t, b.program("free"), Options{Arena: a}).Run(RunOptions{Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if got0, got1 := binary.LittleEndian.Uint64(ctx), binary.LittleEndian.Uint64(ctx[8:]); got0 != 0 || got1 != 22 {
		t.Fatalf("after free: %d %d", got0, got1)
	}
	if a.PageAllocated(res.R0) || !a.PageAllocated(res.R0+4096) {
		t.Fatal("page state after free")
	}
	// Helpers see arena memory through the context's Memory.
	var m machine
	m.setup(prepare(t, b.program("free"), Options{Arena: a}), &RunOptions{})
	if bs := m.Bytes(res.R0+4096, 8, false); bs == nil || bs[0] != 22 {
		t.Fatal("helpers.Memory does not reach the arena user view")
	}
	if bs := m.Bytes(a.Kern(res.R0+4096), 8, false); bs == nil || bs[0] != 22 {
		t.Fatal("helpers.Memory does not reach the arena kernel view")
	}
	if m.Bytes(res.R0, 8, false) != nil {
		t.Fatal("helpers.Memory reaches a freed page")
	}
}

func TestArenaGlobalsSymbol(t *testing.T) {
	a := newArena(t, 4)
	base, err := a.LoadGlobals([]byte{0, 0, 0, 0, 0, 0, 0, 0, 42}, 16)
	if err != nil {
		t.Fatal(err)
	}
	p := ir.NewProgram("globals", []ir.Instruction{
		{Op: ir.OpLdImm64, Dst: ir.R1, Src: ir.PseudoMapValue}, {Imm: 8},
		castKern(ir.R1),
		mem(ir.ClassLDX, ir.SizeB, ir.ModeMEM, ir.R0, ir.R1, 0, 0),
		{Op: ir.OpExit},
	})
	p.Aux[0].Symbol, p.Aux[0].SymbolKind = ".addr_space.1", ir.SymArena
	res, err := prepare(t, p, Options{Arena: a, Symbols: map[string]uint64{".addr_space.1": base}}).Run(RunOptions{})
	if err != nil || res.R0 != 42 {
		t.Fatalf("r0=%d err=%v", res.R0, err)
	}
}

func TestCastSemantics(t *testing.T) {
	a, err := arena.New(4, arena.Options{UserVMStart: 0x7e1200000000})
	if err != nil {
		t.Skip("fixed user_vm_start not available:", err)
	}
	defer a.Close()
	tests := []struct {
		in, want uint64
		user     bool
	}{
		{0x1234, 0x7e1200001234, true},
		{0xabcd00001234, 0x7e1200001234, true},
		{0xabcd00000000, 0, true},
		{0x7e1200001234, 0x1234, false},
	}
	for _, tc := range tests {
		cast := castKern(ir.R0)
		if tc.user {
			cast = castUser(ir.R0, ir.R0)
		}
		s := ir.LdImm64(ir.R0, tc.in)
		p := ir.NewProgram("cast", []ir.Instruction{s[0], s[1], cast, {Op: ir.OpExit}})
		res, err := prepare(t, p, Options{Arena: a}).Run(RunOptions{})
		if err != nil || res.R0 != tc.want {
			t.Errorf("cast(user=%v) %#x = %#x, want %#x (%v)", tc.user, tc.in, res.R0, tc.want, err)
		}
	}
}

// A page freed by another goroutine while a program reads it in a loop: the
// run ends normally or with an error naming the instruction, never a crash.
func TestArenaConcurrentFree(t *testing.T) {
	a := newArena(t, 4)
	b := &progBuilder{}
	b.allocOne()
	b.add(
		movr(ir.R6, ir.R0),
		mov(ir.R7, 0),
		// loop: r8 = *(u64 *)(r6 + 0); r7++; if r7 < 2000000 goto loop
		mem(ir.ClassLDX, ir.SizeDW, ir.ModeMEM, ir.R8, ir.R6, 0, 0),
		ir.Instruction{Op: 0x07, Dst: ir.R7, Imm: 1},
		ir.Instruction{Op: 0xa5, Dst: ir.R7, Imm: 300000, Off: -3},
		movr(ir.R0, ir.R6),
		ir.Instruction{Op: ir.OpExit},
	)
	q := prepare(t, b.program("loop"), Options{Arena: a})
	faults, rounds := 0, 20
	if raceEnabled {
		rounds = 2
	}
	for i := 0; i < rounds; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for a.AllocatedPages() == 0 {
			}
			a.FreePages(a.UserVMStart(), 4)
		}()
		_, err := q.Run(RunOptions{})
		<-done
		if err != nil {
			if !strings.Contains(err.Error(), "instruction ") {
				t.Fatalf("error without instruction: %v", err)
			}
			if faults == 0 {
				t.Log(err)
			}
			faults++
		}
		a.FreePages(a.UserVMStart(), 4)
	}
	t.Logf("%d of %d runs saw the page freed under them", faults, rounds)
}
