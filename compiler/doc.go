// Package compiler is bpfc's front door for embedders and for cmd/bpfc: it
// reads an input (a clang BPF object, raw little-endian bytecode, or a
// conformance-suite assembly file), runs the pass pipeline over each
// program and hands the result to the x86-64 backend, whose code is
// byte-identical to what the Linux 6.18 JIT emits for the same program.
//
// # Loading
//
// Load reads a file and LoadBytes data already in memory; both return one
// Input per program (an object may hold several; LoadOptions.Prog selects
// one by function or section name). The format is detected (ELF magic,
// .data/.asm/.s for assembly, raw otherwise) or forced with
// LoadOptions.Kind. A program built in Go, or converted from cilium/ebpf's
// asm.Instructions with package ir/cilium, is compiled by wrapping it:
// &Input{File: "name", Name: "name", Prog: p}.
//
//	inputs, err := compiler.Load("prog.o", compiler.LoadOptions{Prog: "xdp_prog"})
//
// # Compiling
//
// Compile clones the input's program, runs the pipeline over it and the
// backend after it:
//
//	res, err := compiler.Compile(inputs[0], compiler.Options{Target: amd64.Linux618()})
//	code := res.Image.Code()        // the bytes the kernel JIT would emit
//	funcs := res.Image.Funcs        // per function: exec address, BPF->x86 offsets, extable
//
// The target decides the code's environment: amd64.Linux618() is this
// machine's kernel (return thunk, call base and helper addresses from
// /proc/kallsyms), amd64.Host() code that runs in the Go process (package
// vm). Options.ExecBase places the functions, Options.Symbols gives the
// addresses of maps, data sections and arena globals, Options.FakeMapAddrs
// invents map addresses when only the code's shape matters.
//
// # Passes
//
// DefaultPipeline and PipelineFor return the standard pipeline (the
// verifier's rewrites, then the JIT's analyses); it is a *pipeline.Pipeline
// that can be changed before it is given as Options.Pipeline: passes can
// be inserted (InsertBefore/InsertAfter, any type with Name and Run),
// replaced, removed or disabled. Options.DumpAfter (or the pipeline's
// DumpAfter) names the passes after which the program is kept in
// Result.Passes.Snapshots and logged through Options.Logger (zap);
// Result.Passes.Stats has every pass's time and change count.
//
// # Looking at the result
//
// Listing writes the machine code function by function with each BPF
// instruction, the C line it came from (objects compiled with -g) and the
// x86 instructions it became, prologue, epilogue and exception-table
// entries labelled. HTMLReport writes a self-contained page with one
// column per pass and the x86 listing, linked instruction by instruction
// (compile with DumpAfter: []string{"all"}).
//
// # Errors
//
// Every error is an *Error that names the input file, the program (for
// objects) and, where there is one, the instruction: "prog.o: xdp_prog:
// pass fixups: instruction 12: ...". With line info a *SourceError inside
// adds the C line. ErrorContext renders the program around the failing
// instruction, the way a compiler quotes source around an error.
//
// # Running
//
// Package vm loads a program compiled for the host into executable memory
// and runs it in-process, with BPF arenas (package arena), helpers and
// fault recovery; vm.NewObjectEnv prepares an object's maps and arena.
package compiler
