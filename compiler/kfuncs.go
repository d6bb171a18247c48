package compiler

import (
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/elf"
)

// Kfunc check. An object's kfunc calls are linked by name against the
// running kernel's BTF (libbpf: "extern (func ksym) ...: not found in kernel
// or module BTFs"), so a call of a kfunc the kernel does not have can never
// load. Without LoadOptions.ELF.KernelBTF the ELF loader leaves the BTF id
// at 0; checkKfuncs then looks the names up in /sys/kernel/btf (vmlinux,
// then the modules) when the machine has it, and otherwise checks nothing.

var (
	kernelBTFOnce sync.Once
	kernelBTF     *btf.Spec
)

func loadKernelBTF() *btf.Spec {
	kernelBTFOnce.Do(func() {
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
			return
		}
		if s, err := btf.LoadKernelSpec(); err == nil {
			kernelBTF = s
		}
	})
	return kernelBTF
}

// kfuncKnown reports whether the kernel (or one of its modules) has a
// function called name in its BTF.
func kfuncKnown(spec *btf.Spec, name string) bool {
	var fn *btf.Func
	if spec.TypeByName(name, &fn) == nil {
		return true
	}
	return elf.InKernelModule(name)
}

// checkKfuncs returns an *ir.Error for the first call of a kfunc the
// running kernel does not have (nil when there is no kernel BTF to ask).
func checkKfuncs(p *ir.Program) error {
	var spec *btf.Spec
	for i, ins := range p.Insns {
		if !ins.IsKfuncCall() || ins.Imm != 0 || p.Aux[i].Symbol == "" {
			continue
		}
		if spec == nil {
			if spec = loadKernelBTF(); spec == nil {
				return nil
			}
		}
		if !kfuncKnown(spec, p.Aux[i].Symbol) {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("kfunc %q is not in the kernel's BTF (vmlinux or modules): the program cannot be linked", p.Aux[i].Symbol)}
		}
	}
	return nil
}
