package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
)

var jumpOps = []struct {
	name string
	op   ir.JumpOp
}{
	{"jeq", ir.JumpJEQ}, {"jne", ir.JumpJNE}, {"jgt", ir.JumpJGT}, {"jge", ir.JumpJGE},
	{"jlt", ir.JumpJLT}, {"jle", ir.JumpJLE}, {"jsgt", ir.JumpJSGT}, {"jsge", ir.JumpJSGE},
	{"jslt", ir.JumpJSLT}, {"jsle", ir.JumpJSLE}, {"jset", ir.JumpJSET},
}

var jumpImms = []int32{0, 1, -1, 127, 128, -128, -129, 0x7fffffff, -0x80000000}

func jumpFamily() {
	for _, cls := range []ir.Class{ir.ClassJMP, ir.ClassJMP32} {
		cname := "jmp"
		if cls == ir.ClassJMP32 {
			cname = "jmp32"
		}
		for _, o := range jumpOps {
			add(Entry{
				Name: fmt.Sprintf("%s_%s_k", cname, o.name),
				Note: fmt.Sprintf("%s %s against immediates %v (0: test) for every register", cname, o.name, jumpImms),
				Build: func(b *B) {
					jumpFrame(b, func(b *B) {
						k := 0
						for _, imm := range jumpImms {
							for _, r := range allRegs {
								l := fmt.Sprint("l", k)
								k++
								reload(b, r, k)
								if cls == ir.ClassJMP {
									b.JmpK(o.op, r, imm, l)
								} else {
									b.Jmp32K(o.op, r, imm, l)
								}
								b.Emit(Mov32(R0, int32(k))).Label(l)
							}
						}
					})
				},
			})
			add(Entry{
				Name: fmt.Sprintf("%s_%s_x", cname, o.name),
				Note: fmt.Sprintf("%s %s for every (dst, src) pair of r0..r9", cname, o.name),
				Build: func(b *B) {
					jumpFrame(b, func(b *B) {
						k := 0
						for _, d := range allRegs {
							for _, s := range allRegs {
								l := fmt.Sprint("l", k)
								k++
								reload(b, s, k)
								if d != s {
									reload(b, d, k+1)
								}
								if cls == ir.ClassJMP {
									b.JmpX(o.op, d, s, l)
								} else {
									b.Jmp32X(o.op, d, s, l)
								}
								b.Emit(Mov32(R0, int32(k))).Label(l)
							}
						}
					})
				},
			})
		}
	}
}

// jumpFrame keeps the context at r10-8; each test reloads the registers it
// compares, so no register is live across a join and the verifier's state
// pruning keeps long runs of branches cheap.
func jumpFrame(b *B, body func(b *B)) {
	b.Emit(Stx(DW, R10, R1, -8))
	body(b)
	b.Emit(Mov64(R0, 0)).Exit()
}

// reload sets r to an unknown scalar from ctx[k%16].
func reload(b *B, r ir.Register, k int) {
	b.Emit(Ldx(DW, r, R10, -8), Ldx(DW, r, r, int16(8*(k%16))))
}

// Jump distances that straddle the short-form bounds: rel8 is used for
// -128..+123 only.
func layoutFamily() {
	for n := 119; n <= 128; n++ {
		add(Entry{
			Name: fmt.Sprintf("jdist_jcc_fwd_%d", n),
			Note: fmt.Sprintf("conditional jump forward over %d bytes of code", n),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				b.JmpX(ir.JumpJGT, R2, R3, "L")
				fill(b, n)
				b.Label("L").Exit()
			},
		})
		add(Entry{
			Name: fmt.Sprintf("jdist_ja_fwd_%d", n),
			Note: fmt.Sprintf("goto forward over %d bytes of code", n),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				b.JmpX(ir.JumpJGT, R2, R3, "M")
				b.Ja("L")
				b.Label("M")
				fill(b, n)
				b.Label("L").Exit()
			},
		})
	}
	for n := 112; n <= 124; n++ {
		add(Entry{
			Name: fmt.Sprintf("jdist_jcc_back_%d", n),
			Note: fmt.Sprintf("conditional jump backward over %d bytes of code, an epilogue and itself", n),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				b.Ja("A")
				b.Label("B")
				fill(b, n)
				b.Exit()
				b.Label("A").JmpX(ir.JumpJGT, R2, R3, "B")
				b.Exit()
			},
		})
		add(Entry{
			Name: fmt.Sprintf("jdist_ja_back_%d", n),
			Note: fmt.Sprintf("goto backward over %d bytes of code, an epilogue and itself", n),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				b.Ja("A")
				b.Label("B")
				fill(b, n)
				b.Exit()
				b.Label("A").JmpX(ir.JumpJGT, R2, R3, "C")
				b.Ja("B")
				b.Label("C").Exit()
			},
		})
	}
	// Cascades: jump i skips jump i+1 (cmp + jcc) and 118 bytes, so it becomes short
	// only in the pass after jump i+1 did; k jumps need about k+2 passes,
	// and from pass 15 on the kernel pads instead of shrinking.
	for _, k := range []int{1, 2, 3, 4, 5, 6, 8, 10, 12, 13, 14, 15, 16, 18, 20, 24, 32} {
		add(Entry{
			Name: fmt.Sprintf("layout_chain_%d", k),
			Note: fmt.Sprintf("cascade of %d conditional jumps that shrink one per layout pass", k),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				for i := 0; i < k; i++ {
					b.JmpX(ir.JumpJGT, R2, R3, fmt.Sprint("T", i))
					if i > 0 {
						b.Label(fmt.Sprint("T", i-1))
					}
					fill(b, 118)
				}
				fill(b, 2)
				b.Label(fmt.Sprint("T", k-1))
				b.Exit()
			},
		})
	}
	add(Entry{
		Name: "layout_chain_mixed",
		Note: "cascade of gotos and conditional jumps, forward and backward, with a long tail",
		Build: func(b *B) {
			scalars(b, R0, R2, R3)
			b.Ja("start")
			b.Label("back")
			fill(b, 60)
			b.Exit()
			b.Label("start")
			for i := 0; i < 12; i++ {
				b.JmpX(ir.JumpJGT, R2, R3, fmt.Sprint("T", i))
				if i > 0 {
					b.Label(fmt.Sprint("T", i-1))
				}
				fill(b, 118)
				if i == 6 {
					b.JmpK(ir.JumpJEQ, R2, 7, "back")
				}
			}
			fill(b, 2)
			b.Label("T11")
			b.Exit()
		},
	})
	for _, n := range []int{40, 123, 124, 400} {
		add(Entry{
			Name: fmt.Sprintf("gotol_%d", n),
			Note: fmt.Sprintf("gotol (32-bit offset) over %d bytes", n),
			Build: func(b *B) {
				scalars(b, R0, R2, R3)
				b.JmpX(ir.JumpJGT, R2, R3, "M")
				b.Gotol("L")
				b.Label("M")
				fill(b, n)
				b.Label("L").Exit()
			},
		})
	}
	add(Entry{
		Name: "may_goto_loop",
		Note: "may_goto loop (expanded by the verifier into a stack counter)",
		Build: func(b *B) {
			scalars(b, R2)
			b.Emit(Mov64(R0, 0))
			b.Label("L").MayGoto("E")
			b.Emit(AluX(ALU64, ir.ALUAdd, R0, R2))
			b.Ja("L")
			b.Label("E").Exit()
		},
	})
	add(Entry{
		Name: "jcc_zero_offset",
		Note: "conditional jumps to the next instruction (kept by the verifier; a zero displacement)",
		Build: func(b *B) {
			scalars(b, R0, R2, R3)
			for i, op := range jumpOps {
				l := fmt.Sprint("n", i)
				if i%2 == 0 {
					b.JmpX(op.op, R2, R3, l)
				} else {
					b.Jmp32K(op.op, R2, int32(i), l)
				}
				b.Label(l)
			}
			b.Exit()
		},
	})
	add(Entry{
		Name: "exits_many",
		Note: "several exits: the first emits the epilogue, the others jump to it (short and long)",
		Build: func(b *B) {
			scalars(b, R0, R2, R3)
			for i := 0; i < 6; i++ {
				b.JmpK(ir.JumpJEQ, R2, int32(i), fmt.Sprint("E", i))
			}
			b.Exit()
			for i := 0; i < 6; i++ {
				b.Label(fmt.Sprint("E", i))
				fill(b, 30*i+2)
				b.Exit()
			}
		},
	})
}
