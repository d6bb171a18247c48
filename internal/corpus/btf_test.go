package corpus

import (
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfc/bpfc/internal/kernel"
)

// TestTaskStructOffsets checks the hard-coded task_struct offsets against
// this machine's kernel BTF (skipped where it is not readable).
func TestTaskStructOffsets(t *testing.T) {
	if c, err := kernel.ReadCapture(goldenDir + "/probe_mem_sizes.json"); err != nil || c.Kernel != kernel.Release() {
		t.Skipf("the probe_mem goldens are not from this kernel (%s)", kernel.Release())
	}
	s, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("kernel BTF: %v", err)
	}
	var ts *btf.Struct
	if err := s.TypeByName("task_struct", &ts); err != nil {
		t.Skipf("task_struct: %v", err)
	}
	got := map[string]int16{}
	for _, m := range ts.Members {
		got[m.Name] = int16(m.Offset.Bytes())
	}
	for name, off := range taskOff {
		if got[name] != off {
			t.Errorf("task_struct.%s at %d, corpus says %d (another kernel: the probe_mem programs need new offsets)", name, got[name], off)
		}
	}
}
