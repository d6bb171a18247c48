package ir_test

import (
	"fmt"

	"github.com/bpfc/bpfc/ir"
)

// Decode raw bytecode, edit it, and print it in the kernel's verifier-log
// syntax. Insert keeps the jump that crossed the insertion point correct.
func ExampleProgram_Insert() {
	raw := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 0}, // r0 = 0
		{Op: 0x15, Dst: ir.R1, Off: 1}, // if r1 == 0 goto +1
		{Op: 0x07, Dst: ir.R0, Imm: 1}, // r0 += 1
		{Op: ir.OpExit},                // exit
	}})
	p, err := ir.Decode(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Insert(2, []ir.Instruction{{Op: 0x07, Dst: ir.R0, Imm: 10}}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(p)
	fmt.Println("original index of each slot:", p.Aux[0].OrigIndex, p.Aux[1].OrigIndex, p.Aux[2].OrigIndex, p.Aux[3].OrigIndex, p.Aux[4].OrigIndex)
	// Output:
	//    0: (b7) r0 = 0
	//    1: (15) if r1 == 0x0 goto pc+2
	//    2: (07) r0 += 10
	//    3: (07) r0 += 1
	//    4: (95) exit
	// original index of each slot: 0 1 -1 2 3
}

// Decoding is strict: the error names the instruction.
func ExampleDecode_error() {
	_, err := ir.Decode([]byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0})
	fmt.Println(err)
	// Output: instruction 1: unknown opcode 0xff
}
