package compiler

import (
	"os"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestUnknownKfunc: an object calling a kfunc the running kernel lacks is
// refused at load with the instruction and the name; a kernel kfunc
// (bpf_arena_alloc_pages) passes the check.
func TestUnknownKfunc(t *testing.T) {
	if loadKernelBTF() == nil {
		t.Skip("no kernel BTF at /sys/kernel/btf/vmlinux")
	}
	_, err := Load("../cmd/bpfc/testdata/badinput/unknown_kfunc.o", LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), `call_missing: instruction 1: kfunc "bpf_no_such_kfunc" is not in the kernel's BTF`) {
		t.Fatalf("got %v", err)
	}
	p := ir.NewProgram("k", []ir.Instruction{{Op: ir.OpCall, Src: ir.CallKfunc}, {Op: ir.OpExit}})
	p.Aux[0].Symbol, p.Aux[0].SymbolKind = "bpf_arena_alloc_pages", ir.SymKfunc
	if err := checkKfuncs(p); err != nil {
		t.Fatalf("bpf_arena_alloc_pages: %v", err)
	}
	if _, err := os.Stat(elfDir + "/arena_globals.o"); err == nil {
		if _, err := Load(elfDir+"/arena_globals.o", LoadOptions{}); err != nil {
			t.Fatalf("arena_globals.o: %v", err)
		}
	}
}
