package amd64

import (
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// FuzzCompile: any bytes that decode as an xlated program compile or give
// an error, never a panic; what compiles decodes as x86 and its layout
// agrees with the written code.
func FuzzCompile(f *testing.F) {
	if caps, err := kernel.ReadCaptures(goldenDir); err == nil {
		for _, c := range caps {
			if len(c.JITInput) <= 8*64 {
				f.Add([]byte(c.JITInput))
			}
		}
	}
	f.Add(ir.Encode(chain("c", 3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ir.DecodeWith(b, ir.DecodeOptions{Xlated: true})
		if err != nil {
			return
		}
		im, err := Compile(p, Linux618(), nil)
		if err != nil {
			return
		}
		checkDecodes(t, "fuzz", im)
	})
}
