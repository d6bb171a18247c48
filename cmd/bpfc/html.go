package main

import (
	"bytes"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/pipeline"
)

// htmlSetup prepares the options for --html: the report needs the program
// after every pass, so every pass is snapshotted, while the dumps on stderr
// stay those --dump-after asked for. It returns the dump hook to use.
func (f *compileFlags) htmlSetup(o *compiler.Options, dumper func(*zap.Logger, pipeline.Snapshot, pipeline.Stat), inputs []*compiler.Input) (func(*zap.Logger, pipeline.Snapshot, pipeline.Stat), error) {
	if f.html == "" {
		return dumper, nil
	}
	if len(inputs) == 0 {
		return dumper, nil
	}
	// Every pass is snapshotted, so check the names here as the pipeline
	// would have.
	names := compiler.PipelineFor(inputs[0], f.fromXlated).Names()
	want := map[string]bool{}
	for _, d := range f.dumpAfter {
		if d != "all" && !slices.Contains(names, d) {
			return nil, fileErr(inputs[0].File, inputs[0].Name, fmt.Errorf("--dump-after: no pass %q in the pipeline (passes: %v)", d, names))
		}
		want[d] = true
	}
	o.DumpAfter = []string{"all"}
	return func(log *zap.Logger, s pipeline.Snapshot, st pipeline.Stat) {
		if want["all"] || want[s.Pass] {
			dumper(log, s, st)
		}
	}, nil
}

// writeHTML writes the --html report (atomically, as -o).
func (f *compileFlags) writeHTML(results []*compiler.Result) error {
	if f.html == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := compiler.HTMLReports(&buf, results); err != nil {
		return &compiler.Error{File: results[0].Input.File, Err: err}
	}
	return writeOutput(nil, f.html, buf.Bytes())
}
