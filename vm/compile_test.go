package vm

import (
	"testing"

	"github.com/bpfc/bpfc/backend/amd64"
)

func TestHostTarget(t *testing.T) {
	want := amd64.Host()
	got := hostTarget()
	want.CallBase, got.CallBase = 0, 0
	want.IndirectThunkRCX, got.IndirectThunkRCX = 0, 0
	// tail-call layout: unused by the vm
	want.ArrayMaxEntriesOff, want.ArrayPtrsOff, want.ProgBPFFuncOff, want.ThisCPUOff = 0, 0, 0, 0
	if got != want {
		t.Errorf("hostTarget() = %+v\namd64.Host() = %+v", got, want)
	}
}
