package compiler_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
)

// Compile a program given as raw bytecode.
func ExampleCompile() {
	prog := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 42}, // r0 = 42
		{Op: ir.OpExit},                 // exit
	}})
	inputs, err := compiler.LoadBytes("answer.bin", prog, compiler.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The host target (no return thunk), code placed at 0x10000.
	res, err := compiler.Compile(inputs[0], compiler.Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", res.Image.Code())
	// Output: 0f 1f 44 00 00 0f 1f 00 55 48 89 e5 b8 2a 00 00 00 c9 c3
}

// Load the programs of a clang-built object and compile one of them.
func ExampleLoad() {
	inputs, err := compiler.Load("../testdata/elf/calls.o", compiler.LoadOptions{Prog: "caller_two"})
	if err != nil {
		fmt.Println(err)
		return
	}
	in := inputs[0]
	fmt.Println(in.Name, in.Section, in.Prog.Len(), "instructions")
	res, err := compiler.Compile(in, compiler.Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Image.Funcs {
		fmt.Printf("%s at %#x\n", in.ElfProg.Funcs[f.Start], f.ExecAddr)
	}
	// Output:
	// caller_two syscall 31 instructions
	// caller_two at 0x10000
	// square_sum at 0x10040
	// mix at 0x100c0
}

// A listing shows each C line, BPF instruction and the x86 code it became.
func ExampleListing() {
	inputs, _ := compiler.Load("../testdata/elf/core.o", compiler.LoadOptions{})
	res, err := compiler.Compile(inputs[0], compiler.Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	if err != nil {
		fmt.Println(err)
		return
	}
	var b strings.Builder
	if err := compiler.Listing(&b, res); err != nil {
		fmt.Println(err)
		return
	}
	// Drop the header line, which names the target.
	out := b.String()
	os.Stdout.WriteString(out[strings.Index(out, "\n")+1:])
	// Output:
	// core_read: ; exec 0x10000, 20 bytes, 0 extable entries
	//   ; prologue
	//     0x000000: 0f1f440000               nop dword ptr [rax+rax], eax
	//     0x000005: 0f1f00                   nop dword ptr [rax], eax
	//     0x000008: 55                       push rbp
	//     0x000009: 4889e5                   mov rbp, rsp
	// ; core.c:16: return t->tgid + 1;
	//     0: (61) r0 = *(u32 *)(r1 +4)
	//     0x00000c: 8b4704                   mov eax, dword ptr [rdi+0x4]
	//     1: (04) w0 += 1
	//     0x00000f: 83c001                   add eax, 0x1
	//     2: (95) exit
	//     0x000012: c9                       leave
	//     0x000013: c3                       ret
}
