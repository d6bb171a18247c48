package ir

import "fmt"

// Register is a BPF register number, R0..R10.
type Register uint8

const (
	R0 Register = iota
	R1
	R2
	R3
	R4
	R5
	R6
	R7
	R8
	R9
	R10
	// RAX is the kernel's internal scratch register BPF_REG_AX (r11), used by
	// constant blinding and verifier rewrites such as may_goto expansion.
	RAX
)

// RFP is the read-only frame pointer.
const RFP = R10

// MaxRegister is the highest register a program may name (the kernel's
// internal AX register is allowed only where the verifier inserts it).
const MaxRegister = R10

func (r Register) String() string {
	if r == RAX {
		return "r11"
	}
	return fmt.Sprintf("r%d", uint8(r))
}
