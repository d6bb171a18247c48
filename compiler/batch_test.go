package compiler

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/bpfc/bpfc/internal/gen"
	"github.com/bpfc/bpfc/ir"
)

// batchInputs makes n raw inputs of different sizes (one invalid when bad
// >= 0: a jump out of the program).
func batchInputs(t testing.TB, n, size, bad int) []*Input {
	var ins []*Input
	for k := 0; k < n; k++ {
		p := gen.Straight(size + 37*k)
		if k == bad {
			p.Insns[1] = ir.Instruction{Op: ir.OpJA, Off: int16(p.Len())}
		}
		raw := ir.Encode(p)
		in := &Input{File: fmt.Sprintf("p%d.bin", k), Kind: KindRaw, Name: fmt.Sprintf("p%d", k)}
		if k == bad {
			in.Prog = p // not validated: the passes report it
		} else {
			got, err := LoadBytes(in.File, raw, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			in = got[0]
		}
		ins = append(ins, in)
	}
	return ins
}

// TestCompileBatch: the batch gives, input by input, the same images and
// errors as Compile one after the other, whatever the number of workers.
func TestCompileBatch(t *testing.T) {
	ins := batchInputs(t, 24, 500, 7)
	var want [][]byte
	var wantErr []string
	for _, in := range ins {
		r, err := Compile(in, Options{})
		if err != nil {
			want = append(want, nil)
			wantErr = append(wantErr, err.Error())
			continue
		}
		want = append(want, r.Image.Code())
		wantErr = append(wantErr, "")
	}
	if wantErr[7] == "" {
		t.Fatal("input 7 should fail")
	}
	for _, workers := range []int{0, 1, 2, 5, 100} {
		res, errs := CompileBatch(ins, Options{}, workers)
		if len(res) != len(ins) || len(errs) != len(ins) {
			t.Fatalf("workers %d: %d results, %d errors for %d inputs", workers, len(res), len(errs), len(ins))
		}
		for i := range ins {
			if wantErr[i] != "" {
				if errs[i] == nil || errs[i].Error() != wantErr[i] || res[i] != nil {
					t.Fatalf("workers %d, input %d: error %v, want %q", workers, i, errs[i], wantErr[i])
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("workers %d, input %d: %v", workers, i, errs[i])
			}
			if res[i].Input != ins[i] || !bytes.Equal(res[i].Image.Code(), want[i]) {
				t.Fatalf("workers %d, input %d: image differs from Compile's", workers, i)
			}
		}
	}
	if res, errs := CompileBatch(nil, Options{}, 0); len(res) != 0 || len(errs) != 0 {
		t.Fatal("empty batch")
	}
}
