package amd64

import (
	"fmt"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// unknowns sets R6..R9 to unknown scalars (bpf_get_prandom_u32) and R0..R5
// to values derived from them, so that the verifier keeps every branch.
func unknowns() []ir.Instruction {
	out := []ir.Instruction{}
	for r := ir.R6; r <= ir.R9; r++ {
		out = append(out, call(helperPrandom), movr(r, ir.R0))
	}
	out = append(out,
		movr(ir.R1, ir.R6), a64k(ir.ALURsh, ir.R1, 3),
		movr(ir.R2, ir.R7), a64k(ir.ALULsh, ir.R2, 7),
		movr(ir.R3, ir.R8), a64x(ir.ALUXor, ir.R3, ir.R9),
		movr(ir.R4, ir.R9), a64k(ir.ALUAnd, ir.R4, 31),
		movr(ir.R5, ir.R6), a64x(ir.ALUAdd, ir.R5, ir.R7),
		movr(ir.R0, ir.R8),
	)
	return out
}

// refresh makes the given registers fresh unknown scalars again (the
// branch refined them), so that the verifier's states prune at the join.
func refresh(regs ...ir.Register) []ir.Instruction {
	var out []ir.Instruction
	for _, r := range regs {
		if r >= ir.R6 {
			out = append(out, call(helperPrandom), movr(r, ir.R0))
		}
	}
	out = append(out, call(helperPrandom))
	for r := ir.R1; r <= ir.R5; r++ {
		out = append(out, movr(r, ir.R0), a64k(ir.ALUAdd, r, int32(r)))
	}
	return out
}

var regPairs = [][2]ir.Register{
	{0, 1}, {1, 0}, {1, 2}, {2, 1}, {3, 4}, {4, 3}, {5, 7}, {7, 5}, {6, 9}, {9, 6}, {8, 0}, {0, 8}, {2, 2}, {5, 5},
}

var immEdges = []int32{0, 1, -1, 127, 128, -128, -129, 0x7fffffff, -0x80000000, 0x1234}

func formPrograms() []goldenProgram {
	var gps []goldenProgram
	add := func(name, note string, parts ...any) {
		gps = append(gps, goldenProgram{name: name, note: note, prog: prog(name, parts...)})
	}
	ret := []ir.Instruction{mov64(ir.R0, 0), exit()}

	// ALU with registers, both widths, every simple op.
	for _, cls := range []ir.Class{ir.ClassALU64, ir.ClassALU} {
		var body []ir.Instruction
		for _, op := range []ir.ALUOp{ir.ALUAdd, ir.ALUSub, ir.ALUAnd, ir.ALUOr, ir.ALUXor, ir.ALUMul, ir.ALUMov} {
			for _, rp := range regPairs {
				body = append(body, alu(cls, op, ir.SourceX, rp[0], rp[1], 0, 0))
			}
		}
		add(fmt.Sprintf("alu_reg_%s", cls), "ALU register forms over register pairs (REX.R/REX.B, rax)", initRegs(), body, ret)
	}
	// ALU with immediates at the imm8/imm32 edges, rax short forms.
	for _, cls := range []ir.Class{ir.ClassALU64, ir.ClassALU} {
		var body []ir.Instruction
		for _, op := range []ir.ALUOp{ir.ALUAdd, ir.ALUSub, ir.ALUAnd, ir.ALUOr, ir.ALUXor, ir.ALUMul, ir.ALUMov} {
			for _, r := range []ir.Register{0, 1, 5, 9} {
				for _, imm := range immEdges {
					body = append(body, alu(cls, op, ir.SourceK, r, 0, 0, imm))
				}
			}
		}
		add(fmt.Sprintf("alu_imm_%s", cls), "ALU immediate forms: imm8/imm32 edges, rax short forms, mov zero/negative", initRegs(), body, ret)
	}
	// movsx, neg, byte swaps.
	{
		var body []ir.Instruction
		for _, rp := range regPairs {
			for _, bits := range []int16{8, 16, 32} {
				body = append(body, alu(ir.ClassALU64, ir.ALUMov, ir.SourceX, rp[0], rp[1], bits, 0))
				if bits != 32 {
					body = append(body, alu(ir.ClassALU, ir.ALUMov, ir.SourceX, rp[0], rp[1], bits, 0))
				}
			}
		}
		for _, r := range []ir.Register{0, 1, 2, 5, 6, 9} {
			body = append(body, a64k(ir.ALUNeg, r, 0), a32k(ir.ALUNeg, r, 0))
			for _, w := range []int32{16, 32, 64} {
				body = append(body,
					alu(ir.ClassALU, ir.ALUEnd, ir.EndToBE, r, 0, 0, w),
					alu(ir.ClassALU, ir.ALUEnd, ir.EndToLE, r, 0, 0, w),
					alu(ir.ClassALU64, ir.ALUEnd, ir.EndToLE, r, 0, 0, w))
			}
		}
		add("movsx_neg_end", "movsx 8/16/32, neg, be/le/bswap 16/32/64", initRegs(), body, ret)
	}
	// Division and modulo through rax/rdx.
	{
		var body []ir.Instruction
		for _, cls := range []ir.Class{ir.ClassALU64, ir.ClassALU} {
			for _, op := range []ir.ALUOp{ir.ALUDiv, ir.ALUMod} {
				for _, off := range []int16{0, 1} {
					for _, d := range []ir.Register{0, 3, 1, 5} {
						for _, s := range []ir.Register{0, 3, 4, 2, 9} {
							body = append(body, alu(cls, op, ir.SourceX, d, s, off, 0))
						}
						body = append(body, alu(cls, op, ir.SourceK, d, 0, off, 7), alu(cls, op, ir.SourceK, d, 0, off, -300))
					}
				}
			}
		}
		add("divmod", "div/mod/sdiv/smod: push/pop rax/rdx, src in rax/rdx via r11, imm via r11", unknowns(), body, ret)
	}
	// Shifts.
	{
		var body []ir.Instruction
		for _, cls := range []ir.Class{ir.ClassALU64, ir.ClassALU} {
			for _, op := range []ir.ALUOp{ir.ALULsh, ir.ALURsh, ir.ALUArsh} {
				for _, d := range []ir.Register{0, 4, 5, 9, 1} {
					for _, imm := range []int32{1, 0, 5, 31} {
						body = append(body, alu(cls, op, ir.SourceK, d, 0, 0, imm))
					}
					for _, s := range []ir.Register{4, 1, 5, 0, 9} {
						body = append(body, alu(cls, op, ir.SourceX, d, s, 0, 0))
					}
				}
			}
		}
		add("shifts", "shifts by 1/imm8 and by register: BMI2 shlx/shrx/sarx, D3 when the count is in rcx", initRegs(), body, ret)
	}
	// ld_imm64 forms.
	{
		var body []ir.Instruction
		for _, r := range []ir.Register{0, 1, 5, 9} {
			for _, v := range []uint64{0, 1, 0xffffffff, 0x80000000, ^uint64(0), 0xffffffff80000000, 0x100000000, 0x123456789abcdef0} {
				body = append(body, lddw(r, v)...)
			}
		}
		add("lddw", "ld_imm64: xor, mov32, sign-extended mov, movabs", body, ret)
	}
	// Loads and stores through the frame pointer and copies of it.
	{
		var body []ir.Instruction
		body = append(body, initRegs()...)
		body = append(body, movr(ir.R7, ir.R10), movr(ir.R3, ir.R10))
		offs := []int16{-8, -128, -136, -512, -504}
		for _, base := range []ir.Register{10, 7, 3} {
			for _, off := range offs {
				body = append(body, st(ir.SizeDW, base, off, -5), st(ir.SizeW, base, off, 0x12345678), st(ir.SizeH, base, off, 0x1234), st(ir.SizeB, base, off, 0x7f))
				for _, src := range []ir.Register{0, 1, 2, 5, 6, 9} {
					for _, sz := range []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW} {
						body = append(body, stx(sz, base, src, off))
					}
				}
				for _, dst := range []ir.Register{0, 1, 2, 5, 6, 9} {
					for _, sz := range []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW} {
						body = append(body, ldx(sz, dst, base, off))
						if sz != ir.SizeDW {
							body = append(body, ldsx(sz, dst, base, off))
						}
					}
				}
			}
		}
		add("ldst", "loads/stores of every size: rbp/r13 bases, disp8/disp32, sil/dil byte stores, sign-extending loads, ST imm", body, ret)
	}
	// Atomics on the stack.
	{
		var body []ir.Instruction
		body = append(body, initRegs()...)
		body = append(body, st(ir.SizeDW, 10, -8, 1), st(ir.SizeDW, 10, -16, 2), st(ir.SizeDW, 10, -200, 2))
		ops := []int32{atomicAdd, atomicAnd, atomicOr, atomicXor, atomicAdd | atomicFetch, atomicAnd | atomicFetch, atomicOr | atomicFetch, atomicXor | atomicFetch, atomicXchg, atomicCmpXchg}
		for _, base := range []ir.Register{1, 7, 0} {
			body = append(body, movr(base, ir.R10))
			for _, sz := range []ir.Size{ir.SizeDW, ir.SizeW} {
				for _, off := range []int16{-8, -200} {
					for _, op := range ops {
						for _, src := range []ir.Register{2, 0, 9} {
							if src == base || base == 0 && op == atomicCmpXchg {
								continue
							}
							body = append(body, atomic(sz, base, src, off, op))
							if op == atomicCmpXchg || op&atomicFetch != 0 {
								body = append(body, mov64(src, 3))
								if base != 0 {
									body = append(body, mov64(ir.R0, 4))
								}
							}
						}
					}
				}
			}
			for _, sz := range []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW} {
				body = append(body, atomic(sz, base, 2, -8, atomicStoreRel), atomic(sz, 3, base, -8, atomicLoadAcq))
			}
			body = append(body, initRegs()...)
		}
		add("atomics", "lock add/and/or/xor, xadd, xchg, cmpxchg, the cmpxchg loop, load-acquire/store-release", body, ret)
	}
	// Conditional jumps of every kind (skipping a dead write, so that the
	// verifier prunes).
	ops := []ir.JumpOp{ir.JumpJEQ, ir.JumpJNE, ir.JumpJGT, ir.JumpJGE, ir.JumpJLT, ir.JumpJLE, ir.JumpJSGT, ir.JumpJSGE, ir.JumpJSLT, ir.JumpJSLE, ir.JumpJSET}
	for _, cls := range []ir.Class{ir.ClassJMP, ir.ClassJMP32} {
		for half := 0; half < 2; half++ {
			var body []ir.Instruction
			body = append(body, unknowns()...)
			for _, op := range ops[half*6 : min(len(ops), half*6+6)] {
				for _, rp := range [][2]ir.Register{{0, 1}, {5, 7}, {9, 2}, {6, 8}} {
					body = append(body, jx(cls, op, rp[0], rp[1], 1), mov64(ir.R3, 1))
					body = append(body, refresh(rp[0], rp[1])...)
				}
				for _, r := range []ir.Register{0, 1, 9} {
					for _, imm := range []int32{0, 1, -128, 127, 128, 0x12345678} {
						body = append(body, jk(cls, op, r, imm, 1), mov64(ir.R3, 1))
						body = append(body, refresh(r)...)
					}
				}
			}
			add(fmt.Sprintf("jcc_%s_%d", cls, half), "conditional jumps: cmp/test, imm8/imm32, every condition", body, ret)
		}
	}
	// Jump distances around the short-jump bounds.
	for _, n := range []int{121, 122, 123, 124, 125} {
		add(fmt.Sprintf("fwd_%d", n), "forward jcc and ja over n bytes of code",
			unknowns(), jk(ir.ClassJMP, ir.JumpJEQ, ir.R6, 0, int16(len(fill(n)))), fill(n),
			jk(ir.ClassJMP, ir.JumpJNE, ir.R7, 0, 1), ja(int16(len(fill(n)))), fill(n), ret)
	}
	for _, n := range []int{117, 118, 119, 120, 121, 122} {
		body := []ir.Instruction{}
		body = append(body, unknowns()...)
		body = append(body, a64k(ir.ALUAnd, ir.R6, 3))
		loop := fill(n)
		loop = append(loop, a64k(ir.ALUSub, ir.R6, 1))
		back := int16(-(len(loop) + 1))
		loop = append(loop, jk(ir.ClassJMP, ir.JumpJSGT, ir.R6, 0, back))
		body = append(body, loop...)
		body = append(body, a64k(ir.ALUAnd, ir.R7, 3))
		loop2 := fill(n)
		loop2 = append(loop2, a64k(ir.ALUSub, ir.R7, 1), jk(ir.ClassJMP, ir.JumpJSLE, ir.R7, 0, 1))
		loop2 = append(loop2, ja(int16(-(len(loop2) + 1))))
		body = append(body, loop2...)
		add(fmt.Sprintf("back_%d", n), "backward jcc and ja around -128", body, ret)
	}
	// gotol and several exits.
	add("gotol_exits", "gotol (JMP32 JA imm), ja, several exits jumping to the epilogue",
		unknowns(),
		jk(ir.ClassJMP, ir.JumpJEQ, ir.R6, 0, 2), mov64(ir.R0, 1), exit(),
		jk(ir.ClassJMP, ir.JumpJEQ, ir.R7, 0, 2), mov64(ir.R0, 2), exit(),
		jk(ir.ClassJMP, ir.JumpJEQ, ir.R9, 0, 1), gotol(int32(len(fill(200)))), fill(200),
		jk(ir.ClassJMP, ir.JumpJEQ, ir.R8, 0, 1), exit(),
		jk(ir.ClassJMP, ir.JumpJEQ, ir.R9, 0, 1), ja(2), fill(8), mov64(ir.R0, 3), exit())
	return gps
}

var _ = kernel.Syscall
