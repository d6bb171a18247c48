package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRun(g *globals) *cobra.Command {
	f := &inputFlags{}
	cmd := &cobra.Command{
		Use:   "run [flags] INPUT",
		Short: "Run a program in-process and print r0",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("run: %w in this build yet", errNotAvailable)
		},
	}
	f.add(cmd)
	return cmd
}
