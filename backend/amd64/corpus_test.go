package amd64_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/internal/kcompare"
	"github.com/bpfc/bpfc/internal/kernel"
)

// The corpus goldens: one capture per internal/corpus program, written by
// `go run ./internal/kernel/cmd/kcapture -out testdata/kernel`.
const corpusDir = "../../testdata/kernel"

var corpusTruth = flag.Bool("corpus-truth", false, "compile the corpus with the kernel's facts (arena, stack, saved registers) instead of the passes")

// TestCorpusKernelIdentical compiles every golden's JIT input through the
// JIT passes (passes.JIT, FromXlated) and the backend at the kernel's
// addresses, and requires the whole image byte-identical to the kernel's:
// no masks. On a difference it reports the first differing BPF instruction
// with both disassemblies.
func TestCorpusKernelIdentical(t *testing.T) {
	caps := readCorpus(t)
	same, failed, lines := 0, 0, 0
	var truth []string
	for _, c := range caps {
		res, err := kcompare.CompareCapture(c, *corpusTruth)
		if err != nil {
			failed++
			t.Errorf("%v", err)
			continue
		}
		if res.Prepared != nil && truth == nil {
			truth = res.Prepared.Truth
		}
		if res.Mismatch != nil {
			failed++
			t.Errorf("%v", res.Mismatch)
			continue
		}
		same++
		checkImageDecodes(t, c.Name, res.Image)
		lines += checkLines(t, c, res.Image)
	}
	t.Logf("%d/%d corpus programs byte-identical to the kernel (kernel facts used for: %v); %d BPF->x86 offsets agree with the kernel's line info", same, len(caps), truth, lines)
}

// checkLines compares the image's instruction offsets with the kernel's
// jited line info (the first record of a function reports the function's
// start, so it is skipped).
func checkLines(t *testing.T, c *kernel.Capture, im *amd64.Image) int {
	t.Helper()
	n := 0
	for _, l := range c.Lines {
		f := im.Funcs[l.Func]
		rel := l.Insn - f.Start
		if rel <= 0 || rel >= len(f.Addrs) {
			continue
		}
		if int(f.Addrs[rel]) != l.Off {
			t.Errorf("%s: instruction %d starts at %#x, the kernel's line info says %#x", c.Name, l.Insn, f.Addrs[rel], l.Off)
			return n
		}
		n++
	}
	return n
}

// TestCorpusLayoutPasses reports the layout passes of the jump-chain
// programs, which are byte-identical to the kernel's (so the fixpoint is
// the kernel's): chains of k jumps need about k+2 passes until padding
// starts at pass 15.
func TestCorpusLayoutPasses(t *testing.T) {
	var report []string
	for _, c := range readCorpus(t) {
		if !strings.HasPrefix(c.Name, "layout_chain_") {
			continue
		}
		res, err := kcompare.CompareCapture(c, false)
		if err != nil || res.Mismatch != nil {
			t.Errorf("%s: %v %v", c.Name, err, res.Mismatch)
			continue
		}
		report = append(report, fmt.Sprintf("%s=%d", strings.TrimPrefix(c.Name, "layout_chain_"), res.Image.Passes))
		var k int
		if _, err := fmt.Sscanf(c.Name, "layout_chain_%d", &k); err == nil && k >= 5 && k <= 13 && res.Image.Passes < k {
			t.Errorf("%s: %d passes, want at least %d", c.Name, res.Image.Passes, k)
		}
	}
	t.Logf("layout passes by chain length: %s", strings.Join(report, " "))
}

// TestCorpusPending compiles the goldens of testdata/kernel/pending: corpus
// programs bpfc does not reproduce yet (corpus.Entry.Pending says why). Their
// differences are logged, not failed; one that becomes identical is
// reported so that it can leave the pending set.
func TestCorpusPending(t *testing.T) {
	caps, err := kernel.ReadCaptures(corpusDir + "/pending")
	if err != nil {
		t.Skipf("no pending goldens: %v", err)
	}
	for _, c := range caps {
		res, err := kcompare.CompareCapture(c, false)
		switch {
		case err != nil:
			t.Logf("pending %s: %v", c.Name, err)
		case res.Mismatch != nil:
			t.Logf("pending %s still differs: %v", c.Name, strings.SplitN(res.Mismatch.Error(), "\n", 2)[0])
		default:
			t.Logf("pending %s is now byte-identical: drop its Pending reason in internal/corpus", c.Name)
		}
	}
}

// TestCorpusArenaInference checks the arena pass's inference on the
// xlated programs (where PROBE_MEM32 shows as MEM) against the accesses the
// kernel's code makes through r12.
func TestCorpusArenaInference(t *testing.T) {
	caps := readCorpus(t)
	n, accesses := 0, 0
	for _, c := range caps {
		pr, err := kcompare.Prepare(c, false)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if err := kcompare.CheckArena(c, pr.Program); err != nil {
			t.Errorf("%v", err)
			continue
		}
		n++
		accesses += len(c.ArenaInsns)
	}
	t.Logf("%d/%d programs: arena accesses inferred as the kernel did (%d arena accesses)", n, len(caps), accesses)
}

// TestCorpusTruthIdentical is the backend alone: the kernel's own facts
// about each program (arena accesses, stack depth, saved registers) instead
// of the passes.
func TestCorpusTruthIdentical(t *testing.T) {
	caps := readCorpus(t)
	same := 0
	for _, c := range caps {
		res, err := kcompare.CompareCapture(c, true)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if res.Mismatch != nil {
			t.Errorf("%v", res.Mismatch)
			continue
		}
		same++
	}
	t.Logf("%d/%d corpus programs byte-identical with the kernel's facts", same, len(caps))
}

// TestCorpusMismatchReport: a corrupted golden is reported at the right
// instruction with both disassemblies.
func TestCorpusMismatchReport(t *testing.T) {
	caps := readCorpus(t)
	var c *kernel.Capture
	for _, x := range caps {
		if x.Name == "alu64_add_k" {
			c = x
		}
	}
	if c == nil {
		t.Skip("alu64_add_k golden missing")
	}
	res, err := kcompare.CompareCapture(c, true)
	if err != nil || res.Mismatch != nil {
		t.Skipf("alu64_add_k does not compile identically yet: %v %v", err, res.Mismatch)
	}
	// Corrupt the imm8 of instruction 13, `r2 += 0` (the frame is 11
	// instructions, then `rN += 0` for r0, r1, r2...): `48 83 c6 00`.
	bad := *c
	bad.Jited = append([]byte(nil), c.Jited...)
	var off int = -1
	for _, l := range c.Lines {
		if l.Insn == 13 {
			off = l.Off
		}
	}
	if off < 0 {
		t.Fatal("no line info for instruction 13")
	}
	bad.Jited[off+3] ^= 0x40
	err = kcompare.Compare(&bad, res.Prepared.Program, res.Image)
	var m *kcompare.Mismatch
	if !errors.As(err, &m) {
		t.Fatalf("corrupted image compared equal: %v", err)
	}
	if m.Insn != 13 || m.Offset != off+3 || len(m.Kernel) == 0 || len(m.Ours) == 0 {
		t.Errorf("mismatch at instruction %d byte %#x, want instruction 13 byte %#x:\n%v", m.Insn, m.Offset, off+3, m)
	}
	if !strings.Contains(m.Error(), "instruction 13") {
		t.Errorf("report does not name the instruction: %v", m)
	}
}

var (
	corpusOnce sync.Once
	corpusCaps []*kernel.Capture
	corpusErr  error
)

// readCorpus reads the goldens once per test binary (tests do not modify
// them).
func readCorpus(t *testing.T) []*kernel.Capture {
	t.Helper()
	corpusOnce.Do(func() { corpusCaps, corpusErr = kernel.ReadCaptures(corpusDir) })
	caps, err := corpusCaps, corpusErr
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) == 0 {
		t.Skip("no corpus goldens in testdata/kernel")
	}
	return caps
}

// checkImageDecodes decodes every emitted instruction with x86asm: the
// instructions must tile each function exactly and every BPF instruction
// must start on an instruction boundary.
func checkImageDecodes(t *testing.T, name string, im *amd64.Image) {
	t.Helper()
	for k, f := range im.Funcs {
		starts := map[int]bool{}
		for pc := 0; pc < len(f.Code); {
			in, err := x86asm.Decode(f.Code[pc:], 64)
			if err != nil {
				t.Errorf("%s: function %d byte %#x does not decode: %v (% x)", name, k, pc, err, f.Code[pc:min(pc+16, len(f.Code))])
				return
			}
			starts[pc] = true
			pc += in.Len
		}
		for i, a := range f.Addrs {
			if int(a) < len(f.Code) && !starts[int(a)] {
				t.Errorf("%s: function %d: instruction %d starts at %#x, inside an x86 instruction", name, k, f.Start+i, a)
				return
			}
		}
	}
}

// TestCorpusLive (root only) reloads a sample of the corpus now and compares
// bpfc's output with the kernel's fresh capture through kcompare.Run.
func TestCorpusLive(t *testing.T) {
	if ok, why := kernel.Available(); !ok {
		t.Skip(why)
	}
	caps := readCorpus(t)
	n := 0
	for i, c := range caps {
		if i%25 != 0 {
			continue
		}
		spec, err := specOf(c)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		res, err := kcompare.Run(spec)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !bytes.Equal(res.Capture.Source, c.Source) {
			t.Errorf("%s: reloaded source differs", c.Name)
		}
		if res.Mismatch != nil {
			t.Errorf("live: %v", res.Mismatch)
			continue
		}
		n++
	}
	t.Logf("%d live programs byte-identical", n)
}

// specOf rebuilds a loadable spec from a golden's source program.
func specOf(c *kernel.Capture) (*kernel.Spec, error) {
	typ, err := kernel.ParseProgType(c.ProgType)
	if err != nil {
		return nil, err
	}
	p, err := kernel.SourceProgram(c)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return &kernel.Spec{Name: c.Name, Type: typ, Flags: c.ProgFlags &^ kernel.FlagSleepable, Program: p, Maps: c.Maps}, nil
}
