package corpus

import (
	"github.com/bpfc/bpfc/ir"
)

// Offsets in struct task_struct of the build machine's 6.18 kernel (from
// /sys/kernel/btf/vmlinux; TestTaskStructOffsets checks them where BTF is
// readable). Loads through task->group_leader, an untrusted BTF pointer,
// become PROBE_MEM / PROBE_MEMSX.
var taskOff = map[string]int16{
	"__state":             24,   // u32
	"wakee_flip_decay_ts": 80,   // u64
	"prio":                108,  // int
	"rt_priority":         120,  // u32
	"throttled":           752,  // bool
	"migration_disabled":  856,  // u16
	"migration_flags":     858,  // u16
	"rcu_tasks_holdout":   904,  // u8
	"jobctl":              1176, // u64
	"pid":                 1264, // int
	"tgid":                1268, // int
	"group_leader":        1328, // struct task_struct *
}

const helperGetCurrentTaskBTF = 158

func probeFamily() {
	add(Entry{
		Name: "probe_mem_subprog",
		Note: "PROBE_MEM loads in a function called from main",
		Build: func(b *B) {
			b.CallLocal("f").Exit()
			b.Label("f").Call(helperGetCurrentTaskBTF)
			b.Emit(Ldx(DW, R1, R0, taskOff["group_leader"]), Ldx(W32, R0, R1, taskOff["pid"])).Exit()
		},
	})
	add(Entry{
		Name: "probe_mem_sizes",
		Note: "loads through an untrusted BTF pointer (task->group_leader): PROBE_MEM B/H/W/DW and PROBE_MEMSX B/H/W with the address check and extable entries",
		Build: func(b *B) {
			b.Call(helperGetCurrentTaskBTF)
			b.Emit(Ldx(DW, R6, R0, taskOff["group_leader"]))
			b.Emit(Ldx(W32, R1, R6, taskOff["__state"]), Ldx(DW, R2, R6, taskOff["wakee_flip_decay_ts"]),
				Ldx(B8, R3, R6, taskOff["throttled"]), Ldx(H16, R4, R6, taskOff["migration_disabled"]),
				Ldsx(W32, R5, R6, taskOff["prio"]), Ldsx(B8, R7, R6, taskOff["rcu_tasks_holdout"]),
				Ldsx(H16, R8, R6, taskOff["migration_flags"]), Ldx(W32, R9, R6, taskOff["pid"]),
				Ldx(DW, R0, R6, taskOff["jobctl"]))
			for _, r := range []ir.Register{R1, R2, R3, R4, R5, R7, R8, R9} {
				b.Emit(AluX(ALU64, ir.ALUAdd, R0, r))
			}
			b.Exit()
		},
	})
	add(Entry{
		Name: "probe_mem_regs",
		Note: "PROBE_MEM loads with every base register (incl. rax, rdi, r13) and destinations equal to the base",
		Build: func(b *B) {
			b.Call(helperGetCurrentTaskBTF)
			b.Emit(MovX64(R9, R0))
			for _, base := range []ir.Register{R0, R1, R2, R3, R4, R5, R6, R7, R8} {
				b.Emit(Ldx(DW, base, R9, taskOff["group_leader"]))
				for _, d := range []ir.Register{R6, R0, R7} {
					if d != base {
						b.Emit(Ldx(W32, d, base, taskOff["tgid"]), Ldx(W32, d, base, taskOff["rt_priority"]))
					}
				}
				b.Emit(Ldx(DW, base, base, taskOff["jobctl"]))
			}
			b.Emit(Mov64(R0, 0)).Exit()
		},
	})
}
