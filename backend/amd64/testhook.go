package amd64

import (
	"os"
	"strconv"
)

// BPFC_TEST_PADDING_PASSES, when set to a number, replaces PADDING_PASSES
// (the pass from which shrinking jumps are padded). It exists only so that
// tests of the bpfc binary can provoke the kernel's "did not converge"
// failure with a crafted program (a large value switches padding off); the
// code produced with it set is not the kernel's.
func init() {
	if v, err := strconv.Atoi(os.Getenv("BPFC_TEST_PADDING_PASSES")); err == nil && v > 0 {
		paddingPasses = v
	}
}
