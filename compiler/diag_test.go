package compiler

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/ir"
)

func TestErrorContext(t *testing.T) {
	// A raw program whose frame is too big: the stackdepth pass names
	// instruction 2.
	raw := ir.Encode(&ir.Program{Insns: []ir.Instruction{
		{Op: 0xb7, Dst: ir.R0, Imm: 1},
		{Op: 0x18, Dst: ir.R1, Imm: 5}, {}, // r1 = 5 ll (two slots)
		{Op: 0x7b, Dst: ir.R10, Src: ir.R1, Off: -520},
		{Op: 0xb7, Dst: ir.R2, Imm: 3},
		{Op: 0xb7, Dst: ir.R3, Imm: 4},
		{Op: ir.OpExit},
	}})
	ins, err := LoadBytes("big.bin", raw, LoadOptions{})
	require.NoError(t, err)
	_, err = Compile(ins[0], Options{})
	require.ErrorContains(t, err, "instruction 3: ")
	got := ErrorContext(err, 1)
	want := "" +
		"        1: (18) r1 = 0x5\n" +
		"  >     3: (7b) *(u64 *)(r10 -520) = r1\n" +
		"          ^ instruction 3: function big uses 520 bytes of stack, more than the kernel's limit of 512 (MAX_BPF_STACK)\n" +
		"        4: (b7) r2 = 3\n"
	require.Equal(t, want, got)
	// The radius counts instructions, not slots, and stops at the ends.
	require.Equal(t, 6+1, strings.Count(ErrorContext(err, 10), "\n")) // six instructions and the caret line

	// With line info: the C lines above the instructions, the one in force
	// at the first instruction shown included.
	objs, err := Load(filepath.Join(elfDir, "arena_globals.o"), LoadOptions{})
	require.NoError(t, err)
	in := *objs[0]
	in.Prog = in.Prog.Clone()
	in.Prog.Insns[14] = ir.Instruction{Op: 0x7b, Dst: ir.R10, Src: ir.R2, Off: -600}
	_, err = Compile(&in, Options{})
	require.ErrorContains(t, err, "arena_globals.o: arena_bump: pass stackdepth: instruction 14: ")
	got = ErrorContext(err, 2)
	require.Equal(t, ""+
		"   ; arena_globals.c:22: slots[counter & 15] += 5;\n"+
		"       12: (0f) r1 += r2\n"+
		"       13: (61) r2 = *(u32 *)(r1 +0)\n"+
		"  >    14: (7b) *(u64 *)(r10 -600) = r2\n"+
		"          ^ instruction 14: function arena_bump uses 600 bytes of stack, more than the kernel's limit of 512 (MAX_BPF_STACK)\n"+
		"       15: (63) *(u32 *)(r1 +0) = r2\n"+
		"   ; arena_globals.c:23: return counter;\n"+
		"       16: (95) exit\n", got)

	// Errors that name no instruction of a program have no context.
	_, err = Load("no/such/file.o", LoadOptions{})
	require.Error(t, err)
	require.Empty(t, ErrorContext(err, 3))
	_, err = LoadBytes("short.bin", raw[:12], LoadOptions{})
	require.Error(t, err)
	require.Empty(t, ErrorContext(err, 3))
	require.Empty(t, ErrorContext(errors.New("plain"), 3))

	// Assembly that does not parse: the text around the line.
	_, err = LoadBytes("bad.data", []byte("-- asm\nmov %r0, 1\nfrob %r1\nexit\n-- result\n0x1\n"), LoadOptions{})
	require.ErrorContains(t, err, "bad.data: line 3: ")
	require.Equal(t, ""+
		"        2 | mov %r0, 1\n"+
		"  >     3 | frob %r1\n"+
		"          ^ line 3: unknown mnemonic \"frob\"\n"+
		"        4 | exit\n", ErrorContext(err, 1))

	// Raw input that does not decode: the slots in hex.
	bad := ir.Encode(&ir.Program{Insns: []ir.Instruction{{Op: 0xb7, Dst: ir.R0, Imm: 1}, {Op: 0xb7}, {Op: ir.OpExit}}})
	bad[8] = 0xff
	_, err = LoadBytes("bad.bin", bad, LoadOptions{})
	require.ErrorContains(t, err, "bad.bin: instruction 1: unknown opcode 0xff")
	require.Equal(t, ""+
		"        0: b7 00 00 00 01 00 00 00  (b7) r0 = 1\n"+
		"  >     1: ff 00 00 00 00 00 00 00  \n"+
		"          ^ instruction 1: unknown opcode 0xff\n"+
		"        2: 95 00 00 00 00 00 00 00  (95) exit\n", ErrorContext(err, 2))
}
