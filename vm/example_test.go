package vm_test

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/bpfc/bpfc/ir/elf"
	"github.com/bpfc/bpfc/vm"
)

// Run a clang-built program that uses a BPF arena in-process, then read
// what it wrote back from the arena. The object's arena globals live in
// the arena's last pages, as libbpf puts them; ObjectEnv creates the arena
// and gives the passes the addresses.
func Example_arena() {
	obj, err := elf.Load("../testdata/elf/arena_globals.o")
	if err != nil {
		fmt.Println(err)
		return
	}
	env, err := vm.NewObjectEnv(obj)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()
	prog, err := vm.Load(obj.Programs[0].Prog, env.LoadOptions(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer prog.Close()
	for range 3 {
		r0, err := prog.Run(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("arena_bump returned", r0)
	}
	// int __arena slots[16] at the globals' start, int __arena counter after it.
	globals := env.Arena.Bytes(env.Symbols[elf.ArenaSection], 17*4)
	slot := func(k int) uint32 { return binary.LittleEndian.Uint32(globals[4*k:]) }
	fmt.Println("slots[0..4]:", slot(0), slot(1), slot(2), slot(3), slot(4), "counter:", slot(16))
	// Output:
	// arena_bump returned 1
	// arena_bump returned 2
	// arena_bump returned 3
	// slots[0..4]: 1 7 8 5 0 counter: 3
}
