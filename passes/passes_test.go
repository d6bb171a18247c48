package passes

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfc/bpfc/ir"
	irelf "github.com/bpfc/bpfc/ir/elf"
	"github.com/bpfc/bpfc/pipeline"
)

func TestRegisteredAndOrdered(t *testing.T) {
	for _, n := range []string{"zext-mark", "arena", "fixups", "zext"} {
		p, err := pipeline.Default.New(n)
		if err != nil {
			t.Fatalf("%s not registered: %v", n, err)
		}
		if p.Name() != n {
			t.Errorf("registered %q makes a pass named %q", n, p.Name())
		}
		d, ok := p.(pipeline.Describer)
		if !ok || d.Describe() == "" || strings.Contains(d.Describe(), "\n") {
			t.Errorf("%s: needs a one-line Describe", n)
		}
	}
	names := Default(Options{}).Names()
	// The verifier's order among the passes present.
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	for i := 1; i < len(Order); i++ {
		a, b := Order[i-1], Order[i]
		if pa, ok := pos[a]; ok {
			if pb, ok := pos[b]; ok && pa > pb {
				t.Errorf("%s runs after %s", a, b)
			}
		}
	}
	for _, n := range []string{"zext-mark", "arena", "fixups", "zext"} {
		if _, ok := pos[n]; !ok {
			t.Errorf("Default lacks %s: %v", n, names)
		}
	}
	jit := JIT().Names()
	for _, n := range jit {
		if n == "fixups" || n == "zext" || n == "zext-mark" {
			t.Errorf("JIT pipeline has %s: %v", n, jit)
		}
	}
	if len(jit) == 0 || jit[0] != "arena" {
		t.Errorf("JIT pipeline %v should start with arena", jit)
	}
}

// TestDumpShowsChange: the snapshot after arena shows the store in its
// PROBE_MEM32 form, marked changed, and the one after fixups the guard.
func TestDumpShowsChange(t *testing.T) {
	p := assemble(t, `
mov %r1, %r1
mov %r2, 7
mov %r3, 3
div %r2, %r3
exit`)
	// r1 = addr_space_cast(r1, 0, 1); *(u64 *)(r1 + 8) = r2
	p.Insns[0] = ir.Instruction{Op: 0xbf, Dst: ir.R1, Src: ir.R1, Off: 1, Imm: 1}
	store := ir.Instruction{Op: uint8(ir.ClassSTX) | uint8(ir.SizeDW) | uint8(ir.ModeMEM), Dst: ir.R1, Src: ir.R2, Off: 8}
	if err := p.Insert(4, []ir.Instruction{store}); err != nil {
		t.Fatal(err)
	}
	for i := range p.Aux {
		p.Aux[i].OrigIndex = int32(i) // as loaded
	}
	p0 := p.Clone()
	pl := Default(Options{})
	pl.DumpAfter = []string{"all"}
	res, err := pl.Run(p, &pipeline.Context{})
	if err != nil {
		t.Fatal(err)
	}
	var arena, fixups *pipeline.Snapshot
	for i := range res.Snapshots {
		switch res.Snapshots[i].Pass {
		case "arena":
			arena = &res.Snapshots[i]
		case "fixups":
			fixups = &res.Snapshots[i]
		}
	}
	if arena == nil || fixups == nil {
		t.Fatalf("snapshots: %v", res.Snapshots)
	}
	found := false
	for i, ins := range arena.Program.Insns {
		if ins.Class() == ir.ClassSTX && ins.Mode() == ir.ModeProbeMem32 {
			found = true
			if !arena.Changed[i] {
				t.Errorf("store %d not marked changed", i)
			}
			if arena.Program.Aux[i].PtrType != ir.PtrArena {
				t.Errorf("store %d: PtrType %v", i, arena.Program.Aux[i].PtrType)
			}
		}
		if ins.IsAddrSpaceCast() {
			t.Errorf("cast to kernel still there after arena: %s", arena.Program.Format(i))
		}
	}
	if !found {
		t.Errorf("no PROBE_MEM32 store after arena")
	}
	// The printed form changes too (the dump shows the PROBE_MEM32 store).
	if before, after := p0.Format(4), arena.Program.Format(4); before == after {
		t.Errorf("store prints the same before and after arena: %q", after)
	}
	if fixups.Program.Len() != arena.Program.Len()+3 {
		t.Errorf("fixups: %d -> %d instructions, want the 4-instruction div guard", arena.Program.Len(), fixups.Program.Len())
	}
	n := 0
	for _, c := range fixups.Changed {
		if c {
			n++
		}
	}
	if n != 3 {
		t.Errorf("fixups: %d instructions marked changed, want the 3 inserted", n)
	}
}

func arenaProg(t *testing.T, text string) *ir.Program {
	t.Helper()
	p := assemble(t, text)
	// "mov %rX, %rX" at the start of a line marked "; cast" is not
	// expressible in the syntax: callers patch casts in by index.
	return p
}

func castKern(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: 0xbf, Dst: dst, Src: src, Off: 1, Imm: ir.CastToKernel}
}

func castUser(dst, src ir.Register) ir.Instruction {
	return ir.Instruction{Op: 0xbf, Dst: dst, Src: src, Off: 1, Imm: ir.CastToUser}
}

func TestArenaCases(t *testing.T) {
	type want struct {
		probe []int // instructions that must become PROBE_*
		err   string
	}
	cases := []struct {
		name  string
		asm   string
		casts map[int]ir.Instruction
		aux   func(p *ir.Program)
		want  want
	}{
		{"spill-fill", `
mov %r1, %r1
stxdw [%r10-16], %r1
mov %r1, 0
ldxdw %r3, [%r10-16]
stxw [%r3+4], %r1
ldxw %r0, [%r10-16]
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{probe: []int{4}}},
		{"narrow-fill-is-scalar", `
mov %r1, %r1
stxdw [%r10-16], %r1
ldxw %r3, [%r10-16]
stb [%r10-1], 0
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{}},
		{"arith-64-to-32", `
mov %r1, %r1
add %r1, 8
lsh %r2, 3
add %r1, %r2
ldxdw %r0, [%r1+0]
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{probe: []int{4}}},
		{"cast-user-is-scalar", `
mov %r1, %r1
mov %r2, %r1
mov %r2, %r2
stxdw [%r10-8], %r2
ldxdw %r0, [%r10-8]
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1), 2: castUser(ir.R2, ir.R1)}, nil, want{}},
		{"conflict", `
mov %r2, %r10
add %r2, -8
jeq %r1, 0, +1
mov %r2, %r1
stdw [%r2+0], 1
exit`, map[int]ir.Instruction{3: castKern(ir.R2, ir.R1)}, nil, want{err: "instruction 4: same instruction used with an arena pointer and stack"}},
		{"null-or-arena", `
mov %r2, 0
jeq %r1, 0, +1
mov %r2, %r1
jeq %r2, 0, +1
stdw [%r2+0], 1
mov %r0, 0
exit`, map[int]ir.Instruction{2: castKern(ir.R2, ir.R1)}, nil, want{probe: []int{4}}},
		{"fetch-and-rejected", `
mov %r1, %r1
lock fetch and [%r1+0], %r2
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{err: "instruction 1: fetch-and/or/xor"}},
		{"atomics", `
mov %r1, %r1
lock add [%r1+0], %r2
lock fetch add32 [%r1+8], %r2
lock cmpxchg [%r1+16], %r2
mov %r0, 0
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{probe: []int{1, 2, 3}}},
		{"static-call-arg", `
mov %r1, %r1
call local f
exit
f:
stdw [%r1+0], 1
mov %r0, 0
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{probe: []int{3}}},
		{"static-call-return", `
call local f
stdw [%r0+0], 1
exit
f:
mov %r0, %r1
exit`, map[int]ir.Instruction{3: castKern(ir.R0, ir.R1)}, nil, want{probe: []int{1}}},
		{"global-arg-arena-is-scalar-until-cast", `
mov %r1, 0
mov %r2, %r10
call local f
exit
f:
add %r1, 16
mov %r1, %r1
stdw [%r1+0], 1
mov %r0, 0
exit`, map[int]ir.Instruction{5: castKern(ir.R1, ir.R1)}, func(p *ir.Program) {
			p.Aux[4].GlobalFunc = true
			p.Aux[4].ArgArena = regs(ir.R1)
		}, want{probe: []int{6}}},
		{"global-without-tag", `
mov %r1, 0
call local f
exit
f:
stdw [%r1+0], 1
mov %r0, 0
exit`, nil, func(p *ir.Program) { p.Aux[3].GlobalFunc = true }, want{}},
		{"sext-load", `
mov %r1, %r1
ldxsh %r0, [%r1+2]
exit`, map[int]ir.Instruction{0: castKern(ir.R1, ir.R1)}, nil, want{probe: []int{1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := arenaProg(t, c.asm)
			for i, ins := range c.casts {
				p.Insns[i] = ins
			}
			if c.aux != nil {
				c.aux(p)
			}
			orig := p.Clone()
			err := (Arena{}).Run(p, &pipeline.Context{})
			if c.want.err != "" {
				var ie *ir.Error
				if err == nil || !strings.Contains(err.Error(), c.want.err) || !errors.As(err, &ie) {
					t.Fatalf("error %v, want %q", err, c.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for i, ins := range p.Insns {
				m := ins.Mode()
				if ins.Class().IsLoadStore() && (m == ir.ModeProbeMem32 || (ins.Class() == ir.ClassLDX && m == ir.ModeProbeMem32SX) || (ins.Class() == ir.ClassSTX && m == ir.ModeProbeAtomic)) {
					got = append(got, i)
					if p.Aux[i].PtrType != ir.PtrArena {
						t.Errorf("%d: PtrType %v", i, p.Aux[i].PtrType)
					}
					// Only the mode changed.
					if o := orig.Insns[i]; o.Op&^0xe0 != ins.Op&^0xe0 || o.Dst != ins.Dst || o.Src != ins.Src || o.Off != ins.Off || o.Imm != ins.Imm {
						t.Errorf("%d: %+v became %+v", i, o, ins)
					}
				}
				if orig.Insns[i].IsCastToKernel() && (ins != ir.Instruction{Op: 0xbc, Dst: orig.Insns[i].Dst, Src: orig.Insns[i].Src}) {
					t.Errorf("%d: cast to kernel became %+v, want mov32", i, ins)
				}
				if orig.Insns[i].IsCastToUser() && ins != orig.Insns[i] {
					t.Errorf("%d: cast to user changed", i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want.probe) && len(got)+len(c.want.probe) > 0 {
				t.Errorf("PROBE accesses %v, want %v", got, c.want.probe)
			}
			if c.name == "global-arg-arena-is-scalar-until-cast" && p.Insns[4].Class() != ir.ClassALU64 {
				t.Errorf("arithmetic on the scalar argument was narrowed: %+v", p.Insns[4])
			}
			if c.name == "arith-64-to-32" {
				if p.Insns[1].Class() != ir.ClassALU || p.Insns[3].Class() != ir.ClassALU || p.Insns[2].Class() != ir.ClassALU64 {
					t.Errorf("arena arithmetic not narrowed (or scalar arithmetic narrowed): %+v", p.Insns[1:4])
				}
			}
			if !p.UsesArena && len(c.casts) > 0 {
				t.Errorf("UsesArena not set")
			}
		})
	}
}

// TestFromXlatedSub32: in an xlated program a base register holding a
// 32-bit result is an arena pointer, through copies and spills.
func TestFromXlatedSub32(t *testing.T) {
	p := assemble(t, `
mov32 %r2, %r1
mov %r3, %r2
stxdw [%r10-8], %r3
ldxdw %r4, [%r10-8]
ldxw %r0, [%r4+0]
ldxw %r5, [%r10-8]
stxdw [%r10-16], %r0
exit`)
	if err := (Arena{}).Run(p, &pipeline.Context{FromXlated: true}); err != nil {
		t.Fatal(err)
	}
	for i, ins := range p.Insns {
		want := i == 4
		if got := ins.Class().IsLoadStore() && ins.Mode() == ir.ModeProbeMem32; got != want {
			t.Errorf("%d: PROBE_MEM32 %v, want %v", i, got, want)
		}
	}
	if p.Aux[2].PtrType != ir.PtrStack || p.Aux[5].PtrType != ir.PtrStack {
		t.Errorf("stack accesses: %v %v", p.Aux[2].PtrType, p.Aux[5].PtrType)
	}
}

func TestFixupsErrors(t *testing.T) {
	cases := []struct {
		name, asm string
		aux       func(p *ir.Program)
		ctx       *pipeline.Context
		opts      Options
		err       string
	}{
		{"inlined-helper", "call 181\nexit", nil, nil, Options{}, "instruction 0: call of helper 181 (loop)"},
		{"map-helper-unknown-map", "lddw %r1, 0\ncall 1\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.PseudoMapFD
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "m", ir.SymMap
		}, &pipeline.Context{Symbols: map[string]uint64{"m": 1 << 63}}, Options{}, `instruction 2: map helper on "m": the kernel calls the map type's own functions; Options.Maps needs`},
		{"tail-call-const-key-no-size", "lddw %r2, 0\nmov %r3, 1\ncall 12\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.PseudoMapFD
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "progs", ir.SymMap
		}, &pipeline.Context{Symbols: map[string]uint64{"progs": 1 << 63}}, Options{}, `instruction 3: tail call with constant key 1: the size of prog array "progs" is needed`},
		{"tail-call-key-from-stack", "lddw %r2, 0\nldxdw %r3, [%r10-8]\ncall 12\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.PseudoMapFD
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "progs", ir.SymMap
			p.Aux[2].PtrType = ir.PtrStack
		}, &pipeline.Context{Symbols: map[string]uint64{"progs": 1 << 63}}, Options{}, "instruction 3: tail call: the key (r3) or the map (r2) may be a constant"},
		{"helper-no-address", "call 7\nexit", nil, &pipeline.Context{Symbols: map[string]uint64{CallBaseSymbol: 1 << 40}}, Options{}, `instruction 0: no address for helper 7`},
		{"kfunc-no-address", "call 7\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.CallKfunc
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "bpf_foo", ir.SymKfunc
		}, &pipeline.Context{Symbols: map[string]uint64{CallBaseSymbol: 1 << 40}}, Options{}, `instruction 0: no address for kfunc "bpf_foo"`},
		{"kfunc-rewritten", "call 7\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.CallKfunc
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "bpf_obj_new_impl", ir.SymKfunc
		}, nil, Options{}, "instruction 0: call of kfunc bpf_obj_new_impl"},
		{"map-no-symbol", "lddw %r1, 0\nexit", func(p *ir.Program) { p.Insns[0].Src = ir.PseudoMapFD }, nil, Options{}, "instruction 0: ld_imm64 with src 1 has no symbol"},
		{"map-no-address", "lddw %r1, 0\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.PseudoMapFD
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "m", ir.SymMap
		}, nil, Options{}, `instruction 0: no address for map "m"`},
		{"ld-abs", "mov %r6, %r1\nmov %r0, 0\nexit", func(p *ir.Program) { p.Insns[1] = ir.Instruction{Op: 0x20, Imm: 4} }, nil, Options{}, "instruction 1: LD_ABS"},
		{"ctx", "ldxw %r0, [%r1+0]\nexit", func(p *ir.Program) { p.Aux[0].PtrType = ir.PtrCtx }, nil, Options{}, "instruction 0: context access"},
		{"btf-pointer", "call 158\nldxdw %r0, [%r0+16]\nexit", func(p *ir.Program) { (Arena{}).Run(p, nil) }, nil, Options{}, "instruction 1: access through what may be a pointer to a kernel object"},
		{"kfunc-pointer", "call 7\nldxdw %r0, [%r0+16]\nexit", func(p *ir.Program) {
			p.Insns[0].Src = ir.CallKfunc
			p.Aux[0].Symbol, p.Aux[0].SymbolKind = "bpf_task_acquire", ir.SymKfunc
			(Arena{}).Run(p, nil)
		}, nil, Options{}, "instruction 1: access through what may be a pointer to a kernel object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := assemble(t, c.asm)
			if c.aux != nil {
				c.aux(p)
			}
			err := (Fixups{Options: c.opts}).Run(p, c.ctx)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
	// ctx passes with CtxIsMemory.
	p := assemble(t, "ldxw %r0, [%r1+0]\nexit")
	p.Aux[0].PtrType = ir.PtrCtx
	if err := (Fixups{Options: Options{CtxIsMemory: true}}).Run(p, nil); err != nil {
		t.Error(err)
	}
}

func TestFixupsAddresses(t *testing.T) {
	p := assemble(t, "lddw %r1, 0\nlddw %r2, 0\nlddw %r3, 0\ncall 7\ncall 7\nexit")
	p.Insns[0].Src = ir.PseudoMapFD
	p.Aux[0].Symbol, p.Aux[0].SymbolKind = "m", ir.SymMap
	p.Insns[2].Src, p.Insns[3].Imm = ir.PseudoMapValue, 24
	p.Aux[2].Symbol, p.Aux[2].SymbolKind = "m", ir.SymMap
	p.Insns[4].Src, p.Insns[5].Imm = ir.PseudoMapValue, 16
	p.Aux[4].Symbol, p.Aux[4].SymbolKind = ".addr_space.1", ir.SymArena
	p.Insns[7].Src = ir.CallKfunc
	p.Aux[7].Symbol, p.Aux[7].SymbolKind = "bpf_arena_alloc_pages", ir.SymKfunc
	base := uint64(0xffffffff81000000)
	ctx := &pipeline.Context{Symbols: map[string]uint64{
		CallBaseSymbol: base, HelperSymbol(7): base + 0x1234, "bpf_arena_alloc_pages": base - 0x10,
		"m": 0xffff888012345600, ".addr_space.1": 0x100000000 + 0x3f000,
	}}
	if err := (Fixups{}).Run(p, ctx); err != nil {
		t.Fatal(err)
	}
	wantLd := []uint64{0xffff888012345600, 0xffff888012345600 + 24, 0x100000000 + 0x3f000 + 16}
	for k, w := range wantLd {
		i := 2 * k
		if p.Insns[i].Src != 0 || ir.Imm64(p.Insns[i], p.Insns[i+1]) != w {
			t.Errorf("ld_imm64 %d: src %d value %#x, want plain %#x", i, p.Insns[i].Src, ir.Imm64(p.Insns[i], p.Insns[i+1]), w)
		}
	}
	if p.Insns[6].Imm != 0x1234 || p.Insns[7].Imm != -0x10 {
		t.Errorf("call immediates %d %d", p.Insns[6].Imm, p.Insns[7].Imm)
	}
}

// TestNoPanics feeds random (decodable) programs through the whole pipeline:
// errors are fine, panics are not.
func TestNoPanics(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ops := []uint8{0x07, 0x0f, 0x04, 0x0c, 0xbf, 0xbc, 0xb7, 0xb4, 0x3f, 0x9f, 0x3c, 0x9c, 0x79, 0x61, 0x7b, 0x63, 0x72, 0x15, 0x1d, 0x05, 0x85, 0xdb, 0xc3, 0x91, 0x16, 0x87}
	ok := 0
	for n := 0; n < 30000; n++ {
		k := 2 + rng.Intn(20)
		insns := make([]ir.Instruction, k)
		for i := range insns {
			insns[i] = ir.Instruction{Op: ops[rng.Intn(len(ops))], Dst: ir.Register(rng.Intn(11)), Src: ir.Register(rng.Intn(11)), Off: int16(rng.Intn(k-i) - 1), Imm: int32(rng.Intn(9) - 4)}
			if rng.Intn(8) == 0 {
				insns[i] = castKern(ir.Register(rng.Intn(10)), ir.Register(rng.Intn(10)))
			}
		}
		insns[k-1] = ir.Instruction{Op: ir.OpExit}
		p := ir.NewProgram("rand", insns)
		if ir.Validate(p, ir.DecodeOptions{}) != nil {
			continue
		}
		ok++
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic on %v: %v", p.Insns, r)
				}
			}()
			Default(Options{}).Run(p.Clone(), &pipeline.Context{ForceZext: true})
			JIT().Run(p.Clone(), &pipeline.Context{FromXlated: true})
		}()
	}
	if ok < 100 {
		t.Fatalf("only %d valid random programs", ok)
	}
}

// TestForceZext: with ForceZext every marked 32-bit definition is followed
// by exactly one BPF_ZEXT_REG, and running zext twice adds nothing more.
func TestForceZext(t *testing.T) {
	for _, c := range handCases {
		p := assemble(t, c.asm)
		runPasses(t, p, &pipeline.Context{ForceZext: true}, ZextMark{}, Fixups{}, Zext{})
		before := p.Len()
		runPasses(t, p, &pipeline.Context{ForceZext: true}, Zext{})
		if p.Len() != before {
			t.Errorf("%s: a second zext run added %d instructions", c.name, p.Len()-before)
		}
		for i := 0; i < p.Len(); i++ {
			r, d := def32(p.Insns[i])
			if !d || !p.Aux[i].ZextDst || p.Insns[i].IsZextReg() {
				continue
			}
			if i+1 >= p.Len() || !p.Insns[i+1].IsZextReg() || p.Insns[i+1].Dst != r {
				t.Errorf("%s: %d (%s) marked but not followed by a zext", c.name, i, p.Format(i))
			}
		}
	}
}

func TestOptionsFor(t *testing.T) {
	if !OptionsFor(ebpf.Syscall).CtxIsMemory || OptionsFor(ebpf.XDP).CtxIsMemory || OptionsFor(ebpf.SchedCLS).CtxIsMemory {
		t.Error("OptionsFor: syscall context is memory, XDP and tc are not")
	}
}

// TestMapValuePointer: a map lookup's result is a map value (plain MEM).
func TestMapValuePointer(t *testing.T) {
	p := assemble(t, "call 1\njeq %r0, 0, +1\nldxdw %r0, [%r0+8]\nexit")
	if err := (Arena{}).Run(p, nil); err != nil {
		t.Fatal(err)
	}
	if p.Aux[2].PtrType != ir.PtrMapValue || p.Insns[2].Mode() != ir.ModeMEM {
		t.Errorf("load through a map value: %v, mode %#x", p.Aux[2].PtrType, uint8(p.Insns[2].Mode()))
	}
}

// TestCallbackAnalysed: a callback function (address taken with ld_imm64
// src=4, called by a helper) is analysed too: its arena accesses are found
// and its R0 counts as read at exit.
func TestCallbackAnalysed(t *testing.T) {
	p := assemble(t, `
mov %r1, 4
lddw %r2, 0
mov %r3, 0
mov %r4, 0
call 181
exit
cb:
mov %r2, %r2
stdw [%r2+0], 1
mov32 %r0, 0
exit`)
	// r2 = &cb (ld_imm64 src=4), and a cast in the callback.
	p.Insns[1].Src, p.Insns[1].Imm = ir.PseudoFunc, int32(7-2)
	p.Insns[7] = castKern(ir.R2, ir.R2)
	if err := ir.Validate(p, ir.DecodeOptions{}); err != nil {
		t.Fatal(err)
	}
	runPasses(t, p, nil, ZextMark{}, Arena{})
	if p.Insns[8].Mode() != ir.ModeProbeMem32 {
		t.Errorf("callback's arena store not converted: %s", p.Format(8))
	}
	if !p.Aux[9].ZextDst {
		t.Errorf("callback's R0 not taken as read at exit")
	}
}

// TestProbeAtomicCmpxchgZext: a 32-bit cmpxchg on arena memory whose R0 is
// read as 64 bits gets the kernel's zero-extension after its PROBE_ATOMIC
// form, even without ForceZext.
func TestProbeAtomicCmpxchgZext(t *testing.T) {
	p := assemble(t, `
mov %r1, %r1
mov32 %r0, 1
mov32 %r2, 2
lock cmpxchg32 [%r1+0], %r2
mov %r3, %r0
mov %r0, %r3
exit`)
	p.Insns[0] = castKern(ir.R1, ir.R1)
	runPasses(t, p, &pipeline.Context{}, ZextMark{}, Arena{}, Fixups{}, Zext{})
	if p.Insns[3].Mode() != ir.ModeProbeAtomic {
		t.Fatalf("not PROBE_ATOMIC: %s", p.Format(3))
	}
	if !p.Insns[4].IsZextReg() || p.Insns[4].Dst != ir.R0 || p.Aux[4].OrigIndex != -1 {
		t.Errorf("no zext of r0 after the cmpxchg: %s", p.Format(4))
	}
	if p.Len() != 8 {
		t.Errorf("%d instructions, want 8 (one zext)", p.Len())
	}
}

// TestFromXlatedNullOrStack: in an xlated program, "w1 = 0" merged with a
// stack pointer is a NULL check pattern, not an arena pointer nor a conflict.
func TestFromXlatedNullOrStack(t *testing.T) {
	p := assemble(t, `
mov32 %r1, 0
jeq %r2, 0, +2
mov %r1, %r10
add %r1, -8
jeq %r1, 0, +1
stdw [%r1+0], 1
mov %r0, 0
exit`)
	if err := (Arena{}).Run(p, &pipeline.Context{FromXlated: true}); err != nil {
		t.Fatal(err)
	}
	if p.Insns[5].Mode() != ir.ModeMEM || p.Aux[5].PtrType != ir.PtrStack {
		t.Errorf("store: %s, %v", p.Format(5), p.Aux[5].PtrType)
	}
}

// TestFixupsIdempotent: running the fixups twice adds the guards once.
func TestFixupsIdempotent(t *testing.T) {
	for _, c := range handCases {
		p := assemble(t, c.asm)
		runPasses(t, p, nil, Fixups{})
		n := p.Len()
		runPasses(t, p, nil, Fixups{})
		if p.Len() != n {
			t.Errorf("%s: second run: %d -> %d instructions", c.name, n, p.Len())
		}
	}
}

// TestTailCallForms: the direct form for one constant key below the array
// size (poke descriptors numbered in program order), the indirect form for
// a variable key, different keys on different paths, or a key past the end.
func TestTailCallForms(t *testing.T) {
	p := assemble(t, `
lddw %r2, 0
mov %r3, 1
call 12
lddw %r2, 0
ldxdw %r3, [%r1+0]
call 12
lddw %r2, 0
mov %r3, 1
jeq %r1, 0, +1
mov %r3, 2
call 12
lddw %r2, 0
mov32 %r3, 9
call 12
lddw %r2, 0
mov %r3, 0
call 12
exit`)
	for _, i := range []int{0, 4, 8, 14, 18} {
		p.Insns[i].Src = ir.PseudoMapFD
		p.Aux[i].Symbol, p.Aux[i].SymbolKind = "progs", ir.SymMap
	}
	p.Aux[6].PtrType = ir.PtrCtx
	ctx := &pipeline.Context{Symbols: map[string]uint64{"progs": 0xffff888000001000}}
	if err := (Fixups{Options: Options{CtxIsMemory: true, MapMaxEntries: map[string]uint32{"progs": 4}}}).Run(p, ctx); err != nil {
		t.Fatal(err)
	}
	want := map[int]int32{3: 1, 7: 0, 13: 0, 17: 0, 21: 2}
	for i, imm := range want {
		if p.Insns[i].Op != ir.OpTailCall || p.Insns[i].Imm != imm {
			t.Errorf("%d: %s imm %d, want tail call imm %d", i, p.Format(i), p.Insns[i].Imm, imm)
		}
	}
}

// TestInlinedHelpersNeedAddresses: without the addresses the inlined
// helpers say which symbol they need.
func TestInlinedHelpersNeedAddresses(t *testing.T) {
	for id, sym := range map[int32]string{8: CPUNumberSymbol, 118: JiffiesSymbol} {
		p := assemble(t, "call 7\nexit")
		p.Insns[0].Imm = id
		err := (Fixups{}).Run(p, nil)
		if err == nil || !strings.Contains(err.Error(), "instruction 0:") || !strings.Contains(err.Error(), sym) {
			t.Errorf("helper %d: error %v", id, err)
		}
	}
}

func TestOptionsForObject(t *testing.T) {
	obj, err := irelf.Load("../testdata/arena/p40_maps.o")
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsForObject(obj, obj.Programs[0])
	if !o.CtxIsMemory || o.Maps["arr"].Type != 2 || o.Maps["arr"].MaxEntries != 10 || o.Maps["hsh"].KeySize != 8 {
		t.Errorf("options %+v", o)
	}
}

// TestHelperFuncsInKallsyms: the helper function names exist on this kernel.
func TestHelperFuncsInKallsyms(t *testing.T) {
	if why := kernelAvailable(); why != "" {
		t.Skip(why)
	}
	var names []string
	for _, n := range HelperFuncs {
		names = append(names, n)
	}
	if _, err := kallsyms(append(names, KernelSymbols...)...); err != nil {
		t.Error(err)
	}
}
