package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
)

var aluOps = []struct {
	name string
	op   ir.ALUOp
}{
	{"add", ir.ALUAdd}, {"sub", ir.ALUSub}, {"mul", ir.ALUMul}, {"div", ir.ALUDiv},
	{"mod", ir.ALUMod}, {"or", ir.ALUOr}, {"and", ir.ALUAnd}, {"xor", ir.ALUXor},
	{"lsh", ir.ALULsh}, {"rsh", ir.ALURsh}, {"arsh", ir.ALUArsh}, {"mov", ir.ALUMov},
}

// Immediates around the encodings' boundaries: 0 (xor for mov), imm8
// (127/128, -128/-129), imm32 extremes, negatives (sign-extended mov).
var (
	immGeneric = []int32{0, 1, -1, 127, 128, -128, -129, 255, 0x7fffffff, -0x80000000, 0x12345678, -0x1234568}
	immDiv     = []int32{1, 2, 7, 127, 128, -1, -128, -129, 0x7fffffff, -0x80000000, 0x12345}
	immSDiv    = []int32{1, 2, -2, 7, -7, 127, 128, -129, -1, 0x7fffffff, -0x80000000}
	immShift32 = []int32{0, 1, 2, 7, 8, 16, 31}
	immShift64 = []int32{0, 1, 2, 31, 32, 33, 63}
)

func className(c ir.Class) string {
	if c == ALU {
		return "alu32"
	}
	return "alu64"
}

func aluFamily() {
	for _, cls := range []ir.Class{ALU, ALU64} {
		for _, o := range aluOps {
			imms := immGeneric
			switch o.op {
			case ir.ALUDiv, ir.ALUMod:
				imms = immDiv
			case ir.ALULsh, ir.ALURsh, ir.ALUArsh:
				imms = immShift32
				if cls == ALU64 {
					imms = immShift64
				}
			}
			add(Entry{
				Name: fmt.Sprintf("%s_%s_k", className(cls), o.name),
				Note: fmt.Sprintf("%s %s with immediates %v into every register", className(cls), o.name, imms),
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						for _, imm := range imms {
							for _, r := range allRegs {
								b.Emit(AluK(cls, o.op, r, imm))
							}
						}
					})
				},
			})
			add(Entry{
				Name: fmt.Sprintf("%s_%s_x", className(cls), o.name),
				Note: fmt.Sprintf("%s %s for every (dst, src) pair of r0..r9 (rax/rcx/rdx cases, BMI2 shifts, verifier zero guards)", className(cls), o.name),
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						for _, d := range allRegs {
							for _, s := range allRegs {
								b.Emit(AluX(cls, o.op, d, s))
							}
						}
					})
				},
			})
		}
		for _, o := range []struct {
			name string
			op   ir.ALUOp
		}{{"sdiv", ir.ALUDiv}, {"smod", ir.ALUMod}} {
			add(Entry{
				Name: fmt.Sprintf("%s_%s_k", className(cls), o.name),
				Note: "signed division by immediates, -1 included (the verifier rewrites it)",
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						for _, imm := range immSDiv {
							for _, r := range allRegs {
								b.Emit(SAluK(cls, o.op, r, imm))
							}
						}
					})
				},
			})
			add(Entry{
				Name: fmt.Sprintf("%s_%s_x", className(cls), o.name),
				Note: "signed division by registers, every pair (verifier guards for 0 and -1)",
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						for _, d := range allRegs {
							for _, s := range allRegs {
								b.Emit(SAluX(cls, o.op, d, s))
							}
						}
					})
				},
			})
		}
		add(Entry{
			Name: className(cls) + "_neg",
			Note: "neg of every register",
			Build: func(b *B) {
				scalarFrame(b, func(b *B) {
					for _, r := range allRegs {
						b.Emit(Neg(cls, r))
					}
				})
			},
		})
		widths := []int16{8, 16}
		if cls == ALU64 {
			widths = append(widths, 32)
		}
		add(Entry{
			Name: className(cls) + "_movsx",
			Note: fmt.Sprintf("sign-extending moves of widths %v, every pair", widths),
			Build: func(b *B) {
				scalarFrame(b, func(b *B) {
					for _, w := range widths {
						for _, d := range allRegs {
							for _, s := range allRegs {
								b.Emit(MovSX(cls, d, s, w))
							}
						}
					}
				})
			},
		})
	}
	for _, bits := range []int32{16, 32, 64} {
		for _, v := range []struct {
			name string
			cls  ir.Class
			src  ir.Source
		}{{"le", ALU, ir.EndToLE}, {"be", ALU, ir.EndToBE}, {"bswap", ALU64, ir.EndToLE}} {
			add(Entry{
				Name: fmt.Sprintf("end_%s%d", v.name, bits),
				Note: "byte-order conversion of every register",
				Build: func(b *B) {
					scalarFrame(b, func(b *B) {
						for _, r := range allRegs {
							b.Emit(End(v.cls, v.src, r, bits))
						}
					})
				},
			})
		}
	}
	ldValues := []uint64{0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, ^uint64(0),
		uint64(0xffffffff80000000), uint64(0xffffffff7fffffff), 0x123456789abcdef0, 0x8000000000000000}
	add(Entry{
		Name: "ldimm64_values",
		Note: "ld_imm64 of u32, s32 and full 64-bit constants into every register (mov32 / sign-extended mov / movabs)",
		Build: func(b *B) {
			scalarFrame(b, func(b *B) {
				for k, v := range ldValues {
					for j := range allRegs {
						b.Emit(LdImm64(allRegs[(j+k)%10], v)...)
					}
				}
			})
		},
	})
	add(Entry{
		Name: "mov_x_pairs",
		Note: "64- and 32-bit register moves, every pair (64-bit dst==src emits nothing)",
		Build: func(b *B) {
			scalarFrame(b, func(b *B) {
				for _, cls := range []ir.Class{ALU64, ALU} {
					for _, d := range allRegs {
						for _, s := range allRegs {
							b.Emit(AluX(cls, ir.ALUMov, d, s))
						}
					}
				}
			})
		},
	})
}
