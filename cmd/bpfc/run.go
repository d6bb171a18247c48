package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/pipeline"
	"github.com/bpfc/bpfc/vm"
)

type runFlags struct {
	inputFlags
	mem       string
	useInterp bool
	budget    int64
	printMem  bool
	timeout   time.Duration
}

func newRun(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [flags] INPUT",
		Short: "Run a program in-process and print r0",
		Long: `Run compiles one program with the kernel's code shapes for this process (the vm
package: W^X code region, private stacks, helpers, arena fault recovery through the
exception table) and runs it once with r1 = the memory given by --mem (or a
conformance file's "-- mem" section) and r2 = its length. It prints r0 in hex.
For a conformance file with a "-- result" section (and no --mem) it also checks r0
and exits 1 when it differs. --interp runs the reference interpreter instead of the JIT.
An object's maps are created in-process (vm.NewObjectEnv): an arena map gets a real
arena (its globals placed as libbpf does), array and hash maps and the data sections
(.data, .rodata, .bss) become maps the helpers use; other map types are an error.`,
		Example: `  bpfc run /work/shared/conformance/add.data
  printf '\xb7\x00\x00\x00\x07\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00' | bpfc run -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(g, args) },
	}
	f.add(cmd)
	cmd.Flags().StringVar(&f.mem, "mem", "", "input memory as hex bytes (spaces allowed); r1 points to it, r2 is its length")
	cmd.Flags().BoolVar(&f.useInterp, "interp", false, "run the reference interpreter instead of the JIT")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "stop the run after this long (e.g. 2s); 0 = no limit")
	cmd.Flags().BoolVar(&f.printMem, "print-mem", false, "after the run, print the memory (hex) on a second line")
	cmd.Flags().Int64Var(&f.budget, "budget", 0, "stop a run after about this many loop iterations (JIT) or instructions (--interp); 0 = no limit")
	return cmd
}

func (f *runFlags) run(g *globals, args []string) error {
	var mem []byte
	if f.mem != "" {
		b, err := hex.DecodeString(strings.Join(strings.Fields(f.mem), ""))
		if err != nil {
			return usagef("--mem: %v", err)
		}
		mem = b
	}
	if f.budget < 0 {
		return usagef("--budget %d: must not be negative", f.budget)
	}
	inputs, err := f.load(g, args)
	if err != nil {
		return err
	}
	if len(inputs) != 1 {
		return usagef("run needs exactly one program, got %d: select one with --prog", len(inputs))
	}
	in := inputs[0]
	check := false // the file's expected result applies to the file's memory
	if mem == nil && in.Test != nil {
		mem = in.Test.Mem
		check = in.Test.HasResult
	}
	errName := ""
	if in.ElfProg != nil {
		errName = in.Name
	}
	// An object's arena (vm.NewObjectEnv: the map's size and map_extra
	// address, globals placed as libbpf does); for the interpreter also its
	// array/hash/data maps.
	var env *vm.ObjectEnv
	if in.Object != nil {
		env, err = vm.NewObjectEnv(in.Object)
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		defer env.Close()
	}
	ctx := context.Background()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	var r0 uint64
	if f.useInterp {
		io := interp.Options{}
		if env != nil {
			// The same maps the JIT would use: ld_imm64 of a map or
			// data section resolves through env.Symbols to them.
			io.Arena, io.Symbols = env.Arena, env.Symbols
			io.Maps = map[string]*helpers.Map{}
			for _, m := range env.Maps {
				io.Maps[m.Name] = m
			}
		}
		p, err := interp.Prepare(in.Prog, io)
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		res, err := p.Run(interp.RunOptions{Mem: mem, Budget: uint64(f.budget), Context: ctx, Trace: g.stderr})
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		r0 = res.R0
	} else {
		lo := &vm.LoadOptions{Options: vm.Options{Name: in.Name}, Xlated: f.fromXlated,
			Context: &pipeline.Context{Logger: g.log, File: in.File}}
		if env != nil {
			lo = env.LoadOptions(lo)
		}
		p, err := vm.Load(in.Prog, lo)
		if err != nil {
			return fileErr(in.File, errName, err)
		}
		defer p.Close()
		r0, err = p.RunConfig(ctx, &vm.RunConfig{Mem: mem, Budget: f.budget, Trace: g.stderr})
		if err != nil {
			return fileErr(in.File, errName, err)
		}
	}
	fmt.Fprintf(g.stdout, "%#x\n", r0)
	if f.printMem {
		fmt.Fprintf(g.stdout, "%s\n", hex.EncodeToString(mem))
	}
	if check && in.Test.Result != r0 {
		return fileErr(in.File, errName, fmt.Errorf("r0 = %#x, the file expects %#x", r0, in.Test.Result))
	}
	return nil
}
