package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/pipeline"
)

func newPasses(g *globals) *cobra.Command {
	var xlated, all bool
	cmd := &cobra.Command{
		Use:   "passes",
		Short: "List the passes of the pipeline, in order, one per line",
		Long: `Passes lists the passes compile runs, in order: "NAME  DESCRIPTION". With
--from-xlated, the shorter pipeline for an xlated input; with --all, every pass
registered (sorted), marking the ones the default pipeline runs with '*'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var b strings.Builder
			if all {
				inDefault := map[string]bool{}
				for _, n := range compiler.DefaultPipeline(xlated).Names() {
					inDefault[n] = true
				}
				for _, n := range pipeline.Default.Names() {
					p, err := pipeline.Default.New(n)
					if err != nil {
						return err
					}
					mark := " "
					if inDefault[n] {
						mark = "*"
					}
					fmt.Fprintf(&b, "%s %-14s %s\n", mark, n, describe(p))
				}
			} else {
				passes, enabled := compiler.DefaultPipeline(xlated).Passes()
				for k, p := range passes {
					d := describe(p)
					if !enabled[k] {
						d += " (disabled)"
					}
					fmt.Fprintf(&b, "%-14s %s\n", p.Name(), d)
				}
			}
			if b.Len() == 0 {
				return fmt.Errorf("no passes are registered in this build")
			}
			_, err := fmt.Fprint(g.stdout, b.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&xlated, "from-xlated", false, "the pipeline for an xlated input")
	cmd.Flags().BoolVar(&all, "all", false, "every registered pass")
	return cmd
}

func describe(p pipeline.Pass) string {
	if d, ok := p.(pipeline.Describer); ok {
		return d.Describe()
	}
	return "(no description)"
}
