package compiler

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/backend/amd64"
)

// TestListingFunctions: a program with bpf-to-bpf calls lists every
// function under its own label, each with a prologue, the BPF
// instructions of that function only, and the x86 of the calls.
func TestListingFunctions(t *testing.T) {
	ins, err := Load(filepath.Join(elfDir, "calls.o"), LoadOptions{Prog: "caller_two"})
	require.NoError(t, err)
	r, err := Compile(ins[0], Options{Target: amd64.Host(), ExecBase: []uint64{0x10000}})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, Listing(&b, r))
	out := b.String()
	labels := regexp.MustCompile(`(?m)^(\w+): ; exec (0x[0-9a-f]+), (\d+) bytes`).FindAllStringSubmatch(out, -1)
	require.Len(t, labels, len(r.Image.Funcs))
	want := []string{"caller_two", "square_sum", "mix"}
	for k, l := range labels {
		require.Equal(t, want[k], l[1])
		require.Equal(t, r.Image.Funcs[k].ExecAddr, mustHex(t, l[2]))
	}
	require.Equal(t, len(r.Image.Funcs), strings.Count(out, "  ; prologue\n"))
	// Each function's block holds exactly its own BPF instructions.
	blocks := regexp.MustCompile(`(?m)^\w+: ; exec `).Split(out, -1)[1:]
	for k, f := range r.Image.Funcs {
		idx := regexp.MustCompile(`(?m)^ *(\d+): \(`).FindAllStringSubmatch(blocks[k], -1)
		require.NotEmpty(t, idx)
		require.Equal(t, strconv.Itoa(f.Start), idx[0][1], "function %d starts at its first slot", k)
		last := f.Start + len(f.Addrs) - 2
		require.LessOrEqual(t, atoiT(t, idx[len(idx)-1][1]), last)
	}
	// The bpf-to-bpf calls are x86 calls to the callees' exec addresses.
	require.Regexp(t, `call 0x100[0-9a-f]{2}\n`, out)
	require.Contains(t, out, "call "+hexT(r.Image.Funcs[1].ExecAddr)+"\n")
}

func mustHex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	require.NoError(t, err)
	return v
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	v, err := strconv.Atoi(s)
	require.NoError(t, err)
	return v
}

func hexT(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }
