package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newKcompare(g *globals) *cobra.Command {
	f := &inputFlags{}
	cmd := &cobra.Command{
		Use:   "kcompare [flags] INPUT...",
		Short: "Load programs into the live kernel and compare its JIT output with bpfc's",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("kcompare: %w in this build yet", errNotAvailable)
		},
	}
	f.add(cmd)
	return cmd
}
