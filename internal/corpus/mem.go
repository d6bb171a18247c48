package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// valueMap is an array map with one 1 KiB value; ld_imm64 of its value
// address gives a map-value pointer without a lookup.
var valueMap = kernel.MapDef{Type: kernel.MapArray, KeySize: 4, ValueSize: 1024, MaxEntries: 1}

var sizes = []struct {
	name string
	sz   ir.Size
}{{"b", B8}, {"h", H16}, {"w", W32}, {"dw", DW}}

// Offsets around the disp8/disp32 boundary, aligned to each size (stack
// accesses must be aligned).
func stackOffsets(sz ir.Size) []int16 {
	n := int16(sz.Bytes())
	return []int16{-n, -128 + n, -128, -128 - n, -256, -512}
}

// Map-value offsets relative to value+512 (any alignment is fine there).
var mapOffsets = []int16{-129, -128, -1, 0, 1, 127, 128, 511 - 8}

var stImms = []int32{0, 1, -1, 127, 128, -128, -129, 0x7fff, 0x12345678, -0x80000000}

func memFamily() {
	for _, s := range sizes {
		// Loads.
		add(Entry{
			Name: fmt.Sprintf("ldx_%s_stack", s.name),
			Note: "loads from r10 (rbp) at offsets around -128, into every register",
			Build: func(b *B) {
				scalarFrame(b, func(b *B) {
					initStack(b)
					for _, off := range stackOffsets(s.sz) {
						if off >= -16 && off < 0 {
							continue // the frame's spill slots
						}
						for _, d := range allRegs {
							b.Emit(Ldx(s.sz, d, R10, off))
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("ldx_%s_map", s.name),
			Note: "loads through every base register (r13 needs a displacement) at offsets -129..128",
			Maps: []kernel.MapDef{valueMap},
			Build: func(b *B) {
				mapBases(b, func(b *B, base ir.Register) {
					for _, off := range mapOffsets {
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
			Name: fmt.Sprintf("stx_%s_map", s.name),
			Note: "stores of every register (sil/dil byte forms) through every base register",
			Maps: []kernel.MapDef{valueMap},
			Build: func(b *B) {
				mapBases(b, func(b *B, base ir.Register) {
					for _, off := range mapOffsets {
						for _, r := range allRegs {
							b.Emit(Stx(s.sz, base, r, off))
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("stx_%s_stack", s.name),
			Note: "stores of every register to r10 at offsets around -128",
			Build: func(b *B) {
				scalarFrame(b, func(b *B) {
					for _, off := range stackOffsets(s.sz) {
						if off >= -16 && off < 0 {
							continue
						}
						for _, r := range allRegs {
							b.Emit(Stx(s.sz, R10, r, off))
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("st_%s_map", s.name),
			Note: "immediate stores (imm8/16/32 boundaries) through every base register",
			Maps: []kernel.MapDef{valueMap},
			Build: func(b *B) {
				mapBases(b, func(b *B, base ir.Register) {
					for _, off := range mapOffsets {
						for _, imm := range stImms {
							b.Emit(St(s.sz, base, off, imm))
						}
					}
				})
			},
		})
		add(Entry{
			Name: fmt.Sprintf("st_%s_stack", s.name),
			Note: "immediate stores to r10 at offsets around -128",
			Build: func(b *B) {
				for _, off := range stackOffsets(s.sz) {
					for _, imm := range stImms {
						b.Emit(St(s.sz, R10, off, imm))
					}
				}
				b.Emit(Ldx(s.sz, R0, R10, stackOffsets(s.sz)[2])).Exit()
			},
		})
		if s.sz != DW {
			add(Entry{
				Name: fmt.Sprintf("ldsx_%s_map", s.name),
				Note: "sign-extending loads through every base register",
				Maps: []kernel.MapDef{valueMap},
				Build: func(b *B) {
					mapBases(b, func(b *B, base ir.Register) {
						for _, off := range mapOffsets {
							for _, d := range allRegs {
								if d != base {
									b.Emit(Ldsx(s.sz, d, base, off))
								}
							}
						}
					})
				},
			})
			add(Entry{
				Name: fmt.Sprintf("ldsx_%s_stack", s.name),
				Note: "sign-extending loads from r10",
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						initStack(b)
						for _, off := range stackOffsets(s.sz) {
							if off >= -16 && off < 0 {
								continue
							}
							for _, d := range allRegs {
								b.Emit(Ldsx(s.sz, d, R10, off))
							}
						}
					})
				},
			})
		}
	}
}

// mapBases runs body once for each base register r0..r9 holding a pointer
// 512 bytes into the value of map 0; all other registers start as scalars
// from the syscall context.
func mapBases(b *B, body func(b *B, base ir.Register)) {
	scalars(b, allRegs...)
	for _, base := range allRegs {
		b.Emit(LdMapValue(base, 0, 512)...)
		body(b, base)
		b.Emit(Mov64(base, int32(base)))
	}
	b.Emit(Mov64(R0, 0)).Exit()
}

// initStack fills r10-512..r10-17 with the context scalars so that loads
// from the stack read defined values.
func initStack(b *B) {
	for off := -512; off < -16; off += 8 {
		b.Emit(Stx(DW, R10, allRegs[(off/8+64)%10], int16(off)))
	}
}
