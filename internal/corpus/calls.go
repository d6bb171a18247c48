package corpus

import (
	"fmt"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

var (
	hashMap   = kernel.MapDef{Type: kernel.MapHash, KeySize: 8, ValueSize: 16, MaxEntries: 16}
	arrayMap  = kernel.MapDef{Type: kernel.MapArray, KeySize: 4, ValueSize: 16, MaxEntries: 8}
	progArray = kernel.MapDef{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}
)

func callFamily() {
	add(Entry{
		Name: "helper_ktime",
		Note: "helper call bpf_ktime_get_ns (call rel32 to __bpf_call_base + imm)",
		Build: func(b *B) {
			b.Call(helperKtimeGetNs).Emit(MovX64(R6, R0)).Call(helperKtimeGetNs)
			b.Emit(AluX(ALU64, ir.ALUSub, R0, R6)).Exit()
		},
	})
	add(Entry{
		Name: "helper_prandom",
		Note: "helper call bpf_get_prandom_u32 with values kept in callee-saved registers",
		Build: func(b *B) {
			b.Call(helperPrandomU32).Emit(MovX64(R6, R0))
			b.Call(helperPrandomU32).Emit(MovX64(R7, R0))
			b.Call(helperPrandomU32).Emit(MovX64(R8, R0), AluX(ALU64, ir.ALUAdd, R8, R7), AluX(ALU64, ir.ALUXor, R8, R6), MovX64(R0, R8))
			b.Exit()
		},
	})
	add(Entry{
		Name: "helper_map_hash",
		Note: "ld_imm64 of a map (movabs of the map address), lookup/update/delete on a hash map with stack keys",
		Maps: []kernel.MapDef{hashMap},
		Build: func(b *B) {
			b.Emit(St(DW, R10, -8, 42), St(DW, R10, -24, 1), St(DW, R10, -16, 2))
			b.Emit(LdMap(R1, 0)...)
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -8), MovX64(R3, R10), AluK(ALU64, ir.ALUAdd, R3, -24), Mov64(R4, 0))
			b.Call(helperMapUpdate)
			b.Emit(LdMap(R1, 0)...)
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -8))
			b.Call(helperMapLookup)
			b.JmpK(ir.JumpJEQ, R0, 0, "miss")
			b.Emit(Ldx(DW, R6, R0, 8))
			b.Emit(LdMap(R1, 0)...)
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -8))
			b.Call(helperMapDelete)
			b.Emit(MovX64(R0, R6)).Exit()
			b.Label("miss").Emit(Mov64(R0, -1)).Exit()
		},
	})
	add(Entry{
		Name: "helper_map_array",
		Note: "array map lookup (the verifier inlines it) and a map-value ld_imm64",
		Maps: []kernel.MapDef{arrayMap, valueMap},
		Build: func(b *B) {
			scalars(b, R6)
			b.Emit(Stx(W32, R10, R6, -4))
			b.Emit(LdMap(R1, 0)...)
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -4))
			b.Call(helperMapLookup)
			b.JmpK(ir.JumpJEQ, R0, 0, "miss")
			b.Emit(Ldx(DW, R0, R0, 8))
			b.Emit(LdMapValue(R1, 1, 100)...)
			b.Emit(Stx(DW, R1, R0, 0))
			b.Exit()
			b.Label("miss").Emit(Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "ldimm64_map_forms",
		Note: "ld_imm64 of map addresses and map-value addresses at several offsets into several registers",
		Maps: []kernel.MapDef{valueMap, hashMap},
		Build: func(b *B) {
			for i, r := range []ir.Register{R1, R2, R3, R4, R5} {
				b.Emit(LdMapValue(r, 0, int32(8*i*i))...)
				b.Emit(St(DW, r, 0, int32(i)))
			}
			b.Emit(LdMap(R6, 1)...)
			b.Emit(LdMap(R9, 1)...)
			b.Emit(LdMapValue(R0, 0, 1016)...)
			b.Emit(Ldx(DW, R0, R0, 0)).Exit()
		},
	})
	// bpf-to-bpf calls.
	add(Entry{
		Name: "subprog_2",
		Note: "main calls a function (call rel32 to the callee's address)",
		Build: func(b *B) {
			scalars(b, R1)
			b.CallLocal("f").Emit(AluK(ALU64, ir.ALUAdd, R0, 1)).Exit()
			b.Label("f").Emit(MovX64(R0, R1), AluK(ALU64, ir.ALUMul, R0, 3)).Exit()
		},
	})
	add(Entry{
		Name: "subprog_chain",
		Note: "main -> f -> g -> h, each with its own stack and callee-saved registers",
		Build: func(b *B) {
			scalars(b, R1, R2)
			b.Emit(MovX64(R6, R1))
			b.CallLocal("f").Emit(AluX(ALU64, ir.ALUAdd, R0, R6)).Exit()
			b.Label("f").Emit(Stx(DW, R10, R1, -8), MovX64(R7, R2))
			b.CallLocal("g")
			b.Emit(Ldx(DW, R1, R10, -8), AluX(ALU64, ir.ALUAdd, R0, R1), AluX(ALU64, ir.ALUAdd, R0, R7)).Exit()
			b.Label("g").Emit(Stx(DW, R10, R1, -64), MovX64(R8, R1), MovX64(R9, R2))
			b.CallLocal("h")
			b.Emit(AluX(ALU64, ir.ALUXor, R0, R8), AluX(ALU64, ir.ALUXor, R0, R9)).Exit()
			b.Label("h").Emit(St(DW, R10, -200, 7), Ldx(DW, R0, R10, -200), AluX(ALU64, ir.ALUAdd, R0, R1)).Exit()
		},
	})
	add(Entry{
		Name: "subprog_many",
		Note: "main calls five functions, some twice; functions exit on several paths",
		Build: func(b *B) {
			scalars(b, R1, R2)
			b.Emit(MovX64(R6, R1), MovX64(R7, R2), Mov64(R8, 0))
			for i := 0; i < 5; i++ {
				b.Emit(MovX64(R1, R6), MovX64(R2, R7))
				b.CallLocal(fmt.Sprint("f", i)).Emit(AluX(ALU64, ir.ALUAdd, R8, R0))
			}
			b.Emit(MovX64(R1, R8), MovX64(R2, R7)).CallLocal("f0").Exit()
			for i := 0; i < 5; i++ {
				b.Label(fmt.Sprint("f", i))
				b.Emit(MovX64(R0, R1), AluK(ALU64, ir.ALUAdd, R0, int32(i)))
				b.JmpX(ir.JumpJGT, R1, R2, fmt.Sprint("o", i))
				b.Emit(AluX(ALU64, ir.ALUSub, R0, R2)).Exit()
				b.Label(fmt.Sprint("o", i)).Emit(AluK(ALU64, ir.ALULsh, R0, int32(i+1))).Exit()
			}
		},
	})
	add(Entry{
		Name: "subprog_stack_ptr",
		Note: "main passes a pointer to its stack to a function that writes through it",
		Build: func(b *B) {
			scalars(b, R2)
			b.Emit(St(DW, R10, -48, 0), MovX64(R1, R10), AluK(ALU64, ir.ALUAdd, R1, -48))
			b.CallLocal("f").Emit(Ldx(DW, R0, R10, -48)).Exit()
			b.Label("f").Emit(Stx(DW, R1, R2, 0), Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "subprog_map_value_src6",
		Note: "map-value loads by fd_array index (src 6) in a multi-function program: the kernel JITs subprograms before clearing ld_imm64 sources, so rbx is saved without r6 in use",
		Maps: []kernel.MapDef{valueMap, hashMap},
		Build: func(b *B) {
			b.Emit(LdMapValue(R1, 0, 64)...)
			b.CallLocal("f").Emit(LdMap(R2, 1)...)
			b.Exit()
			b.Label("f").Emit(LdMapValue(R2, 0, 8)...)
			b.Emit(St(DW, R2, 0, 1), Ldx(DW, R0, R1, 0)).Exit()
		},
	})
	// Tail calls (socket filters; the prog array stays empty).
	add(Entry{
		Name: "tailcall_direct",
		Type: kernel.SocketFilter,
		Note: "bpf_tail_call with a constant index: a direct, patchable jump (poke descriptor)",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(LdMap(R2, 0)...)
			b.Emit(Mov64(R3, 1)).Call(helperTailCall)
			b.Emit(Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "tailcall_indirect",
		Type: kernel.SocketFilter,
		Note: "bpf_tail_call with an unknown index: bounds check, counter, indirect jump through the retpoline thunk",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(Ldx(W32, R3, R1, 0), MovX64(R6, R1))
			b.Emit(LdMap(R2, 0)...)
			b.Call(helperTailCall)
			b.Emit(Ldx(W32, R0, R6, 0)).Exit()
		},
	})
	add(Entry{
		Name: "tailcall_callee_saved",
		Type: kernel.SocketFilter,
		Note: "tail calls with callee-saved registers and stack in use (pops before the jump)",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1), Ldx(W32, R7, R1, 0), Ldx(W32, R8, R1, 4), Stx(DW, R10, R7, -32))
			b.Emit(LdMap(R2, 0)...)
			b.Emit(MovX64(R3, R7)).Call(helperTailCall)
			b.Emit(MovX64(R1, R6))
			b.Emit(LdMap(R2, 0)...)
			b.Emit(Mov64(R3, 2)).Call(helperTailCall)
			b.Emit(Ldx(DW, R0, R10, -32), AluX(ALU64, ir.ALUAdd, R0, R8)).Exit()
		},
	})
	add(Entry{
		Name: "tailcall_subprog",
		Type: kernel.SocketFilter,
		Note: "a tail call in a function called from main (tail-call counter passed through rax)",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1)).CallLocal("f")
			b.Emit(MovX64(R1, R6)).CallLocal("f")
			b.Emit(Mov64(R0, 1)).Exit()
			b.Label("f").Emit(Ldx(W32, R3, R1, 0))
			b.Emit(LdMap(R2, 0)...)
			b.Call(helperTailCall)
			b.Emit(Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "tailcall_subprog_stack",
		Type: kernel.SocketFilter,
		Note: "tail-call-reachable functions with stack: calls reload the tail-call counter pointer from below the stack frame",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1), St(DW, R10, -24, 5)).CallLocal("f")
			b.Emit(Ldx(DW, R1, R10, -24), AluX(ALU64, ir.ALUAdd, R0, R1)).Exit()
			b.Label("f").Emit(MovX64(R7, R1), St(DW, R10, -72, 1)).CallLocal("g")
			b.Emit(Ldx(W32, R3, R7, 0))
			b.Emit(LdMap(R2, 0)...)
			b.Emit(MovX64(R1, R7)).Call(helperTailCall)
			b.Emit(Ldx(DW, R0, R10, -72)).Exit()
			b.Label("g").Emit(St(DW, R10, -8, 2), Ldx(DW, R0, R10, -8)).Exit()
		},
	})
	// (Sleepable syscall programs may not tail call: a socket filter.)
	for _, typ := range []kernel.ProgType{kernel.SocketFilter} {
		add(Entry{
			Name: "tailcall_arena",
			Type: typ,
			Note: "tail calls (direct and indirect) in an arena program: r12 is popped before the jump",
			Maps: []kernel.MapDef{progArray, arenaMap},
			Build: func(b *B) {
				b.Emit(MovX64(R6, R1), Mov64(R8, 1))
				b.Emit(LdMapValue(R7, 1, 0x1000)...)
				b.Emit(CastKern(R7, R7), Stx(DW, R7, R8, 8))
				b.Emit(LdMap(R2, 0)...)
				b.Emit(Mov64(R3, 1)).Call(helperTailCall)
				b.Emit(MovX64(R1, R6), Ldx(DW, R3, R7, 16))
				b.Emit(LdMap(R2, 0)...)
				b.Call(helperTailCall)
				b.Emit(Ldx(DW, R0, R7, 8)).Exit()
			},
		})
	}
	add(Entry{
		Name: "tailcall_helpers_reachable",
		Type: kernel.SocketFilter,
		Note: "helper calls in tail-call-reachable functions (main and a function that tail calls)",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1)).Call(helperKtimeGetNs).Emit(MovX64(R7, R0), MovX64(R1, R6)).CallLocal("f")
			b.Emit(AluX(ALU64, ir.ALUAdd, R0, R7)).Exit()
			b.Label("f").Emit(MovX64(R6, R1)).Call(helperPrandomU32).Emit(MovX64(R1, R6))
			b.Emit(LdMap(R2, 0)...)
			b.Emit(Mov64(R3, 0)).Call(helperTailCall).Call(helperKtimeGetNs).Exit()
		},
	})
	add(Entry{
		Name: "tailcall_then_call",
		Type: kernel.SocketFilter,
		Note: "main calls a tail-calling function, then another function with stack (tail-call reachability as the verifier marks it)",
		Maps: []kernel.MapDef{progArray},
		Build: func(b *B) {
			b.Emit(MovX64(R6, R1)).CallLocal("t").Emit(MovX64(R1, R6)).CallLocal("g").Exit()
			b.Label("t").Emit(LdMap(R2, 0)...)
			b.Emit(Mov64(R3, 0)).Call(helperTailCall).Emit(Mov64(R0, 0)).Exit()
			b.Label("g").Emit(St(DW, R10, -16, 1), Ldx(DW, R0, R10, -16)).Exit()
		},
	})
	add(Entry{
		Name: "socket_filter_basic",
		Type: kernel.SocketFilter,
		Note: "socket filter reading skb fields (ctx accesses rewritten by the verifier)",
		Build: func(b *B) {
			b.Emit(Ldx(W32, R2, R1, 0), Ldx(W32, R3, R1, 4), AluX(ALU64, ir.ALUAdd, R2, R3), MovX64(R0, R2)).Exit()
		},
	})
	add(Entry{
		Name: "xdp_basic",
		Type: kernel.XDP,
		Note: "XDP program comparing packet bounds and returning XDP_PASS",
		Build: func(b *B) {
			b.Emit(Ldx(W32, R2, R1, 0), Ldx(W32, R3, R1, 4), MovX64(R4, R2), AluK(ALU64, ir.ALUAdd, R4, 14))
			b.JmpX(ir.JumpJGT, R4, R3, "pass")
			b.Emit(Ldx(B8, R5, R2, 12), Ldx(B8, R6, R2, 13))
			b.Label("pass").Emit(Mov64(R0, 2)).Exit()
		},
	})
}

func stackFamily() {
	for _, d := range []int{1, 4, 8, 12, 16, 24, 40, 64, 100, 128, 129, 200, 256, 384, 504, 512} {
		add(Entry{
			Name: fmt.Sprintf("stack_depth_%d", d),
			Note: fmt.Sprintf("deepest stack byte r10-%d (sub rsp, round_up(%d, 8))", d, d),
			Build: func(b *B) {
				b.Emit(St(B8, R10, int16(-d), 1), Ldx(B8, R0, R10, int16(-d))).Exit()
			},
		})
	}
	add(Entry{
		Name: "stack_via_copy",
		Note: "stack reached only through copies of r10 with added offsets",
		Build: func(b *B) {
			b.Emit(MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -304), MovX64(R3, R2), AluK(ALU64, ir.ALUAdd, R3, 16))
			b.Emit(St(DW, R3, 0, 5), St(DW, R2, 8, 6), Ldx(DW, R0, R3, 0)).Exit()
		},
	})
	add(Entry{
		Name:    "stack_var_offset",
		Pending: "passes/stackdepth: a store through r10 plus a bounded variable offset is not counted (the kernel's depth is 120: sub rsp, 0x78)",
		Note:    "stack written through r10 plus a bounded variable offset (the verifier's depth is the lowest reachable byte)",
		Build: func(b *B) {
			scalars(b, R3)
			b.Emit(AluK(ALU64, ir.ALUAnd, R3, 0x38), MovX64(R2, R10), AluK(ALU64, ir.ALUAdd, R2, -120), AluX(ALU64, ir.ALUAdd, R2, R3))
			b.Emit(St(DW, R2, 0, 1), Mov64(R0, 0)).Exit()
		},
	})
	add(Entry{
		Name: "stack_helper_arg",
		Note: "stack reached only by a helper writing through a pointer argument (bpf_get_current_comm into r10-160)",
		Build: func(b *B) {
			b.Emit(MovX64(R1, R10), AluK(ALU64, ir.ALUAdd, R1, -160), Mov64(R2, 16)).Call(helperGetCurComm)
			b.Exit()
		},
	})
	for _, regs := range [][]ir.Register{{}, {R6}, {R7}, {R8}, {R9}, {R6, R9}, {R7, R8}, {R6, R7, R8, R9}} {
		name := "callee_saved"
		if len(regs) == 0 {
			name += "_none"
		}
		for _, r := range regs {
			name += "_" + r.String()
		}
		add(Entry{
			Name: name,
			Note: "prologue pushes exactly the callee-saved registers used",
			Build: func(b *B) {
				b.Emit(Mov64(R0, 1))
				for _, r := range regs {
					b.Emit(Mov64(r, int32(r)), AluX(ALU64, ir.ALUAdd, R0, r))
				}
				b.Emit(St(DW, R10, -16, 3)).Exit()
			},
		})
	}
	add(Entry{
		Name:   "zext_rnd_hi32",
		Flags:  kernel.FlagTestRndHi32,
		Random: true,
		Note:   "loaded with BPF_F_TEST_RND_HI32: the verifier's zext marks become visible (random upper halves after unread 32-bit defs)",
		Build: func(b *B) {
			scalars(b, R1, R2, R3)
			b.Emit(Mov32(R1, 5), Mov32(R2, 7), AluX(ALU, ir.ALUAdd, R2, R2), MovX64(R0, R1), AluX(ALU, ir.ALUAdd, R0, R2))
			b.Emit(AluX(ALU, ir.ALUMul, R3, R3), AluK(ALU64, ir.ALURsh, R3, 3), AluX(ALU64, ir.ALUAdd, R0, R3))
			b.Emit(Ldx(W32, R4, R10, -8), AluX(ALU64, ir.ALUAdd, R0, R4))
			b.Exit()
		},
	})
	add(Entry{
		Name: "zext_cmpxchg32",
		Maps: []kernel.MapDef{valueMap},
		Note: "32-bit cmpxchg: the verifier inserts a zero-extension of r0 after it",
		Build: func(b *B) {
			scalars(b, R0, R2)
			b.Emit(LdMapValue(R1, 0, 0)...)
			b.Emit(Atomic(W32, R1, R2, 8, ir.AtomicCmpXchg), AluX(ALU64, ir.ALUAdd, R0, R2)).Exit()
		},
	})
}
