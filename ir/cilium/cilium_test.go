package cilium_test

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/stretchr/testify/require"

	"github.com/bpfc/bpfc/backend/amd64"
	"github.com/bpfc/bpfc/compiler"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/cilium"
	"github.com/bpfc/bpfc/ir/elf"
)

const elfDir = "../../testdata/elf"

// dslProgram uses what cilium's encoder handles specially: sdiv/smod and
// movsx (extended opcodes), addr_space_cast (an offset it drops), a
// bpf-to-bpf call by label, a map load by reference, atomics.
func dslProgram() asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("counts").WithSymbol("entry"),
		{OpCode: asm.OpCode(asm.ALU64Class).SetALUOp(asm.Mov).SetSource(asm.RegSource), Dst: asm.R2, Src: asm.R1, Offset: 1, Constant: 1}, // r2 = addr_space_cast(r1, 0, 1)
		asm.Mov.Imm(asm.R3, -7),
		asm.SDiv.Imm(asm.R3, 2),
		asm.SMod.Imm32(asm.R3, 3),
		asm.MovSX8.Reg(asm.R4, asm.R3),
		asm.MovSX16.Reg32(asm.R5, asm.R3),
		asm.StoreXAdd(asm.R10, asm.R3, asm.DWord),
		asm.Call.Label("helper_fn"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("helper_fn"),
		asm.Return(),
	}
}

func TestFromInstructionsKeepsEncodings(t *testing.T) {
	insns := dslProgram()
	p, err := cilium.FromInstructions(insns)
	require.NoError(t, err)
	require.Equal(t, "entry", p.Name)
	require.Equal(t, 13, p.Len()) // 12 instructions, one ld_imm64
	cases := []struct {
		slot int
		want ir.Instruction
		text string
	}{
		{0, ir.Instruction{Op: 0x18, Dst: ir.R1, Src: ir.PseudoMapFD}, ""},
		{2, ir.Instruction{Op: 0xbf, Dst: ir.R2, Src: ir.R1, Off: 1, Imm: 1}, "r2 = addr_space_cast(r1, 0, 1)"},
		{4, ir.Instruction{Op: 0x37, Dst: ir.R3, Off: 1, Imm: 2}, "r3 s/= 2"},
		{5, ir.Instruction{Op: 0x94, Dst: ir.R3, Off: 1, Imm: 3}, "w3 s%= 3"},
		{6, ir.Instruction{Op: 0xbf, Dst: ir.R4, Src: ir.R3, Off: 8}, "r4 = (s8)r3"},
		{7, ir.Instruction{Op: 0xbc, Dst: ir.R5, Src: ir.R3, Off: 16}, "w5 = (s16)w3"},
		{8, ir.Instruction{Op: 0xdb, Dst: ir.R10, Src: ir.R3, Imm: 0}, ""},
		{9, ir.Instruction{Op: 0x85, Src: ir.CallLocal, Imm: 1}, ""},
	}
	for _, c := range cases {
		require.Equal(t, c.want, p.Insns[c.slot], "slot %d", c.slot)
		if c.text != "" {
			require.Contains(t, p.Format(c.slot), c.text)
		}
	}
	require.Equal(t, ir.Aux{OrigIndex: 0, Symbol: "counts", SymbolKind: ir.SymMap}, p.Aux[0])
	require.Equal(t, "helper_fn", p.Aux[9].Symbol)
	require.Equal(t, ir.SymFunc, p.Aux[9].SymbolKind)

	// The reason for the conversion: cilium's own encoding loses the cast.
	var buf bytes.Buffer
	require.NoError(t, insns.Marshal(&buf, binary.LittleEndian))
	require.Equal(t, []byte{0, 0}, buf.Bytes()[2*ir.InsnSize+2:2*ir.InsnSize+4], "cilium's Marshal keeps the offset now")
	_, err = ir.Decode(buf.Bytes())
	require.ErrorContains(t, err, "instruction 2: ") // a mov with an imm
}

func TestRoundTrip(t *testing.T) {
	p, err := cilium.FromInstructions(dslProgram())
	require.NoError(t, err)
	back, err := cilium.ToInstructions(p)
	require.NoError(t, err)
	require.Equal(t, "entry", back[0].Symbol())
	require.Equal(t, "counts", back[0].Reference())
	require.Equal(t, "helper_fn", back[8].Reference())
	require.Equal(t, "helper_fn", back[10].Symbol())
	require.Equal(t, int16(1), back[1].Offset)
	p2, err := cilium.FromInstructions(back)
	require.NoError(t, err)
	require.Equal(t, p.Insns, p2.Insns)
	require.Equal(t, p.Aux, p2.Aux)

	// kfunc names and C lines survive the round trip.
	k := ir.NewProgram("kf", []ir.Instruction{{Op: ir.OpCall, Src: ir.CallKfunc, Imm: 1234}, {Op: ir.OpExit}})
	k.Aux[0].Symbol, k.Aux[0].SymbolKind = "bpf_arena_alloc_pages", ir.SymKfunc
	k.Aux[0].Line = &ir.SourceLine{File: "a.c", Line: 7, Text: "p = bpf_arena_alloc_pages(...);"}
	kb, err := cilium.ToInstructions(k)
	require.NoError(t, err)
	require.Equal(t, "bpf_arena_alloc_pages", kb[0].Reference())
	k2, err := cilium.FromInstructions(kb)
	require.NoError(t, err)
	require.Equal(t, k.Insns, k2.Insns)
	require.Equal(t, k.Aux, k2.Aux)

	// Kernel-internal forms have no cilium encoding.
	q := p.Clone()
	q.Insns[8].Op = 0xdb&^0xe0 | uint8(ir.ModeProbeAtomic)
	_, err = cilium.ToInstructions(q)
	require.ErrorContains(t, err, "instruction 8: ")
	q = p.Clone()
	q.Insns[3].Dst = ir.RAX
	_, err = cilium.ToInstructions(q)
	require.ErrorContains(t, err, "instruction 3: ")
}

// TestELFLoaders reads the test objects with cilium/ebpf's ELF loader and
// with bpfc's: function by function (the loaders order subprograms
// differently), the converted programs have the same instructions, the
// same map and callee symbols, and the same C lines.
func TestELFLoaders(t *testing.T) {
	for _, obj := range []string{"alu.o", "calls.o", "maps.o"} {
		t.Run(obj, func(t *testing.T) {
			spec, err := ebpf.LoadCollectionSpec(filepath.Join(elfDir, obj))
			require.NoError(t, err)
			ours, err := elf.Load(filepath.Join(elfDir, obj))
			require.NoError(t, err)
			require.NotEmpty(t, ours.Programs)
			for _, op := range ours.Programs {
				ps := spec.Programs[op.Name]
				require.NotNil(t, ps, op.Name)
				p, err := cilium.FromInstructions(ps.Instructions)
				require.NoError(t, err)
				require.Equal(t, op.Name, p.Name)
				require.Equal(t, op.Prog.Len(), p.Len(), op.Name)
				// Function starts by name in both.
				theirs := map[string]int{}
				slot := 0
				for _, ins := range ps.Instructions {
					if s := ins.Symbol(); s != "" {
						theirs[s] = slot
					}
					slot += int(ins.Width())
				}
				require.Equal(t, len(op.Funcs), len(theirs), op.Name)
				lines := 0
				for start, name := range op.Funcs {
					cs, ok := theirs[name]
					require.True(t, ok, "%s: no function %s in cilium's program", op.Name, name)
					for k := 0; start+k < op.Prog.Len(); k++ {
						i, j := start+k, cs+k
						if k > 0 && op.Funcs[i] != "" {
							break // next function
						}
						a, b := op.Prog.Insns[i], p.Insns[j]
						if i > 0 && op.Prog.Insns[i-1].IsLdImm64() || a.IsLdImm64() || a.IsKfuncCall() || a.IsPseudoCall() {
							a.Imm, b.Imm = 0, 0 // relocated immediates, callee positions
						}
						require.Equal(t, a, b, "%s: %s+%d", op.Name, name, k)
						oa, ca := op.Prog.Aux[i], p.Aux[j]
						if oa.SymbolKind == ir.SymMap || oa.SymbolKind == ir.SymFunc {
							require.Equal(t, oa.Symbol, ca.Symbol, "%s: %s+%d", op.Name, name, k)
						}
						if oa.Line != nil && ca.Line != nil {
							require.Equal(t, oa.Line.Line, ca.Line.Line, "%s: %s+%d", op.Name, name, k)
							lines++
						}
					}
				}
				require.Positive(t, lines, "no line info from cilium's loader")
			}
		})
	}
	// cilium/ebpf v0.22 does not load arena globals (__arena variables).
	_, err := ebpf.LoadCollectionSpec(filepath.Join(elfDir, "arena_globals.o"))
	require.ErrorContains(t, err, "not supported", "cilium/ebpf loads arena globals now: add the object above")
}

// TestCompileSameCode: a program read by cilium/ebpf's ELF loader and
// converted compiles to the same machine code as the one bpfc's loader
// reads (programs without subprograms, which the loaders order
// differently).
func TestCompileSameCode(t *testing.T) {
	file := filepath.Join(elfDir, "alu.o")
	spec, err := ebpf.LoadCollectionSpec(file)
	require.NoError(t, err)
	ours, err := compiler.Load(file, compiler.LoadOptions{})
	require.NoError(t, err)
	require.Len(t, ours, 2)
	tgt := amd64.Host()
	for _, in := range ours {
		p, err := cilium.FromInstructions(spec.Programs[in.Name].Instructions)
		require.NoError(t, err)
		want, err := compiler.Compile(in, compiler.Options{Target: tgt, ExecBase: []uint64{0x10000}})
		require.NoError(t, err)
		got, err := compiler.Compile(&compiler.Input{File: file, Name: in.Name, Prog: p}, compiler.Options{Target: tgt, ExecBase: []uint64{0x10000}})
		require.NoError(t, err)
		require.Equal(t, want.Image.Code(), got.Image.Code(), in.Name)
		require.NotEmpty(t, got.Image.Code())
	}
}
