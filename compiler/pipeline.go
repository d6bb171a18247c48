package compiler

import (
	"github.com/bpfc/bpfc/pipeline"
	// The passes register themselves in pipeline.Default.
	_ "github.com/bpfc/bpfc/passes"
)

// defaultOrder is the order of the verifier's work the passes package
// reproduces; passes not registered (yet) are left out.
var defaultOrder = []string{"zext-mark", "arena", "fixups", "zext", "stackdepth", "regusage"}

// xlatedOrder is what the JIT still needs from an xlated program.
var xlatedOrder = []string{"arena", "stackdepth", "regusage"}

// DefaultPipeline returns the pipeline Compile uses: for an original
// program the verifier's rewrites then the JIT's analyses; for an xlated
// program (fromXlated) only the analyses the JIT needs.
func DefaultPipeline(fromXlated bool) *pipeline.Pipeline {
	order := defaultOrder
	if fromXlated {
		order = xlatedOrder
	}
	pl := &pipeline.Pipeline{}
	for _, name := range order {
		if p, err := pipeline.Default.New(name); err == nil {
			pl.Append(p)
		}
	}
	return pl
}
