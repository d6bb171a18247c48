// Command bpfc compiles eBPF programs to x86-64 machine code identical to the
// Linux 6.18 kernel JIT's, dumps them in the kernel's verifier-log syntax,
// lists the pass pipeline, compares with the live kernel and runs programs.
//
// Exit status: 0 on success, 1 when an input cannot be compiled (the error
// names the file, the program and the instruction), 2 on a usage error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// usageError marks errors in how bpfc was called (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// notAvailable marks a subcommand whose machinery is not part of this build
// (exit status 1 with a clear message).
var errNotAvailable = errors.New("not available")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "bpfc: %s\n", oneLine(err.Error()))
	var ce contextError
	if errors.As(err, &ce) {
		io.WriteString(stderr, ce.text) // extra lines after the one-line error (--context)
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own errors for unknown commands.
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.HasPrefix(s, "invalid argument") ||
		strings.HasPrefix(s, "flag needs an argument") || strings.Contains(s, "arg(s), received")
}

// oneLine keeps an error on a single line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\r\n", "; ", "\n", "; ").Replace(s)
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "bpfc",
		Short: "Compile eBPF programs to x86-64 code identical to the Linux 6.18 JIT",
		Long: `bpfc compiles eBPF programs (clang BPF objects, raw bytecode, or conformance-suite
assembly) into x86-64 machine code byte-identical to what the Linux 6.18 kernel JIT
produces, BPF arena included, and can run that code in-process.

Exit status: 0 success, 1 compile error, 2 usage error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setupLogger()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "console", "log format: console or json (to stderr)")
	root.AddCommand(newCompile(g), newDump(g), newPasses(g), newKcompare(g), newRun(g), newBench(g))
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
		if c.Args == nil {
			continue
		}
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{fmt.Errorf("%s: %v", cmd.Name(), err)}
			}
			return nil
		}
	}
	return root
}

// fileErr attaches the file (and program) to an error, as compiler.Error
// does, unless it already names them.
func fileErr(file, prog string, err error) error {
	if strings.HasPrefix(err.Error(), file+": ") {
		return err
	}
	if prog != "" {
		return fmt.Errorf("%s: %s: %w", file, prog, err)
	}
	return fmt.Errorf("%s: %w", file, err)
}
