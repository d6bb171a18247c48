package main

import (
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// globals holds the root flags and the process's streams.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	logLevel, logFormat string
	log                 *zap.Logger
	// minInfo: a dump was requested, so info-level entries (the dumps) must
	// pass even when --log-level is warn or error.
	minInfo bool
}

// setupLogger builds the zap logger: console or JSON encoding to stderr.
func (g *globals) setupLogger() error {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(g.logLevel))); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	if g.minInfo && lvl > zapcore.InfoLevel {
		lvl = zapcore.InfoLevel
	}
	var enc zapcore.Encoder
	switch g.logFormat {
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.TimeKey = "" // deterministic, diff-friendly logs
		enc = zapcore.NewConsoleEncoder(cfg)
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	default:
		return usagef("--log-format %q: want console or json", g.logFormat)
	}
	g.log = zap.New(zapcore.NewCore(enc, zapcore.AddSync(g.stderr), lvl))
	return nil
}

// dumper returns the pipeline dump hook: with JSON logs the pipeline's own
// structured dump; with console logs a readable block (one instruction a
// line, changed ones marked '*') after the log line.
func (g *globals) dumper() func(*zap.Logger, pipeline.Snapshot, pipeline.Stat) {
	if g.logFormat == "json" {
		return pipeline.LogDump
	}
	return func(log *zap.Logger, s pipeline.Snapshot, st pipeline.Stat) {
		log.Info("dump", zap.String("pass", s.Pass), zap.Duration("duration", st.Duration),
			zap.Int("insns", s.Program.Len()), zap.Int("changed", st.Changed))
		var b strings.Builder
		fmt.Fprintf(&b, "--- after pass %s (%d instructions, %d changed) ---\n", s.Pass, s.Program.Len(), st.Changed)
		po := compiler.PrintOptions(s.Program)
		for i := 0; i < s.Program.Len(); i++ {
			mark := " "
			if s.Changed != nil && i < len(s.Changed) && s.Changed[i] {
				mark = "*"
			}
			fmt.Fprintf(&b, "%s %4d: %s%s\n", mark, i, s.Program.KernelText(i, po), auxNote(s.Program.Aux[i]))
			if s.Program.Insns[i].IsLdImm64() {
				i++
			}
		}
		io.WriteString(g.stderr, b.String())
	}
}

// auxNote shows the aux data a pass may change without changing the
// instruction's text (so that a '*' line always shows why).
func auxNote(a ir.Aux) string {
	var notes []string
	if a.ZextDst {
		notes = append(notes, "zext_dst")
	}
	if a.PtrType != ir.PtrUnknown {
		notes = append(notes, "ptr="+a.PtrType.String())
	}
	if a.OrigIndex < 0 {
		notes = append(notes, "inserted")
	}
	if len(notes) == 0 {
		return ""
	}
	return "  ; " + strings.Join(notes, " ")
}
