package amd64_test

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/passes"
)

// The backend takes a program the passes have prepared (functions, stack
// depths, callee-saved registers, zero extension) and emits each function
// as the kernel's do_jit would; Addrs maps every BPF instruction to its
// code.
func ExampleCompile() {
	p := ir.NewProgram("add", []ir.Instruction{
		{Op: 0xbf, Dst: ir.R0, Src: ir.R1}, // r0 = r1
		{Op: 0x0f, Dst: ir.R0, Src: ir.R2}, // r0 += r2
		{Op: ir.OpExit},
	})
	if _, err := passes.Default(passes.Options{CtxIsMemory: true}).Run(p, nil); err != nil {
		fmt.Println(err)
		return
	}
	im, err := amd64.Compile(p, amd64.Host(), []uint64{0x10000})
	if err != nil {
		fmt.Println(err)
		return
	}
	f := im.Funcs[0]
	for i := 0; i < p.Len(); i++ {
		code := f.Code[f.Addrs[i]:f.Addrs[i+1]]
		var asm []string
		for pc := 0; pc < len(code); {
			inst, err := x86asm.Decode(code[pc:], 64)
			if err != nil {
				fmt.Println(err)
				return
			}
			asm = append(asm, x86asm.IntelSyntax(inst, 0, nil))
			pc += inst.Len
		}
		fmt.Printf("%-9s -> % x: %s\n", p.Format(i), code, strings.Join(asm, "; "))
	}
	fmt.Println(im.Passes, "layout passes")
	// Output:
	// r0 = r1   -> 48 89 f8: mov rax, rdi
	// r0 += r2  -> 48 01 f0: add rax, rsi
	// exit      -> c9 c3: leave; ret
	// 3 layout passes
}
