package kernel

import (
	"os"
	"strings"
	"sync"

	"github.com/bpfc/bpfc/ir"
)

var (
	availOnce   sync.Once
	availReason string
)

// Available reports whether the live-kernel oracle can be used here: root,
// a working bpf(), the JIT on, and kernel addresses readable. When it cannot,
// reason says why (for t.Skip).
func Available() (ok bool, reason string) {
	availOnce.Do(func() { availReason = probe() })
	return availReason == "", availReason
}

func probe() string {
	if os.Geteuid() != 0 {
		return "not root: loading programs and reading JIT images needs CAP_BPF+CAP_PERFMON"
	}
	if v, err := readSysctl("net/core/bpf_jit_enable"); err != nil {
		return "BPF JIT state unknown: " + err.Error()
	} else if v == "0" {
		return "BPF JIT is off (net.core.bpf_jit_enable=0)"
	}
	if v, err := readSysctl("kernel/kptr_restrict"); err == nil && v == "2" {
		return "kernel.kptr_restrict=2 hides JIT images and addresses"
	}
	if v, err := readSysctl("net/core/bpf_jit_harden"); err == nil && v != "0" {
		return "net.core.bpf_jit_harden=" + v + " blinds constants: JIT output is not deterministic"
	}
	if _, err := CallBase(); err != nil {
		return err.Error()
	}
	// A two-instruction program must load and report its JIT image.
	p := ir.NewProgram("bpfc_probe", []ir.Instruction{
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ir.R0},
		{Op: ir.OpExit},
	})
	l, err := Load(&Spec{Name: "bpfc_probe", Type: SocketFilter, Program: p, NoLineInfo: true})
	if err != nil {
		return "bpf() does not load programs: " + firstLine(err.Error())
	}
	defer l.Close()
	info, err := ProgInfo(l.FD)
	if err != nil {
		return "BPF_OBJ_GET_INFO_BY_FD: " + err.Error()
	}
	if len(info.Jited) == 0 || len(info.Ksyms) == 0 || info.Ksyms[0] == 0 {
		return "the kernel reports no JIT image or addresses"
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
