package elf_test

import (
	"fmt"

	"github.com/bpfc/bpfc/ir/elf"
)

// Load an object and look at what its relocations became.
func ExampleLoad() {
	obj, err := elf.Load("../../testdata/elf/calls.o")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range obj.Programs {
		fmt.Printf("%s (section %s, %v): %d slots\n", p.Name, p.Section, p.Type, p.Prog.Len())
	}
	p := obj.Program("caller_two")
	for i, a := range p.Prog.Aux {
		if a.Symbol != "" {
			fmt.Printf("  %2d: %-6s %s\n", i, a.SymbolKind, a.Symbol)
		}
	}
	// Output:
	// caller_one (section socket, SocketFilter): 42 slots
	// caller_two (section syscall, Syscall): 31 slots
	//    0: kfunc  bpf_rcu_read_lock
	//    2: func   square_sum
	//    5: func   mix
	//    7: kfunc  bpf_rcu_read_unlock
	//   19: func   mix
}
