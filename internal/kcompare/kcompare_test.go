package kcompare

import (
	"errors"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
)

func golden(t *testing.T, name string) *kernel.Capture {
	t.Helper()
	c, err := kernel.ReadCapture("../../testdata/kernel/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompareIdentical(t *testing.T) {
	for _, name := range []string{"alu64_div_x", "arena_stx_b", "subprog_chain", "tailcall_indirect", "probe_mem_sizes", "layout_chain_20"} {
		c := golden(t, name)
		for _, truth := range []bool{false, true} {
			res, err := CompareCapture(c, truth)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res.Mismatch != nil {
				t.Errorf("%s (truth %v): %v", name, truth, res.Mismatch)
			}
		}
	}
}

func TestTarget(t *testing.T) {
	c := golden(t, "arena_ldx_w")
	tg := Target(c)
	if tg.CallBase != uint64(c.CallBase) || tg.KernVMStart != uint64(c.KernVMStart) || tg.UserVMStart != 0x100000000000 ||
		tg.ReturnThunk != uint64(c.ReturnThunk) || !tg.BMI2 {
		t.Errorf("target %+v from capture", tg)
	}
}

func TestMismatchLocatesInstruction(t *testing.T) {
	c := golden(t, "jmp_jeq_k")
	res, err := CompareCapture(c, false)
	if err != nil || res.Mismatch != nil {
		t.Fatalf("%v %v", err, res.Mismatch)
	}
	for _, l := range c.Lines[5:9] {
		bad := *c
		bad.Jited = append([]byte(nil), c.Jited...)
		bad.Jited[l.Off] ^= 0xff
		err := Compare(&bad, res.Prepared.Program, res.Image)
		var m *Mismatch
		if !errors.As(err, &m) {
			t.Fatalf("corruption at %#x not found: %v", l.Off, err)
		}
		if m.Insn != l.Insn || m.Offset != l.Off || len(m.Ours) == 0 || len(m.Kernel) == 0 {
			t.Errorf("corruption at instruction %d (%#x) reported at %d (%#x)", l.Insn, l.Off, m.Insn, m.Offset)
		}
		if !strings.Contains(m.Error(), "kernel:") || !strings.Contains(m.Error(), "bpfc:") {
			t.Errorf("report lacks disassemblies: %v", m)
		}
	}
	// The prologue.
	bad := *c
	bad.Jited = append([]byte(nil), c.Jited...)
	bad.Jited[9] ^= 1
	var m *Mismatch
	if err := Compare(&bad, res.Prepared.Program, res.Image); !errors.As(err, &m) || m.Insn != -1 || !strings.Contains(m.Error(), "prologue") {
		t.Errorf("prologue corruption: %v", err)
	}
	// A function count that differs.
	bad = *c
	bad.FuncLens = append(bad.FuncLens, 0)
	if err := Compare(&bad, res.Prepared.Program, res.Image); err == nil || !strings.Contains(err.Error(), "functions") {
		t.Errorf("function count: %v", err)
	}
}

func TestCheckArena(t *testing.T) {
	c := golden(t, "arena_ptr_arith")
	pr, err := Prepare(c, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckArena(c, pr.Program); err != nil {
		t.Fatal(err)
	}
	bad := *c
	bad.ArenaInsns = append([]int(nil), c.ArenaInsns[1:]...)
	if err := CheckArena(&bad, pr.Program); err == nil || !strings.Contains(err.Error(), "instruction") {
		t.Errorf("missing arena access not reported: %v", err)
	}
}

func TestPrepareBadCapture(t *testing.T) {
	c := golden(t, "subprog_2")
	bad := *c
	bad.StackDepths = bad.StackDepths[:1]
	bad.FuncLens = bad.FuncLens[:1]
	bad.Pushes = bad.Pushes[:1]
	if _, err := Prepare(&bad, true); err == nil {
		t.Error("capture with a missing function accepted")
	}
	bad = *c
	bad.JITInput = append([]byte(nil), c.JITInput...)
	bad.JITInput[1] = 0xcc // registers 12/12 do not exist
	if _, _, err := Compile(&bad, false); err == nil {
		t.Error("invalid JIT input compiled")
	}
}
