package corpus

import (
	"fmt"
	"math/rand/v2"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

const (
	helperGetSmpProcessorID = 8
	helperForEachMapElem    = 164
	helperLoop              = 181
	mapPercpuArray          = 6
)

var percpuArray = kernel.MapDef{Type: mapPercpuArray, KeySize: 4, ValueSize: 16, MaxEntries: 4}

func extraFamily() {
	add(Entry{
		Name: "percpu_cpu_id",
		Note: "bpf_get_smp_processor_id, inlined by the verifier as a per-cpu address move (add reg, gs:[this_cpu_off]) and a load",
		Build: func(b *B) {
			b.Call(helperGetSmpProcessorID).Emit(MovX64(R6, R0)).Call(helperGetSmpProcessorID)
			b.Emit(AluX(ALU64, ir.ALUAdd, R0, R6)).Exit()
		},
	})
	add(Entry{
		Name: "percpu_array_lookup",
		Note: "per-cpu array lookup (inlined: bounds check, index scaling and a per-cpu address move)",
		Maps: []kernel.MapDef{percpuArray},
		Build: func(b *B) {
			scalars(b, R6)
			b.Emit(Stx(W32, R10, R6, -4))
			b.Emit(LdMap(R1, 0)...)
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -4))
			b.Call(helperMapLookup)
			b.JmpK(ir.JumpJEQ, R0, 0, "miss")
			b.Emit(Ldx(DW, R0, R0, 8)).Exit()
			b.Label("miss").Emit(Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "callback_for_each",
		Note: "bpf_for_each_map_elem with a callback: ld_imm64 of a function address (pseudo func) and a callback subprogram",
		Maps: []kernel.MapDef{arrayMap},
		Build: func(b *B) {
			b.Emit(St(DW, R10, -8, 0))
			b.Emit(LdMap(R1, 0)...)
			b.Emit(ir.Instruction{Op: ir.OpLdImm64, Dst: R2, Src: ir.PseudoFunc}, ir.Instruction{})
			b.refs = append(b.refs, ref{at: b.Len() - 2, label: "cb", imm: true})
			b.Emit(MovX64(R3, R10), AluK(ALU64, ir.ALUAdd, R3, -8), Mov64(R4, 0)).Call(helperForEachMapElem)
			b.Emit(Ldx(DW, R1, R10, -8), AluX(ALU64, ir.ALUAdd, R0, R1)).Exit()
			// long cb(map, key, value, ctx): *(u64 *)ctx += 1; return 0
			b.Label("cb").Emit(Mov64(R1, 1), Atomic(DW, R4, R1, 0, ir.AtomicAdd), Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "callback_bpf_loop",
		Note: "bpf_loop with a constant flags argument: the verifier inlines the loop around a bpf-to-bpf call of the callback",
		Build: func(b *B) {
			scalars(b, R6)
			b.Emit(St(DW, R10, -8, 0), AluK(ALU64, ir.ALUAnd, R6, 63), MovX64(R1, R6))
			b.Emit(ir.Instruction{Op: ir.OpLdImm64, Dst: R2, Src: ir.PseudoFunc}, ir.Instruction{})
			b.refs = append(b.refs, ref{at: b.Len() - 2, label: "cb", imm: true})
			b.Emit(MovX64(R3, R10), AluK(ALU64, ir.ALUAdd, R3, -8), Mov64(R4, 0)).Call(helperLoop)
			b.Emit(Ldx(DW, R1, R10, -8), AluX(ALU64, ir.ALUAdd, R0, R1)).Exit()
			// long cb(u64 index, void *ctx): *(u64 *)ctx += index; return 0
			b.Label("cb").Emit(Atomic(DW, R2, R1, 0, ir.AtomicAdd), Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "ld_abs_ind",
		Type: kernel.SocketFilter,
		Note: "legacy packet loads LD_ABS/LD_IND B/H/W (the verifier rewrites them into helper calls)",
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1), Mov64(R7, 2))
			for _, sz := range []ir.Size{B8, H16, W32} {
				b.Emit(ir.Instruction{Op: uint8(ir.ClassLD) | uint8(sz) | uint8(ir.ModeABS), Imm: 4})
				b.Emit(MovX64(R8, R0))
				b.Emit(ir.Instruction{Op: uint8(ir.ClassLD) | uint8(sz) | uint8(ir.ModeIND), Src: R7, Imm: 6})
				b.Emit(AluX(ALU64, ir.ALUAdd, R0, R8))
			}
			b.Exit()
		},
	})
	for _, n := range []int{1000, 4000, 8000} {
		add(Entry{
			Name: fmt.Sprintf("random_alu_%d", n),
			Note: fmt.Sprintf("%d pseudo-random ALU/ALU64 instructions (fixed seed): every op, register and immediate class mixed", n),
			Build: func(b *B) {
				r := rand.New(rand.NewPCG(uint64(n), 1))
				scalarFrame(b, func(b *B) {
					for i := 0; i < n; i++ {
						b.Emit(randomALU(r))
					}
				})
			},
		})
	}
	for seed := uint64(1); seed <= 8; seed++ {
		add(Entry{
			Name: fmt.Sprintf("random_alu_seed%d", seed),
			Note: fmt.Sprintf("1500 pseudo-random ALU/ALU64 instructions, seed %d", seed),
			Build: func(b *B) {
				r := rand.New(rand.NewPCG(seed, 3))
				scalarFrame(b, func(b *B) {
					for i := 0; i < 1500; i++ {
						b.Emit(randomALU(r))
					}
				})
			},
		})
	}
	for _, n := range []int{500, 3000} {
		add(Entry{
			Name: fmt.Sprintf("random_branchy_%d", n),
			Note: fmt.Sprintf("%d blocks of pseudo-random ALU code and forward jumps of random lengths (fixed seed)", n),
			Build: func(b *B) {
				r := rand.New(rand.NewPCG(uint64(n), 2))
				jumpFrame(b, func(b *B) {
					pending := map[int][]string{}
					for i := 0; i < n; i++ {
						for _, l := range pending[i] {
							b.Label(l)
						}
						// Every register the block uses is reloaded, so none
						// is live across a join: the verifier prunes.
						for k, reg := range []ir.Register{R0, R2, R3, R4, R5} {
							reload(b, reg, i+k)
						}
						l := fmt.Sprint("b", i)
						t := i + 1 + r.IntN(min(12, n-i))
						pending[t] = append(pending[t], l)
						if r.IntN(2) == 0 {
							b.JmpX(jumpOps[r.IntN(len(jumpOps))].op, R2, R3, l)
						} else {
							b.Jmp32K(jumpOps[r.IntN(len(jumpOps))].op, R2, randomImm(r), l)
						}
						for k := r.IntN(30); k > 0; k-- {
							in := randomALU(r)
							in.Dst = []ir.Register{R0, R4, R5}[r.IntN(3)]
							if in.Source() == ir.SourceX {
								in.Src = []ir.Register{R0, R4, R5}[r.IntN(3)]
							}
							b.Emit(in)
						}
					}
					for _, l := range pending[n] {
						b.Label(l)
					}
				})
			},
		})
	}
}

func randomImm(r *rand.Rand) int32 {
	switch r.IntN(4) {
	case 0:
		return int32(r.IntN(256)) - 128
	case 1:
		return int32(r.IntN(512)) - 256
	case 2:
		return []int32{0, 1, -1, 127, 128, -128, -129, 0x7fffffff, -0x80000000}[r.IntN(9)]
	}
	return int32(r.Uint32())
}

// randomALU returns a random ALU/ALU64 instruction the verifier accepts on
// scalars (immediate divisors are non-zero, shifts in range).
func randomALU(r *rand.Rand) ir.Instruction {
	cls := []ir.Class{ALU, ALU64}[r.IntN(2)]
	o := aluOps[r.IntN(len(aluOps))]
	dst := allRegs[r.IntN(10)]
	if r.IntN(2) == 0 {
		in := AluX(cls, o.op, dst, allRegs[r.IntN(10)])
		if (o.op == ir.ALUDiv || o.op == ir.ALUMod) && r.IntN(3) == 0 {
			in.Off = ir.OffSigned
		}
		return in
	}
	imm := randomImm(r)
	switch o.op {
	case ir.ALUDiv, ir.ALUMod:
		if imm == 0 {
			imm = 3
		}
	case ir.ALULsh, ir.ALURsh, ir.ALUArsh:
		bits := int32(32)
		if cls == ALU64 {
			bits = 64
		}
		imm = int32(uint32(imm) % uint32(bits))
	}
	if r.IntN(20) == 0 {
		return Neg(cls, dst)
	}
	return AluK(cls, o.op, dst, imm)
}
