package passes

import (
	"testing"

	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/pipeline"
)

// FuzzPipeline decodes arbitrary bytes as a program and runs both
// pipelines over it with every switch on: an error is fine, a panic is not.
// The seeds are the hand-built programs and the arena corpus' first
// program. (go test ./passes -run XXX -fuzz FuzzPipeline to explore.)
func FuzzPipeline(f *testing.F) {
	for _, c := range handCases {
		p, err := assembleNoT(c.asm)
		if err == nil {
			f.Add(ir.Encode(p))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ir.Decode(b)
		if err != nil {
			return
		}
		// Mark some instructions as arena casts and global functions to
		// reach more of the passes.
		for i := range p.Insns {
			if p.Insns[i].Op == 0xbf && p.Insns[i].Imm&1 == 1 && p.Insns[i].Off == 0 {
				p.Insns[i].Off, p.Insns[i].Imm = 1, ir.CastToKernel
			}
		}
		if ir.Validate(p, ir.DecodeOptions{}) != nil {
			return
		}
		syms := map[string]uint64{CallBaseSymbol: 1 << 40, MayGotoSymbol: 1<<40 + 64, HelperSymbol(7): 1<<40 + 128}
		Default(Options{CtxIsMemory: true}).Run(p.Clone(), &pipeline.Context{ForceZext: true, Symbols: syms})
		JIT().Run(p.Clone(), &pipeline.Context{FromXlated: true})
	})
}
