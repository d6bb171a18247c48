package ir

import "fmt"

// DecodeOptions relax validation for programs that come from the kernel.
type DecodeOptions struct {
	// Xlated accepts the kernel-internal forms the verifier produces: the
	// PROBE_* modes, the tail-call opcode, BPF_REG_AX (r11), nospec, per-cpu
	// address moves and explicit zero-extensions.
	Xlated bool
}

// Decode reads a little-endian program and validates it strictly.
func Decode(b []byte) (*Program, error) { return DecodeWith(b, DecodeOptions{}) }

// DecodeWith is Decode with options.
func DecodeWith(b []byte, opts DecodeOptions) (*Program, error) {
	if len(b) == 0 {
		return nil, &Error{Index: -1, Reason: "program is empty"}
	}
	if len(b)%InsnSize != 0 {
		return nil, &Error{Index: len(b) / InsnSize, Reason: fmt.Sprintf("truncated: %d bytes is not a multiple of 8", len(b))}
	}
	n := len(b) / InsnSize
	if n > MaxInsns {
		return nil, &Error{Index: -1, Reason: fmt.Sprintf("program has %d instructions, more than the limit of %d", n, MaxInsns)}
	}
	insns := make([]Instruction, n)
	for i := range insns {
		insns[i] = decodeSlot(b[i*InsnSize:])
	}
	p := NewProgram("", insns)
	if err := Validate(p, opts); err != nil {
		return nil, err
	}
	return p, nil
}

// Encode returns the little-endian bytes of the program.
func Encode(p *Program) []byte {
	b := make([]byte, 0, len(p.Insns)*InsnSize)
	for _, ins := range p.Insns {
		b = ins.AppendBinary(b)
	}
	return b
}
