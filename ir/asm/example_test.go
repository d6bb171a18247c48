package asm_test

import (
	"fmt"

	"github.com/bpfc/bpfc/ir/asm"
)

// Assemble the conformance suite's syntax, print the program in the
// kernel's syntax, and write it back.
func ExampleAssemble() {
	p, err := asm.Assemble(`
		mov %r0, 0
		jeq %r1, 0, done
		add %r0, 5
	done:
		exit`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(p)
	fmt.Print(asm.Format(p))
	_, err = asm.Assemble("mov %r0, 1\nfrob %r1\nexit")
	fmt.Println(err)
	// Output:
	//    0: (b7) r0 = 0
	//    1: (15) if r1 == 0x0 goto pc+1
	//    2: (07) r0 += 5
	//    3: (95) exit
	// mov %r0, 0
	// jeq %r1, 0, L3
	// add %r0, 5
	// L3:
	// exit
	// line 2: unknown mnemonic "frob"
}
