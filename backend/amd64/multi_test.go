package amd64

import (
	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

func mapLoad(dst ir.Register, idx int32) []ir.Instruction {
	return []ir.Instruction{{Op: ir.OpLdImm64, Dst: dst, Src: ir.PseudoMapIdx, Imm: idx}, {}}
}

func kfunc(p *ir.Program, at int, name string) {
	p.Insns[at] = ir.Instruction{Op: ir.OpCall, Src: ir.CallKfunc}
	p.Aux[at].SymbolKind = ir.SymKfunc
	p.Aux[at].Symbol = name
}

func castKern(r ir.Register) ir.Instruction {
	return alu(ir.ClassALU64, ir.ALUMov, ir.SourceX, r, r, ir.OffAddrSpaceCast, ir.CastToKernel)
}
func castUser(dst, src ir.Register) ir.Instruction {
	return alu(ir.ClassALU64, ir.ALUMov, ir.SourceX, dst, src, ir.OffAddrSpaceCast, ir.CastToUser)
}

// multiPrograms are the goldens that need maps, several functions, tail
// calls or an arena.
func multiPrograms() []goldenProgram {
	var gps []goldenProgram
	// bpf-to-bpf calls, stack through pointers, callee-saved registers.
	{
		main := []ir.Instruction{
			mov64(ir.R6, 1), mov64(ir.R7, 2), mov64(ir.R8, 3), mov64(ir.R9, 4),
			stx(ir.SizeDW, 10, 6, -8),
			movr(ir.R1, ir.R10), a64k(ir.ALUAdd, ir.R1, -8),
			callLocal(0), // -> sub1, patched below
			a64x(ir.ALUAdd, ir.R0, ir.R6), a64x(ir.ALUAdd, ir.R0, ir.R9),
			callLocal(0), // -> sub2
			a64x(ir.ALUAdd, ir.R0, ir.R8),
			exit(),
		}
		sub1 := []ir.Instruction{
			ldx(ir.SizeDW, ir.R0, ir.R1, 0),
			stx(ir.SizeDW, 10, 0, -24),
			movr(ir.R7, ir.R0),
			callLocal(0), // -> sub2
			a64x(ir.ALUAdd, ir.R0, ir.R7),
			exit(),
		}
		sub2 := []ir.Instruction{mov64(ir.R0, 5), st(ir.SizeW, 10, -4, 7), exit()}
		insns := append(append(append([]ir.Instruction{}, main...), sub1...), sub2...)
		s1, s2 := len(main), len(main)+len(sub1)
		insns[7].Imm = int32(s1 - 8)
		insns[10].Imm = int32(s2 - 11)
		insns[s1+3].Imm = int32(s2 - (s1 + 4))
		gps = append(gps, goldenProgram{name: "calls", note: "bpf-to-bpf calls: three functions, stack, callee-saved registers", prog: ir.NewProgram("calls", insns)})
	}
	// A callback passed to bpf_loop by address (ld_imm64 of a function).
	{
		insns := []ir.Instruction{call(helperPrandom), movr(ir.R6, ir.R0), a64k(ir.ALUAnd, ir.R6, 0), mov64(ir.R1, 4)}
		insns = append(insns, ir.Instruction{Op: ir.OpLdImm64, Dst: ir.R2, Src: ir.PseudoFunc}, ir.Instruction{})
		insns = append(insns, mov64(ir.R3, 0), movr(ir.R4, ir.R6), call(181), exit())
		cb := len(insns)
		insns[4].Imm = int32(cb - 5)
		insns = append(insns, mov64(ir.R0, 0), exit())
		gps = append(gps, goldenProgram{name: "loop_callback", note: "ld_imm64 of a function address (bpf_loop callback)", prog: ir.NewProgram("loop_callback", insns)})
	}
	// Tail calls: direct (constant index) and indirect.
	{
		var insns []ir.Instruction
		insns = append(insns, movr(ir.R6, ir.R1), call(helperPrandom), movr(ir.R7, ir.R0), st(ir.SizeDW, 10, -16, 0))
		insns = append(insns, movr(ir.R1, ir.R6))
		insns = append(insns, mapLoad(ir.R2, 0)...)
		insns = append(insns, mov64(ir.R3, 1), call(ir.HelperTailCall))
		insns = append(insns, movr(ir.R1, ir.R6))
		insns = append(insns, mapLoad(ir.R2, 0)...)
		insns = append(insns, movr(ir.R3, ir.R7), call(ir.HelperTailCall), mov64(ir.R0, 0), exit())
		gps = append(gps, goldenProgram{name: "tailcall", note: "direct and indirect tail calls, tail-call counter prologue",
			prog: ir.NewProgram("tailcall", insns), maps: []kernel.MapDef{{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}}, typ: kernel.SocketFilter})
	}
	// Tail call from a subprogram (tail-call counter pointer through calls).
	{
		var insns []ir.Instruction
		insns = append(insns, movr(ir.R6, ir.R1), st(ir.SizeDW, 10, -8, 0), callLocal(0), a64k(ir.ALUAdd, ir.R0, 1), exit())
		sub := len(insns)
		insns[2].Imm = int32(sub - 3)
		insns = append(insns, movr(ir.R7, ir.R1), st(ir.SizeDW, 10, -24, 0))
		insns = append(insns, mapLoad(ir.R2, 0)...)
		insns = append(insns, mov64(ir.R3, 0), call(ir.HelperTailCall), mov64(ir.R0, 0), exit())
		gps = append(gps, goldenProgram{name: "tailcall_sub", note: "tail call in a subprogram: tail-call-reachable main and subprogram",
			prog: ir.NewProgram("tailcall_sub", insns), maps: []kernel.MapDef{{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}}, typ: kernel.SocketFilter})
	}
	// main calls A (tail call) then B (none): is B marked reachable?
	{
		var insns []ir.Instruction
		insns = append(insns, movr(ir.R6, ir.R1), callLocal(0), callLocal(0), mov64(ir.R0, 0), exit())
		a := len(insns)
		insns = append(insns, mapLoad(ir.R2, 0)...)
		insns = append(insns, mov64(ir.R3, 0), call(ir.HelperTailCall), mov64(ir.R0, 0), exit())
		b := len(insns)
		insns = append(insns, mov64(ir.R0, 1), st(ir.SizeDW, 10, -8, 1), exit())
		insns[1].Imm = int32(a - 2)
		insns[2].Imm = int32(b - 3)
		gps = append(gps, goldenProgram{name: "tailcall_after", note: "a function called after a tail-calling one: the verifier's sticky tail_call_reachable",
			prog: ir.NewProgram("tailcall_after", insns), maps: []kernel.MapDef{{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}}, typ: kernel.SocketFilter})
	}
	// main calls A (tail call), then B, which calls C: B is on the walk's
	// stack when C ends after the tail call was seen.
	{
		var insns []ir.Instruction
		insns = append(insns, movr(ir.R6, ir.R1), callLocal(0), callLocal(0), mov64(ir.R0, 0), exit())
		a := len(insns)
		insns = append(insns, mapLoad(ir.R2, 0)...)
		insns = append(insns, mov64(ir.R3, 0), call(ir.HelperTailCall), mov64(ir.R0, 0), exit())
		b := len(insns)
		insns = append(insns, callLocal(0), a64k(ir.ALUAdd, ir.R0, 1), exit())
		c := len(insns)
		insns = append(insns, mov64(ir.R0, 1), st(ir.SizeDW, 10, -8, 1), exit())
		insns[1].Imm = int32(a - 2)
		insns[2].Imm = int32(b - 3)
		insns[b].Imm = int32(c - b - 1)
		gps = append(gps, goldenProgram{name: "tailcall_chain", note: "tail_call_reachable of a caller on the verifier's walk stack",
			prog: ir.NewProgram("tailcall_chain", insns), maps: []kernel.MapDef{{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}}, typ: kernel.SocketFilter})
	}
	// A subprogram that needs padding (extra pass with padding on).
	{
		sub := chain("x", 16).Insns
		insns := []ir.Instruction{callLocal(1), exit()}
		insns = append(insns, sub...)
		gps = append(gps, goldenProgram{name: "padding_sub", note: "a padded chain of jumps in a subprogram (jit_subprogs' extra pass)",
			prog: ir.NewProgram("padding_sub", insns)})
	}
	// bpf_get_smp_processor_id, which the verifier inlines with a per-cpu
	// address move (mov r0, r0; add r0, gs:[this_cpu_off]).
	gps = append(gps, goldenProgram{name: "percpu", note: "inlined bpf_get_smp_processor_id: per-cpu address move",
		prog: prog("percpu", call(8), movr(ir.R6, ir.R0), call(8), a64x(ir.ALUAdd, ir.R0, ir.R6), exit()), typ: kernel.SocketFilter})
	// Loads through a BTF pointer (the current task): PROBE_MEM and
	// PROBE_MEMSX with the address check and extable entries.
	gps = append(gps, goldenProgram{name: "probe_mem", note: "PROBE_MEM/PROBE_MEMSX loads through bpf_get_current_task_btf()",
		prog: prog("probe_mem", call(158), movr(ir.R6, ir.R0),
			ldx(ir.SizeDW, ir.R1, ir.R6, 0), ldx(ir.SizeW, ir.R2, ir.R6, 8), ldx(ir.SizeB, ir.R9, ir.R0, 16), ldx(ir.SizeH, ir.R0, ir.R6, 0),
			ldsx(ir.SizeW, ir.R3, ir.R6, 8), ldsx(ir.SizeB, ir.R7, ir.R6, 0),
			// task->real_parent (offset 1280 in this kernel's task_struct) is
			// untrusted: loads through it are PROBE_MEM.
			ldx(ir.SizeDW, ir.R7, ir.R6, 1280),
			ldx(ir.SizeW, ir.R1, ir.R7, 1264), ldx(ir.SizeDW, ir.R2, ir.R7, 1280), ldsx(ir.SizeW, ir.R3, ir.R7, 1264),
			ldx(ir.SizeB, ir.R8, ir.R7, 44), ldx(ir.SizeH, ir.R0, ir.R7, 0), ldsx(ir.SizeH, ir.R9, ir.R7, 44),
			mov64(ir.R0, 0), exit())})
	// Arena accesses of every size.
	{
		var insns []ir.Instruction
		insns = append(insns, mapLoad(ir.R1, 0)...)
		insns = append(insns, mov64(ir.R2, 0), mov64(ir.R3, 1), mov64(ir.R4, -1), mov64(ir.R5, 0))
		kf := len(insns)
		insns = append(insns, ir.Instruction{}) // kfunc call
		skip := len(insns)
		insns = append(insns, jk(ir.ClassJMP, ir.JumpJEQ, ir.R0, 0, 0))
		insns = append(insns, castKern(ir.R0), movr(ir.R7, ir.R0), movr(ir.R1, ir.R0), movr(ir.R9, ir.R0), mov64(ir.R2, 9), mov64(ir.R8, 1))
		for _, base := range []ir.Register{0, 7, 1, 9} {
			for _, off := range []int16{8, -8, 0, 200, 1000} {
				for _, sz := range []ir.Size{ir.SizeB, ir.SizeH, ir.SizeW, ir.SizeDW} {
					insns = append(insns, stx(sz, base, ir.R2, off), st(sz, base, off, 0x55))
					if base != ir.R2 {
						insns = append(insns, ldx(sz, ir.R2, base, off))
					}
					insns = append(insns, ldx(sz, ir.R3, base, off))
					if sz != ir.SizeDW {
						insns = append(insns, ldsx(sz, ir.R4, base, off))
					}
				}
				insns = append(insns, stx(ir.SizeB, base, ir.R1, off), stx(ir.SizeB, base, ir.R8, off))
			}
			insns = append(insns, mov64(ir.R8, 1))
			for _, sz := range []ir.Size{ir.SizeW, ir.SizeDW} {
				for _, op := range []int32{atomicAdd, atomicAnd, atomicOr, atomicXor, atomicAdd | atomicFetch, atomicXchg} {
					insns = append(insns, atomic(sz, base, ir.R8, 16, op), mov64(ir.R8, 1))
				}
			}
		}
		insns = append(insns, mov64(ir.R0, 0), movr(ir.R0, ir.R7), castUser(ir.R3, ir.R7), castUser(ir.R0, ir.R0), castUser(ir.R9, ir.R9))
		out := len(insns)
		insns = append(insns, mov64(ir.R0, 0), exit())
		insns[skip].Off = int16(out - skip - 1)
		p := ir.NewProgram("arena", insns)
		kfunc(p, kf, "bpf_arena_alloc_pages")
		gps = append(gps, goldenProgram{name: "arena", note: "arena loads/stores/atomics of every size ([reg + r12 + off]), casts, extable",
			prog: p, maps: []kernel.MapDef{{Type: kernel.MapArena, MaxEntries: 4}}})
	}
	return gps
}
