// Command kcapture loads every corpus program (internal/corpus) into the
// live kernel and (re)writes its golden capture, testdata/kernel/<name>.json.
//
//	go run ./internal/kernel/cmd/kcapture -out testdata/kernel
//
// A golden that is equivalent to the new capture (same everything except
// load addresses, see kernel.Equivalent) is left untouched, so running the
// command twice changes nothing; -force rewrites them all. -check loads
// each program twice and verifies the two captures are equivalent. Needs
// root and a BPF-enabled kernel; exits 1 if any program fails.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/bpfc/bpfc/internal/corpus"
	"github.com/bpfc/bpfc/internal/kernel"
)

func main() {
	out := flag.String("out", "testdata/kernel", "directory of the golden captures")
	run := flag.String("run", "", "only programs whose name matches this regexp")
	force := flag.Bool("force", false, "rewrite goldens even when equivalent")
	check := flag.Bool("check", false, "load every program twice and require equivalent captures")
	list := flag.Bool("list", false, "list the corpus and exit")
	prune := flag.Bool("prune", false, "delete goldens of programs no longer in the corpus")
	flag.Parse()

	var re *regexp.Regexp
	if *run != "" {
		var err error
		if re, err = regexp.Compile(*run); err != nil {
			fmt.Fprintln(os.Stderr, "kcapture: -run:", err)
			os.Exit(2)
		}
	}
	entries := corpus.All()
	if *list {
		for _, e := range entries {
			fmt.Printf("%-32s %-14s %s\n", e.Name, e.Type, e.Note)
		}
		return
	}
	if ok, why := kernel.Available(); !ok {
		fmt.Fprintln(os.Stderr, "kcapture: live kernel unavailable:", why)
		os.Exit(1)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "kcapture:", err)
		os.Exit(1)
	}
	var written, unchanged, failed, checked int
	names := map[string]bool{}
	for _, e := range entries {
		if e.Pending != "" {
			names["pending/"+e.Name+".json"] = true
		} else {
			names[e.Name+".json"] = true
		}
		if re != nil && !re.MatchString(e.Name) {
			continue
		}
		c, err := captureEntry(e)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", e.Name, err)
			failed++
			continue
		}
		if *check && !e.Random {
			c2, err := captureEntry(e)
			if err == nil {
				err = kernel.Equivalent(c, c2)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "FAIL %s: not deterministic across reloads: %v\n", e.Name, err)
				failed++
				continue
			}
			checked++
		}
		dir := *out
		if e.Pending != "" {
			dir = filepath.Join(*out, "pending")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "kcapture:", err)
				os.Exit(1)
			}
		}
		path := filepath.Join(dir, e.Name+".json")
		if old, err := kernel.ReadCapture(path); err == nil && !*force && (e.Random || kernel.Equivalent(old, c) == nil) {
			unchanged++
			continue
		}
		b, err := c.Marshal()
		if err == nil {
			if old, rerr := os.ReadFile(path); rerr == nil && bytes.Equal(old, b) {
				unchanged++
				continue
			}
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", e.Name, err)
			failed++
			continue
		}
		written++
	}
	if *prune && re == nil {
		files, _ := filepath.Glob(filepath.Join(*out, "*.json"))
		pending, _ := filepath.Glob(filepath.Join(*out, "pending", "*.json"))
		files = append(files, pending...)
		for _, f := range files {
			rel, _ := filepath.Rel(*out, f)
			if !names[filepath.ToSlash(rel)] {
				os.Remove(f)
				fmt.Println("removed", f)
			}
		}
	}
	fmt.Printf("kcapture: %d written, %d unchanged, %d failed", written, unchanged, failed)
	if *check {
		fmt.Printf(", %d deterministic across reloads", checked)
	}
	fmt.Println()
	if failed > 0 {
		os.Exit(1)
	}
}

// captureEntry loads and captures one program, trying again once on a
// load failure (rarely, a load right after an arena was freed fails).
func captureEntry(e corpus.Entry) (*kernel.Capture, error) {
	spec, err := e.Spec()
	if err != nil {
		return nil, err
	}
	c, err := capture(spec, e)
	if err != nil {
		c, err = capture(spec, e)
	}
	return c, err
}

// capture loads the program, captures its JIT output and, for a pure
// program, records its test runs.
func capture(spec *kernel.Spec, e corpus.Entry) (*kernel.Capture, error) {
	l, err := kernel.Load(spec)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	c, err := kernel.CaptureLoaded(l, e.Note)
	if err != nil {
		return nil, err
	}
	if e.Pure() {
		if err := c.RecordRuns(l, e.Inputs()); err != nil {
			return nil, err
		}
	}
	return c, nil
}
