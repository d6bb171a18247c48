package amd64

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"
)

// Target holds everything that varies between kernels and machines and
// changes the bytes the JIT produces. The zero value is a usable target for
// in-process execution (no retpoline, no BMI2, no arena); Linux618 is the
// build machine's kernel.
type Target struct {
	// Name identifies the preset ("linux-6.18", "host", ...).
	Name string

	// KernVMStart is the arena's kernel base (loaded into r12 by arena
	// programs); UserVMStart the arena's user base (its upper 32 bits are
	// the immediate of the cast-to-user sequence).
	KernVMStart, UserVMStart uint64

	// CallBase is __bpf_call_base: a helper or kfunc call goes to
	// CallBase + imm.
	CallBase uint64

	// BMI2: shifts by a register use shlx/shrx/sarx.
	BMI2 bool

	// NopMax is ASM_NOP_MAX, the longest NOP emit_nops uses in one piece.
	// The JIT never pads more than 5 bytes at once, so any value >= 5 gives
	// the same code; 0 means 8.
	NopMax int

	// IndirectThunkRCX is __x86_indirect_thunk_rcx: with retpolines the
	// indirect tail call jumps there instead of `jmp rcx`. 0 = no retpoline.
	IndirectThunkRCX uint64
	// ReturnThunk, when not 0, makes every return `jmp ReturnThunk`
	// (X86_FEATURE_RETHUNK) instead of `ret`.
	ReturnThunk uint64
	// SLS adds an int3 after `ret` and after a plain indirect `jmp`
	// (CONFIG_MITIGATION_SLS).
	SLS bool
	// IndirectInt3: a plain indirect `jmp rcx` is followed by int3
	// (CONFIG_MITIGATION_RETPOLINE built in but not active).
	IndirectInt3 bool

	// PseudoFuncAddr is the placeholder address jit_subprogs puts into a
	// ld_imm64 of a BPF function before the callee is placed
	// (MODULES_VADDR); the layout is computed with it, so the real
	// address must encode to the same length.
	PseudoFuncAddr uint64

	// VsyscallAddr and TaskSizeMax (TASK_SIZE_MAX) and PageSize give the
	// bounds of the PROBE_MEM address check.
	VsyscallAddr, TaskSizeMax, PageSize uint64

	// ThisCPUOff is the address (low 32 bits, used as a gs: displacement)
	// of the per-cpu variable this_cpu_off, for per-cpu address moves.
	ThisCPUOff uint32

	// Offsets the indirect tail call reads: offsetof(struct bpf_array,
	// map.max_entries), offsetof(struct bpf_array, ptrs) and
	// offsetof(struct bpf_prog, bpf_func); MaxTailCallCnt is
	// MAX_TAIL_CALL_CNT.
	ArrayMaxEntriesOff uint8
	ArrayPtrsOff       uint32
	ProgBPFFuncOff     uint8
	MaxTailCallCnt     uint8

	// vm-only options (not kernel behaviour; off for kernel targets).

	// YieldCheck emits a budget check before every jump whose target is at
	// or before itself (see the package documentation).
	YieldCheck bool
	// YieldAddr is the absolute address of the vm's yield stub.
	YieldAddr uint64
}

// Addresses of this machine's kernel (6.18.44, no KASLR). Linux618 refreshes
// them from /proc/kallsyms when it can read real addresses.
const (
	linux618CallBase    = 0xffffffff814dccd0
	linux618ThunkRCX    = 0xffffffff82270020
	linux618ModulesAddr = 0xffffffffa0000000
	linux618ThisCPUOff  = 0x83b0c028         // &this_cpu_off (read off an inlined bpf_get_smp_processor_id)
	linux618ReturnThunk = 0xffffffff82270b00 // retbleed_return_thunk (x86_return_thunk)
)

// Linux618 returns the target equal to the build machine's kernel: Linux
// 6.18 x86-64 with BMI2, retpolines (indirect tail calls go through
// __x86_indirect_thunk_rcx), returns through the retbleed return thunk
// (`jmp retbleed_return_thunk` instead of `ret`, as this AMD machine's
// "untrained return thunk" mitigation does), no IBT/kCFI, no SLS.
// __bpf_call_base and the thunk addresses are read from /proc/kallsyms
// (once) when it shows addresses, else the values this machine had when the
// goldens were captured. The arena bases are per program: set KernVMStart/UserVMStart.
func Linux618() Target {
	t := linux618Static()
	kallsymsOnce.Do(func() {
		if f, err := os.Open("/proc/kallsyms"); err == nil {
			defer f.Close()
			kallsyms = ReadKallsyms(f, "__bpf_call_base", "__x86_indirect_thunk_rcx", "retbleed_return_thunk")
		}
	})
	if a := kallsyms["__bpf_call_base"]; a != 0 {
		t.CallBase = a
	}
	if a := kallsyms["__x86_indirect_thunk_rcx"]; a != 0 {
		t.IndirectThunkRCX = a
	}
	if a := kallsyms["retbleed_return_thunk"]; a != 0 {
		t.ReturnThunk = a
	}
	return t
}

// linux618Static is Linux618 without the /proc/kallsyms refresh.
func linux618Static() Target {
	return Target{
		Name:               "linux-6.18",
		CallBase:           linux618CallBase,
		BMI2:               true,
		NopMax:             8,
		IndirectThunkRCX:   linux618ThunkRCX,
		ReturnThunk:        linux618ReturnThunk,
		PseudoFuncAddr:     linux618ModulesAddr,
		VsyscallAddr:       0xffffffffff600000,
		TaskSizeMax:        (1 << 47) - 4096,
		PageSize:           4096,
		ArrayMaxEntriesOff: 0x4c,
		ArrayPtrsOff:       0x138,
		ProgBPFFuncOff:     0x48,
		MaxTailCallCnt:     33,
		ThisCPUOff:         linux618ThisCPUOff,
	}
}

var (
	kallsymsOnce sync.Once
	kallsyms     map[string]uint64
)

// Host returns a target for running code in this process: the kernel's
// code shapes, BMI2 as the CPU reports it, no retpoline (0 thunk), and
// addresses left for the caller (CallBase, YieldAddr, arena bases).
func Host() Target {
	t := linux618Static()
	t.Name = "host"
	t.BMI2 = cpu.X86.HasBMI2
	t.CallBase = 0
	t.IndirectThunkRCX = 0
	t.ReturnThunk = 0
	t.PseudoFuncAddr = 0x00007f0000000000
	return t
}

// ReadKallsyms returns the addresses of the named symbols from a
// /proc/kallsyms listing (0 for missing or hidden ones).
func ReadKallsyms(r io.Reader, names ...string) map[string]uint64 {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]uint64, len(names))
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !want[f[2]] {
			continue
		}
		if a, err := strconv.ParseUint(f[0], 16, 64); err == nil {
			out[f[2]] = a
		}
		if len(out) == len(want) {
			break
		}
	}
	return out
}

func (t *Target) nopMax() int {
	if t.NopMax <= 0 {
		return 8
	}
	if t.NopMax > 11 {
		return 11
	}
	return t.NopMax
}

func (t *Target) probeLimit() uint64 {
	ps := t.PageSize
	if ps == 0 {
		ps = 4096
	}
	return t.TaskSizeMax + ps - t.VsyscallAddr
}

// TargetNames lists the presets TargetByName knows.
func TargetNames() []string { return []string{"linux-6.18", "host"} }

// TargetByName returns a preset: "linux-6.18" (also "linux618", "kernel")
// or "host".
func TargetByName(name string) (Target, error) {
	switch strings.ToLower(name) {
	case "linux-6.18", "linux618", "linux", "kernel", "":
		return Linux618(), nil
	case "host":
		return Host(), nil
	}
	return Target{}, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
}
