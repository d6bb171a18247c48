package kernel

import (
	"testing"
)

// FuzzDerive: deriving the JIT input from damaged kernel output returns an
// error or a result, never a panic.
func FuzzDerive(f *testing.F) {
	var seeds []*Capture
	for _, name := range []string{"helper_map_hash", "arena_ptr_arith", "tailcall_subprog", "probe_mem_sizes", "callback_for_each"} {
		c, err := ReadCapture(goldenDir + "/" + name + ".json")
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, c)
	}
	for i := range seeds {
		f.Add(uint8(i), uint16(40), []byte{0x01}, false)
		f.Add(uint8(i), uint16(3), []byte{0xff, 0x00, 0x12}, true)
	}
	f.Fuzz(func(t *testing.T, which uint8, at uint16, x []byte, xlated bool) {
		c := *seeds[int(which)%len(seeds)]
		buf := append([]byte(nil), c.Jited...)
		if xlated {
			buf = append([]byte(nil), c.Xlated...)
		}
		for k, b := range x {
			buf[(int(at)+k)%len(buf)] ^= b
		}
		if xlated {
			c.Xlated = buf
		} else {
			c.Jited = buf
		}
		_ = c.derive()
	})
}
