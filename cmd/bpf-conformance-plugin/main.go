// Command bpf-conformance-plugin runs one eBPF program for the
// bpf_conformance suite's runner (the plugin protocol): the program's bytes
// as space-separated hex on standard input, the input memory as hex in the
// first argument, options after it. It prints r0 in hex and exits 0, or
// prints why the program was rejected or failed and exits 1.
//
//	bpf-conformance-plugin [memhex] [--jit | --interp] [--elf]
//
// --jit (the default) compiles the program like the Linux 6.18 x86-64 JIT
// and runs the machine code in this process (package vm); --interp runs it
// in bpfc's interpreter (package interp). Helper 5 is the suite's "unwind".
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/vm"
)

func main() {
	r0, err := run(os.Args[1:], os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stdout, err)
		os.Exit(1)
	}
	fmt.Printf("%x\n", r0)
}

// decodeHex reads space/newline separated hex bytes (or one hex string).
func decodeHex(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimPrefix(s, "0x")
	return hex.DecodeString(s)
}

func run(args []string, stdin io.Reader) (uint64, error) {
	mode := "jit"
	var memHex string
	haveMem := false
	for _, a := range args {
		switch a {
		case "--jit":
			mode = "jit"
		case "--interp":
			mode = "interp"
		case "-h", "--help":
			return 0, fmt.Errorf("usage: bpf-conformance-plugin [memhex] [--jit | --interp] < program-hex")
		default:
			if strings.HasPrefix(a, "-") {
				return 0, fmt.Errorf("unknown option %q", a)
			}
			if haveMem {
				return 0, fmt.Errorf("unexpected argument %q", a)
			}
			memHex, haveMem = a, true
		}
	}
	mem, err := decodeHex(memHex)
	if err != nil {
		return 0, fmt.Errorf("memory: %v", err)
	}
	src, err := io.ReadAll(stdin)
	if err != nil {
		return 0, err
	}
	code, err := decodeHex(string(src))
	if err != nil {
		return 0, fmt.Errorf("program: %v", err)
	}
	p, err := ir.Decode(code)
	if err != nil {
		return 0, err
	}
	p.Name = "plugin"
	hs := helpers.Conformance()
	if mode == "interp" {
		res, err := interp.Run(p, interp.Options{Helpers: hs}, mem)
		if err != nil {
			return 0, err
		}
		return res.R0, nil
	}
	prog, err := vm.Load(p, &vm.LoadOptions{Options: vm.Options{Helpers: hs}})
	if err != nil {
		return 0, err
	}
	defer prog.Close()
	return prog.RunMem(context.Background(), mem)
}
