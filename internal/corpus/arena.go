package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// arenaUser is the arena's fixed user address (map_extra), so that the
// cast-to-user immediate and arena-value loads are the same on every load.
const arenaUser = 0x100000000000

var arenaMap = kernel.MapDef{Type: kernel.MapArena, MaxEntries: 16, Extra: arenaUser}

// arenaBases runs body once per base register holding an arena pointer
// (user address + 0x1000, cast into the arena: PTR_TO_ARENA); the other
// registers are scalars from the context.
func arenaBases(b *B, bases []ir.Register, body func(b *B, base ir.Register)) {
	scalars(b, allRegs...)
	for _, base := range bases {
		b.Emit(LdMapValue(base, 0, 0x1000)...)
		b.Emit(CastKern(base, base))
		body(b, base)
		b.Emit(Mov64(base, int32(base)))
	}
	b.Emit(Mov64(R0, 0)).Exit()
}

var arenaOffsets = []int16{-129, -128, 0, 8, 127, 128, 0x7ff8}

func arenaFamily() {
	for _, s := range sizes {
		add(Entry{
			Name: fmt.Sprintf("arena_ldx_%s", s.name),
			Note: "arena loads [base + r12 + off] (PROBE_MEM32, shown as MEM in the dump) through every base register",
			Maps: []kernel.MapDef{arenaMap},
			Build: func(b *B) {
				arenaBases(b, allRegs, func(b *B, base ir.Register) {
					for _, off := range arenaOffsets {
						for _, d := range allRegs {
							if d != base {
								b.Emit(Ldx(s.sz, d, base, off))
							}
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("arena_stx_%s", s.name),
			Note: "arena stores of every register through every base register",
			Maps: []kernel.MapDef{arenaMap},
			Build: func(b *B) {
				arenaBases(b, allRegs, func(b *B, base ir.Register) {
					for _, off := range arenaOffsets {
						for _, r := range allRegs {
							if r != base {
								b.Emit(Stx(s.sz, base, r, off))
							}
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("arena_st_%s", s.name),
			Note: "arena immediate stores through every base register",
			Maps: []kernel.MapDef{arenaMap},
			Build: func(b *B) {
				arenaBases(b, allRegs, func(b *B, base ir.Register) {
					for _, off := range arenaOffsets {
						for _, imm := range stImms {
							b.Emit(St(s.sz, base, off, imm))
						}
					}
				})
			},
		})
		if s.sz != DW {
			add(Entry{
				Name: fmt.Sprintf("arena_ldsx_%s", s.name),
				Note: "arena sign-extending loads (PROBE_MEM32SX, visible in the dump)",
				Maps: []kernel.MapDef{arenaMap},
				Build: func(b *B) {
					arenaBases(b, allRegs, func(b *B, base ir.Register) {
						for _, off := range arenaOffsets {
							for _, d := range allRegs {
								if d != base {
									b.Emit(Ldsx(s.sz, d, base, off))
								}
							}
						}
					})
				},
			})
		}
	}
	for _, o := range []struct {
		name string
		imm  int32
	}{
		{"add", ir.AtomicAdd}, {"and", ir.AtomicAnd}, {"or", ir.AtomicOr}, {"xor", ir.AtomicXor},
		{"fetch_add", ir.AtomicAdd | ir.AtomicFetch}, {"xchg", ir.AtomicXchg}, {"cmpxchg", ir.AtomicCmpXchg},
	} {
		for _, s := range []struct {
			name string
			sz   ir.Size
		}{{"w", W32}, {"dw", DW}} {
			add(Entry{
				Name: fmt.Sprintf("arena_atomic_%s_%s", o.name, s.name),
				Note: "atomic on arena memory (PROBE_ATOMIC, with an extable entry)",
				Maps: []kernel.MapDef{arenaMap},
				Build: func(b *B) {
					arenaBases(b, []ir.Register{R1, R5, R6, R7, R9}, func(b *B, base ir.Register) {
						for _, off := range []int16{-128, 0, 128} {
							for _, r := range allRegs {
								if r != base {
									b.Emit(Atomic(s.sz, base, r, off, o.imm))
								}
							}
						}
					})
				},
			})
		}
	}
	for _, s := range sizes {
		add(Entry{
			Name: fmt.Sprintf("arena_load_acquire_%s", s.name),
			Note: "load-acquire and store-release on arena memory",
			Maps: []kernel.MapDef{arenaMap},
			Build: func(b *B) {
				arenaBases(b, []ir.Register{R1, R6, R7}, func(b *B, base ir.Register) {
					for _, off := range []int16{-128, 0, 128} {
						for _, r := range []ir.Register{R0, R2, R8} {
							b.Emit(Atomic(s.sz, r, base, off, ir.AtomicLoadAcq))
							b.Emit(Atomic(s.sz, base, r, off, ir.AtomicStoreRel))
						}
					}
				})
			},
		})
	}
	add(Entry{
		Name: "arena_cast_user",
		Note: "addr_space_cast to user space of every register (mov32/shl/or/rol/xor/test/cmove), stored back into the arena",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			scalars(b, allRegs...)
			b.Emit(LdMapValue(R6, 0, 0x2000)...)
			b.Emit(CastKern(R6, R6))
			for _, r := range allRegs {
				if r == R6 {
					continue
				}
				b.Emit(LdMapValue(r, 0, 0x100*int32(r))...)
				b.Emit(CastKern(r, r), CastUser(r, r), Stx(DW, R6, r, int16(8*r)))
			}
			b.Emit(CastUser(R0, R6)).Exit()
		},
	})
	add(Entry{
		Name: "arena_cast_user_pairs",
		Note: "addr_space_cast to user space with different source and destination registers (a 32-bit mov first)",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			scalars(b, allRegs...)
			b.Emit(LdMapValue(R6, 0, 0x2000)...)
			b.Emit(CastKern(R6, R6))
			for _, d := range allRegs {
				for _, s := range []ir.Register{R0, R1, R4, R7, R9} {
					if d == R6 || s == R6 || d == s {
						continue
					}
					b.Emit(CastUser(d, s), Stx(DW, R6, d, 8*int16(d)))
				}
			}
			b.Emit(Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "arena_ptr_arith",
		Note: "arithmetic on arena pointers (the verifier makes it 32-bit), spills and fills of arena pointers",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			scalars(b, R2, R3)
			b.Emit(LdMapValue(R1, 0, 0x1000)...)
			b.Emit(CastKern(R1, R1), MovX64(R4, R1), AluK(ALU64, ir.ALUAdd, R4, 64), AluK(ALU64, ir.ALUAnd, R3, 0xff0))
			b.Emit(AluX(ALU64, ir.ALUAdd, R4, R3), Stx(DW, R4, R2, 0), Stx(DW, R10, R4, -16))
			b.Emit(Ldx(DW, R5, R10, -16), Ldx(DW, R0, R5, 8), Stx(W32, R1, R0, 4)).Exit()
		},
	})
	add(Entry{
		Name: "arena_global_func_arg",
		Note: "a global function (verified on its own) with an arg:arena argument: it arrives as a scalar, the callee casts it and accesses the arena",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			scalars(b, R2)
			b.Emit(LdMapValue(R1, 0, 0x1000)...)
			b.Emit(CastKern(R1, R1)).CallLocal("g").Exit()
			b.Label("g").Declare("g", kernel.FuncDecl{Global: true, Args: 2, ArenaArgs: []int{0}})
			b.Emit(CastKern(R1, R1), Stx(DW, R1, R2, 8), Ldx(W32, R0, R1, 16), St(H16, R1, 24, 7), Ldx(B8, R3, R1, -1), AluX(ALU64, ir.ALUAdd, R0, R3)).Exit()
		},
	})
	add(Entry{
		Name: "arena_static_arg",
		Note: "an arena pointer passed to a static function in r1 (the callee's accesses are arena accesses)",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			b.Emit(LdMapValue(R1, 0, 0x1000)...)
			b.Emit(CastKern(R1, R1)).CallLocal("f").Exit()
			b.Label("f").Emit(St(DW, R1, 8, 5), Ldx(W32, R0, R1, 16)).Exit()
		},
	})
	add(Entry{
		Name: "arena_static_ret",
		Note: "an arena pointer returned from a static function in r0",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			b.CallLocal("f").Emit(St(DW, R0, 8, 5), Ldx(W32, R0, R0, 16)).Exit()
			b.Label("f").Emit(LdMapValue(R0, 0, 0x1000)...)
			b.Emit(CastKern(R0, R0)).Exit()
		},
	})
	add(Entry{
		Name:    "arena_spill_to_callee",
		Pending: "passes/arena (FromXlated): an arena pointer spilled to the caller's stack and loaded by the callee through a stack pointer argument is not inferred (no PROBE_MEM32, no r12 in any function)",
		Note:    "an arena pointer spilled to the stack; the callee gets a pointer to the slot and accesses the arena through the loaded value",
		Maps:    []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			b.Emit(LdMapValue(R1, 0, 0x1000)...)
			b.Emit(CastKern(R1, R1), Stx(DW, R10, R1, -8), MovX64(R1, R10), AluK(ALU64, ir.ALUAdd, R1, -8)).CallLocal("f").Exit()
			b.Label("f").Emit(Ldx(DW, R2, R1, 0), St(W32, R2, 4, 9), Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "arena_across_call",
		Note: "an arena pointer kept in r6 across a bpf-to-bpf call",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			b.Emit(LdMapValue(R6, 0, 0x1000)...)
			b.Emit(CastKern(R6, R6)).CallLocal("f").Emit(Stx(DW, R6, R0, 8), Mov64(R0, 0)).Exit()
			b.Label("f").Emit(Mov64(R0, 3)).Exit()
		},
	})
	add(Entry{
		Name: "arena_alloc_pages",
		Note: "kfunc call bpf_arena_alloc_pages (call rel32 to call base + imm) and use of the page",
		Maps: []kernel.MapDef{arenaMap},
		Build: func(b *B) {
			b.Emit(LdMap(R1, 0)...)
			b.Emit(Mov64(R2, 0), Mov64(R3, 1), Mov64(R4, -1), Mov64(R5, 0)).Kfunc("bpf_arena_alloc_pages")
			b.JmpK(ir.JumpJEQ, R0, 0, "out")
			b.Emit(MovX64(R6, R0), CastKern(R6, R6), St(DW, R6, 0, 42), Ldx(DW, R7, R6, 0), St(W32, R6, 8, 7))
			b.Emit(Atomic(DW, R6, R7, 16, ir.AtomicAdd|ir.AtomicFetch), MovX64(R0, R7))
			b.Label("out").Exit()
		},
	})
}
