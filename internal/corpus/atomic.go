package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

var atomicOps = []struct {
	name string
	imm  int32
}{
	{"add", ir.AtomicAdd}, {"and", ir.AtomicAnd}, {"or", ir.AtomicOr}, {"xor", ir.AtomicXor},
	{"fetch_add", ir.AtomicAdd | ir.AtomicFetch}, {"fetch_and", ir.AtomicAnd | ir.AtomicFetch},
	{"fetch_or", ir.AtomicOr | ir.AtomicFetch}, {"fetch_xor", ir.AtomicXor | ir.AtomicFetch},
	{"xchg", ir.AtomicXchg}, {"cmpxchg", ir.AtomicCmpXchg},
}

var atomicOffsets = []int16{-128, 0, 120, 128}

func atomicFamily() {
	for _, o := range atomicOps {
		for _, s := range []struct {
			name string
			sz   ir.Size
		}{{"w", W32}, {"dw", DW}} {
			add(Entry{
				Name: fmt.Sprintf("atomic_%s_%s", o.name, s.name),
				Note: "atomic on a map value through every base register with every source register, and on the stack",
				Maps: []kernel.MapDef{valueMap},
				Build: func(b *B) {
					mapBases(b, func(b *B, base ir.Register) {
						for _, off := range atomicOffsets {
							for _, r := range allRegs {
								if r != base && !(o.imm == ir.AtomicCmpXchg && base == R0) {
									b.Emit(Atomic(s.sz, base, r, off, o.imm))
								}
							}
						}
					})
				},
			})
		}
	}
	add(Entry{
		Name: "atomic_stack",
		Note: "atomics on the stack through r10 (rbp base)",
		Build: func(b *B) {
			scalarFrame(b, func(b *B) {
				b.Emit(St(DW, R10, -64, 1), St(DW, R10, -256, 2))
				for _, o := range atomicOps {
					for _, r := range []ir.Register{R0, R1, R3, R4, R7} {
						b.Emit(Atomic(DW, R10, r, -64, o.imm), Atomic(W32, R10, r, -256, o.imm))
					}
				}
			})
		},
	})
	for _, s := range sizes {
		add(Entry{
			Name: fmt.Sprintf("load_acquire_%s", s.name),
			Note: "load-acquire through every base register (a plain mov on x86)",
			Maps: []kernel.MapDef{valueMap},
			Build: func(b *B) {
				mapBases(b, func(b *B, base ir.Register) {
					for _, off := range atomicOffsets {
						for _, d := range allRegs {
							if d != base {
								b.Emit(Atomic(s.sz, d, base, off, ir.AtomicLoadAcq))
							}
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("store_release_%s", s.name),
			Note: "store-release of every register through every base register",
			Maps: []kernel.MapDef{valueMap},
			Build: func(b *B) {
				mapBases(b, func(b *B, base ir.Register) {
					for _, off := range atomicOffsets {
						for _, r := range allRegs {
							b.Emit(Atomic(s.sz, base, r, off, ir.AtomicStoreRel))
						}
					}
				})
			},
		})
	}
}
