package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bpfc/bpfc/ir"
)

type dumpFlags struct {
	inputFlags
	noSource   bool
	kernelText bool
}

func newDump(g *globals) *cobra.Command {
	f := &dumpFlags{}
	cmd := &cobra.Command{
		Use:   "dump [flags] INPUT...",
		Short: "Print the decoded program in the kernel's verifier-log syntax",
		Long: `Dump prints every program of every INPUT as ` + "`bpftool prog dump xlated`" + ` does:
one line per instruction, "INDEX: (OPCODE) TEXT", with the C source line before the
instructions it produced when the object has line info ("; text"). Maps, globals,
kfuncs and called functions are named by their symbols unless --kernel-text.`,
		Example: `  bpfc dump testdata/elf/calls.o
  bpfc dump --prog alu_loop --no-source testdata/elf/alu.o`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := f.load(g, args)
			if err != nil {
				return err
			}
			var b strings.Builder
			for k, in := range inputs {
				if len(inputs) > 1 {
					if k > 0 {
						b.WriteString("\n")
					}
					fmt.Fprintf(&b, "; %s: %s", in.File, in.Name)
					if in.Section != "" {
						fmt.Fprintf(&b, " (section %s)", in.Section)
					}
					b.WriteString("\n")
				}
				if f.kernelText {
					b.WriteString(withSource(in.Prog, !f.noSource, nil))
				} else {
					b.WriteString(formatProgram(in.Prog, !f.noSource))
				}
			}
			_, err = fmt.Fprint(g.stdout, b.String())
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&f.noSource, "no-source", false, "leave out the C source lines")
	cmd.Flags().BoolVar(&f.kernelText, "kernel-text", false, "print exactly what bpftool prints (maps as map[id:N], no symbol names)")
	return cmd
}

// withSource is ir.Program.StringWith with source lines.
func withSource(p *ir.Program, source bool, o *ir.PrintOptions) string {
	var b strings.Builder
	var last *ir.SourceLine
	for i := 0; i < p.Len(); i++ {
		if l := p.Aux[i].Line; source && l != nil && l != last {
			fmt.Fprintf(&b, "; %s\n", strings.TrimSpace(l.Text))
			last = l
		}
		fmt.Fprintf(&b, "% 4d: %s\n", i, p.KernelText(i, o))
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	return b.String()
}
