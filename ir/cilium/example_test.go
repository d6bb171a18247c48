package cilium_test

import (
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir/cilium"
)

// A program written with cilium/ebpf's assembler DSL goes through bpfc's
// passes and backend.
func ExampleFromInstructions() {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R0, -40).WithSymbol("sdiv_demo"),
		asm.SDiv.Imm(asm.R0, 3), // cilium's extended opcode: BPF_DIV with offset 1
		asm.Return(),
	}
	p, err := cilium.FromInstructions(insns)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(p)
	res, err := compiler.Compile(&compiler.Input{File: "dsl", Name: p.Name, Prog: p},
		compiler.Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes of x86, %d layout passes\n", len(res.Image.Code()), res.Image.Passes)
	// Output:
	//    0: (b7) r0 = -40
	//    1: (37) r0 s/= 3
	//    2: (95) exit
	// 35 bytes of x86, 3 layout passes
}
