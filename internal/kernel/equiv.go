package kernel

import (
	"bytes"
	"fmt"
	"reflect"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
)

// Equivalent reports whether two captures of the same program agree in
// everything that does not depend on where the kernel put things: the
// xlated program up to map ids, the JIT input up to map and function
// addresses, function sizes, the offset map, the derived facts, and the
// machine code byte for byte except inside instructions that embed an
// address (call/jmp rel32 to kernel symbols, movabs of map or arena
// addresses, the cast-to-user `or` of user_vm_start>>32). It is the
// determinism check of the capture command: reloading a program must give
// an equivalent capture.
func Equivalent(a, b *Capture) error {
	switch {
	case a.Name != b.Name:
		return fmt.Errorf("names %q and %q", a.Name, b.Name)
	case a.ProgType != b.ProgType || a.ProgFlags != b.ProgFlags:
		return fmt.Errorf("program type/flags differ")
	case !bytes.Equal(a.Source, b.Source):
		return fmt.Errorf("source programs differ")
	case !reflect.DeepEqual(a.FuncLens, b.FuncLens):
		return fmt.Errorf("function lengths %v and %v", a.FuncLens, b.FuncLens)
	case !reflect.DeepEqual(a.StackDepths, b.StackDepths):
		return fmt.Errorf("stack depths %v and %v", a.StackDepths, b.StackDepths)
	case !reflect.DeepEqual(a.Pushes, b.Pushes):
		return fmt.Errorf("prologue pushes %q and %q", a.Pushes, b.Pushes)
	case !reflect.DeepEqual(a.ArenaInsns, b.ArenaInsns):
		return fmt.Errorf("arena instructions %v and %v", a.ArenaInsns, b.ArenaInsns)
	case !reflect.DeepEqual(a.ProbeMemInsns, b.ProbeMemInsns):
		return fmt.Errorf("PROBE_MEM instructions %v and %v", a.ProbeMemInsns, b.ProbeMemInsns)
	case !reflect.DeepEqual(a.Runs, b.Runs):
		return fmt.Errorf("test runs differ")
	case !reflect.DeepEqual(a.Lines, b.Lines):
		return fmt.Errorf("line info differs")
	case len(a.Xlated) != len(b.Xlated) || len(a.JITInput) != len(b.JITInput):
		return fmt.Errorf("xlated lengths %d and %d", len(a.Xlated), len(b.Xlated))
	case len(a.Jited) != len(b.Jited):
		return fmt.Errorf("jited lengths %d and %d", len(a.Jited), len(b.Jited))
	}
	// Xlated and JIT input, slot by slot; map ids and addresses may differ.
	for i := 0; i+8 <= len(a.Xlated); i += 8 {
		xa, xb := a.Xlated[i:i+8], b.Xlated[i:i+8]
		addrLoad := xa[0] == ir.OpLdImm64 && (xa[1]>>4 == uint8(ir.PseudoMapFD) || xa[1]>>4 == uint8(ir.PseudoMapValue) || xa[1]>>4 == uint8(ir.PseudoFunc))
		if addrLoad {
			if !bytes.Equal(xa[:4], xb[:4]) || !bytes.Equal(a.Xlated[i+8:i+16], b.Xlated[i+8:i+16]) {
				return fmt.Errorf("xlated instruction %d differs beyond its map id", i/8)
			}
			if !bytes.Equal(a.JITInput[i:i+4], b.JITInput[i:i+4]) {
				return fmt.Errorf("JIT input instruction %d differs", i/8)
			}
			i += 8
			continue
		}
		if !bytes.Equal(xa, xb) {
			return fmt.Errorf("xlated instruction %d differs: % x vs % x", i/8, xa, xb)
		}
		if !bytes.Equal(a.JITInput[i:i+8], b.JITInput[i:i+8]) {
			return fmt.Errorf("JIT input instruction %d differs", i/8)
		}
	}
	for f := range a.FuncLens {
		ca, cb := a.FuncCode(f), b.FuncCode(f)
		if bytes.Equal(ca, cb) {
			continue
		}
		da, err := Disassemble(ca)
		if err != nil {
			return err
		}
		db, err := Disassemble(cb)
		if err != nil {
			return err
		}
		if len(da) != len(db) {
			return fmt.Errorf("function %d: %d and %d instructions", f, len(da), len(db))
		}
		for k := range da {
			xa, xb := da[k], db[k]
			if bytes.Equal(xa.Code, xb.Code) {
				continue
			}
			if xa.Inst.Op != xb.Inst.Op || xa.Inst.Len != xb.Inst.Len || !addressBearing(xa.Inst) {
				return fmt.Errorf("function %d offset %#x: %v vs %v", f, xa.Off, xa.Inst, xb.Inst)
			}
		}
	}
	return nil
}

// addressBearing: instructions whose bytes legitimately depend on load
// addresses.
func addressBearing(in x86asm.Inst) bool {
	switch {
	case (in.Op == x86asm.CALL || in.Op == x86asm.JMP) && in.Len == 5:
		return true
	case in.Op == x86asm.MOV && in.Len == 10:
		return true // movabs of a map or arena address
	case in.Op == x86asm.MOV && in.Len == 7:
		if _, ok := in.Args[1].(x86asm.Imm); ok {
			return true // mov r64, simm32 of a function address (0xffffffffc...)
		}
	case in.Op == x86asm.OR:
		if _, ok := in.Args[1].(x86asm.Imm); ok {
			return true
		}
	}
	return false
}
