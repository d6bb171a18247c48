package amd64

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/bpfc/bpfc/ir"
)

// insnCode compiles [insns..., exit] and returns the bytes of instruction 0
// (both slots for a ld_imm64).
func insnCode(t *testing.T, tg Target, insns ...ir.Instruction) []byte {
	t.Helper()
	p := ir.NewProgram("t", append(insns, exit()))
	p.Funcs = []ir.Func{{Start: 0, End: len(p.Insns), StackDepth: 512}}
	im, err := Compile(p, tg, []uint64{0xffffffffc0000000})
	if err != nil {
		t.Fatalf("%v", err)
	}
	f := im.Funcs[0]
	end := f.Addrs[1]
	if insns[0].IsLdImm64() {
		end = f.Addrs[2]
	}
	return f.Code[f.Addrs[0]:end]
}

// disasm decodes b completely with x86asm, one instruction per "; ".
func disasm(t *testing.T, b []byte, pc uint64) string {
	t.Helper()
	var out []string
	for off := 0; off < len(b); {
		in, err := x86asm.Decode(b[off:], 64)
		if err != nil {
			t.Fatalf("%x: byte %d does not decode: %v", b, off, err)
		}
		out = append(out, x86asm.IntelSyntax(in, pc+uint64(off), nil))
		off += in.Len
	}
	return strings.Join(out, "; ")
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestEncodings checks single instructions: bytes derived by hand from the
// kernel's encoders and the x86 manual, and their Intel disassembly as
// x86asm prints it (sign-extended immediates negative, disp32 unsigned,
// jump targets absolute from offset 0).
func TestEncodings(t *testing.T) {
	tg := Linux618()
	noBMI2 := tg
	noBMI2.BMI2 = false
	arena := tg
	arena.UserVMStart = 0x7f0000000000
	cases := []struct {
		name  string
		tg    *Target
		insns []ir.Instruction
		hex   string
		asm   string
	}{
		{"add64 reg", nil, []ir.Instruction{a64x(ir.ALUAdd, 0, 1)}, "48 01 f8", "add rax, rdi"},
		{"add64 ereg both", nil, []ir.Instruction{a64x(ir.ALUAdd, 7, 9)}, "4d 01 fd", "add r13, r15"},
		{"add32 plain", nil, []ir.Instruction{a32x(ir.ALUAdd, 1, 2)}, "01 f7", "add edi, esi"},
		{"add32 ereg rex", nil, []ir.Instruction{a32x(ir.ALUAdd, 5, 1)}, "41 01 f8", "add r8d, edi"},
		{"add imm8 127", nil, []ir.Instruction{a64k(ir.ALUAdd, 1, 127)}, "48 83 c7 7f", "add rdi, 0x7f"},
		{"add imm32 128", nil, []ir.Instruction{a64k(ir.ALUAdd, 1, 128)}, "48 81 c7 80 00 00 00", "add rdi, 0x80"},
		{"add imm8 -128", nil, []ir.Instruction{a64k(ir.ALUAdd, 1, -128)}, "48 83 c7 80", "add rdi, -0x80"},
		{"add imm32 -129", nil, []ir.Instruction{a64k(ir.ALUAdd, 1, -129)}, "48 81 c7 7f ff ff ff", "add rdi, -0x81"},
		{"add rax short", nil, []ir.Instruction{a64k(ir.ALUAdd, 0, 1000)}, "48 05 e8 03 00 00", "add rax, 0x3e8"},
		{"sub eax short", nil, []ir.Instruction{a32k(ir.ALUSub, 0, 1000)}, "2d e8 03 00 00", "sub eax, 0x3e8"},
		{"xor r9 imm", nil, []ir.Instruction{a64k(ir.ALUXor, 9, 0x1000)}, "49 81 f7 00 10 00 00", "xor r15, 0x1000"},
		{"mov64 imm 0", nil, []ir.Instruction{mov64(0, 0)}, "31 c0", "xor eax, eax"},
		{"mov64 imm 0 ereg", nil, []ir.Instruction{mov64(5, 0)}, "45 31 c0", "xor r8d, r8d"},
		{"mov64 imm neg", nil, []ir.Instruction{mov64(1, -1)}, "48 c7 c7 ff ff ff ff", "mov rdi, -0x1"},
		{"mov32 imm neg", nil, []ir.Instruction{a32k(ir.ALUMov, 1, -1)}, "bf ff ff ff ff", "mov edi, -0x1"},
		{"mov64 imm pos ereg", nil, []ir.Instruction{mov64(9, 5)}, "41 bf 05 00 00 00", "mov r15d, 0x5"},
		{"mov64 reg", nil, []ir.Instruction{movr(6, 1)}, "48 89 fb", "mov rbx, rdi"},
		{"mov64 same reg: nothing", nil, []ir.Instruction{movr(6, 6)}, "", ""},
		{"mov32 same reg: zext", nil, []ir.Instruction{a32x(ir.ALUMov, 6, 6)}, "89 db", "mov ebx, ebx"},
		{"movsx64 8 from sil", nil, []ir.Instruction{alu(ir.ClassALU64, ir.ALUMov, ir.SourceX, 0, 2, 8, 0)}, "48 0f be c6", "movsx rax, sil"},
		{"movsx32 8 needs rex", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUMov, ir.SourceX, 0, 1, 8, 0)}, "40 0f be c7", "movsx eax, dil"},
		{"movsx32 16", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUMov, ir.SourceX, 0, 1, 16, 0)}, "0f bf c7", "movsx eax, di"},
		{"movsxd", nil, []ir.Instruction{alu(ir.ClassALU64, ir.ALUMov, ir.SourceX, 7, 5, 32, 0)}, "4d 63 e8", "movsxd r13, r8d"},
		{"neg64", nil, []ir.Instruction{a64k(ir.ALUNeg, 7, 0)}, "49 f7 dd", "neg r13"},
		{"mul imm8", nil, []ir.Instruction{a64k(ir.ALUMul, 2, 3)}, "48 6b f6 03", "imul rsi, rsi, 0x3"},
		{"mul imm32", nil, []ir.Instruction{a32k(ir.ALUMul, 5, 1000)}, "45 69 c0 e8 03 00 00", "imul r8d, r8d, 0x3e8"},
		{"mul reg", nil, []ir.Instruction{a64x(ir.ALUMul, 0, 7)}, "49 0f af c5", "imul rax, r13"},
		{"div64 dst rax src rdx", nil, []ir.Instruction{a64x(ir.ALUDiv, 0, 3)}, "52 49 89 d3 31 d2 49 f7 f3 5a", "push rdx; mov r11, rdx; xor edx, edx; div r11; pop rdx"},
		{"mod32 dst rdi imm", nil, []ir.Instruction{a32k(ir.ALUMod, 1, 7)}, "50 52 49 c7 c3 07 00 00 00 89 f8 31 d2 41 f7 f3 89 d7 5a 58",
			"push rax; push rdx; mov r11, 0x7; mov eax, edi; xor edx, edx; div r11d; mov edi, edx; pop rdx; pop rax"},
		{"sdiv64 dst rdx src rcx", nil, []ir.Instruction{alu(ir.ClassALU64, ir.ALUDiv, ir.SourceX, 3, 4, 1, 0)}, "50 48 89 d0 48 99 48 f7 f9 48 89 c2 58",
			"push rax; mov rax, rdx; cqo; idiv rcx; mov rdx, rax; pop rax"},
		{"shl imm 1", nil, []ir.Instruction{a64k(ir.ALULsh, 1, 1)}, "48 d1 e7", "shl rdi, 0x1"},
		{"sar32 imm", nil, []ir.Instruction{a32k(ir.ALUArsh, 9, 5)}, "41 c1 ff 05", "sar r15d, 0x5"},
		{"shlx", nil, []ir.Instruction{a64x(ir.ALULsh, 0, 1)}, "c4 e2 c1 f7 c0", "shlx rax, rax, rdi"},
		{"shrx ereg", nil, []ir.Instruction{a32x(ir.ALURsh, 7, 9)}, "c4 42 03 f7 ed", "shrx r13d, r13d, r15d"},
		{"sarx", nil, []ir.Instruction{a64x(ir.ALUArsh, 2, 5)}, "c4 e2 ba f7 f6", "sarx rsi, rsi, r8"},
		{"shift by rcx: no BMI2 form", nil, []ir.Instruction{a64x(ir.ALULsh, 0, 4)}, "48 d3 e0", "shl rax, cl"},
		{"shift no BMI2", &noBMI2, []ir.Instruction{a64x(ir.ALURsh, 0, 1)}, "51 48 89 f9 48 d3 e8 59", "push rcx; mov rcx, rdi; shr rax, cl; pop rcx"},
		{"shift no BMI2 dst rcx", &noBMI2, []ir.Instruction{a64x(ir.ALULsh, 4, 1)}, "49 89 cb 48 89 f9 49 d3 e3 4c 89 d9", "mov r11, rcx; mov rcx, rdi; shl r11, cl; mov rcx, r11"},
		{"be16", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUEnd, ir.EndToBE, 7, 0, 0, 16)}, "66 41 c1 cd 08 45 0f b7 ed", "ror r13w, 0x8; movzx r13d, r13w"},
		{"be32", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUEnd, ir.EndToBE, 1, 0, 0, 32)}, "0f cf", "bswap edi"},
		{"bswap64", nil, []ir.Instruction{alu(ir.ClassALU64, ir.ALUEnd, ir.EndToLE, 9, 0, 0, 64)}, "49 0f cf", "bswap r15"},
		{"le32", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUEnd, ir.EndToLE, 5, 0, 0, 32)}, "45 89 c0", "mov r8d, r8d"},
		{"le64: nothing", nil, []ir.Instruction{alu(ir.ClassALU, ir.ALUEnd, ir.EndToLE, 5, 0, 0, 64)}, "", ""},
		{"lddw u32", nil, lddw(0, 0xffffffff), "b8 ff ff ff ff", "mov eax, -0x1"},
		{"lddw s32", nil, lddw(0, 0xffffffff80000000), "48 c7 c0 00 00 00 80", "mov rax, -0x80000000"},
		{"lddw movabs", nil, lddw(7, 0x100000000), "49 bd 00 00 00 00 01 00 00 00", "mov r13, 0x100000000"},
		{"ldx b rbp disp8", nil, []ir.Instruction{ldx(ir.SizeB, 0, 10, -8)}, "48 0f b6 45 f8", "movzx rax, byte ptr [rbp-0x8]"},
		{"ldx w r13 base disp0", nil, []ir.Instruction{ldx(ir.SizeW, 1, 7, 0)}, "41 8b 7d 00", "mov edi, dword ptr [r13]"},
		{"ldx dw disp32", nil, []ir.Instruction{ldx(ir.SizeDW, 9, 1, -129)}, "4c 8b bf 7f ff ff ff", "mov r15, qword ptr [rdi+0xffffff7f]"},
		{"ldsx h", nil, []ir.Instruction{ldsx(ir.SizeH, 2, 10, -2)}, "48 0f bf 75 fe", "movsx rsi, word ptr [rbp-0x2]"},
		{"stx b from sil needs rex", nil, []ir.Instruction{stx(ir.SizeB, 10, 2, -1)}, "40 88 75 ff", "mov byte ptr [rbp-0x1], sil"},
		{"stx b from al", nil, []ir.Instruction{stx(ir.SizeB, 10, 0, -1)}, "88 45 ff", "mov byte ptr [rbp-0x1], al"},
		{"stx h ereg", nil, []ir.Instruction{stx(ir.SizeH, 7, 1, 4)}, "66 41 89 7d 04", "mov word ptr [r13+0x4], di"},
		{"st b", nil, []ir.Instruction{st(ir.SizeB, 10, -8, 0x7f)}, "c6 45 f8 7f", "mov byte ptr [rbp-0x8], 0x7f"},
		{"st dw", nil, []ir.Instruction{st(ir.SizeDW, 9, 1000, -5)}, "49 c7 87 e8 03 00 00 fb ff ff ff", "mov qword ptr [r15+0x3e8], -0x5"},
		{"lock add", nil, []ir.Instruction{atomic(ir.SizeDW, 10, 1, -8, atomicAdd)}, "f0 48 01 7d f8", "lock add qword ptr [rbp-0x8], rdi"},
		{"xadd32", nil, []ir.Instruction{atomic(ir.SizeW, 7, 0, 8, atomicAdd|atomicFetch)}, "f0 41 0f c1 45 08", "lock xadd dword ptr [r13+0x8], eax"},
		{"cmpxchg", nil, []ir.Instruction{atomic(ir.SizeDW, 1, 2, 0, atomicCmpXchg)}, "f0 48 0f b1 77 00", "lock cmpxchg qword ptr [rdi], rsi"},
		{"fetch or loop", nil, []ir.Instruction{atomic(ir.SizeDW, 1, 2, 0, atomicOr|atomicFetch)},
			"49 89 c2 48 8b 47 00 49 89 c3 49 09 f3 f0 4c 0f b1 5f 00 75 ee 48 89 c6 4c 89 d0",
			"mov r10, rax; mov rax, qword ptr [rdi]; mov r11, rax; or r11, rsi; lock cmpxchg qword ptr [rdi], r11; jnz 0x3; mov rsi, rax; mov rax, r10"},
		{"load acquire b", nil, []ir.Instruction{atomic(ir.SizeB, 3, 1, 2, atomicLoadAcq)}, "48 0f b6 57 02", "movzx rdx, byte ptr [rdi+0x2]"},
		{"arena ldx dw r12 index", nil, []ir.Instruction{{Op: uint8(ir.ClassLDX) | uint8(ir.SizeDW) | uint8(ir.ModeProbeMem32), Dst: 0, Src: 7, Off: 8}},
			"4b 8b 44 25 08", "mov rax, qword ptr [r13+r12+0x8]"},
		{"arena stx b disp32", nil, []ir.Instruction{{Op: uint8(ir.ClassSTX) | uint8(ir.SizeB) | uint8(ir.ModeProbeMem32), Dst: 1, Src: 2, Off: 1000}},
			"42 88 b4 27 e8 03 00 00", "mov byte ptr [rdi+r12+0x3e8], sil"},
		{"arena st h", nil, []ir.Instruction{{Op: uint8(ir.ClassST) | uint8(ir.SizeH) | uint8(ir.ModeProbeMem32), Dst: 0, Off: -2, Imm: 0x1234}},
			"66 42 c7 44 20 fe 34 12", "mov word ptr [rax+r12-0x2], 0x1234"},
		{"arena ldsx w", nil, []ir.Instruction{{Op: uint8(ir.ClassLDX) | uint8(ir.SizeW) | uint8(ir.ModeProbeMem32SX), Dst: 9, Src: 1, Off: 0}},
			"4e 63 7c 27 00", "movsxd r15, dword ptr [rdi+r12]"},
		{"arena atomic", nil, []ir.Instruction{{Op: uint8(ir.ClassSTX) | uint8(ir.SizeW) | uint8(ir.ModeProbeAtomic), Dst: 1, Src: 0, Off: 4, Imm: atomicXchg}},
			"f0 42 87 44 27 04", "lock xchg dword ptr [rdi+r12+0x4], eax"},
		{"cast to user rax", &arena, []ir.Instruction{castUser(0, 0)},
			"48 c1 e0 20 48 0d 00 7f 00 00 48 c1 c0 20 4d 31 db 85 c0 49 0f 44 c3",
			"shl rax, 0x20; or rax, 0x7f00; rol rax, 0x20; xor r11, r11; test eax, eax; cmovz rax, r11"},
		{"cast to user ereg", &arena, []ir.Instruction{castUser(7, 1)},
			"41 89 fd 49 c1 e5 20 49 81 cd 00 7f 00 00 49 c1 c5 20 4d 31 db 45 85 ed 4d 0f 44 eb",
			"mov r13d, edi; shl r13, 0x20; or r13, 0x7f00; rol r13, 0x20; xor r11, r11; test r13d, r13d; cmovz r13, r11"},
		{"nospec", nil, []ir.Instruction{{Op: ir.OpNospec}}, "0f ae e8", "lfence"},
		{"jset imm", nil, []ir.Instruction{jk(ir.ClassJMP, ir.JumpJSET, 1, 4, 0)}, "48 f7 c7 04 00 00 00 75 00", "test rdi, 0x4; jnz 0x9"},
		{"jeq imm 0: test", nil, []ir.Instruction{jk(ir.ClassJMP32, ir.JumpJEQ, 7, 0, 0)}, "45 85 ed 74 00", "test r13d, r13d; jz 0x5"},
		{"jsgt imm8", nil, []ir.Instruction{jk(ir.ClassJMP, ir.JumpJSGT, 0, -1, 0)}, "48 83 f8 ff 7f 00", "cmp rax, -0x1; jnle 0x6"},
		{"jlt reg32", nil, []ir.Instruction{jx(ir.ClassJMP32, ir.JumpJLT, 5, 1, 0)}, "41 39 f8 72 00", "cmp r8d, edi; jb 0x5"},
	}
	for _, c := range cases {
		tg := tg
		if c.tg != nil {
			tg = *c.tg
		}
		got := insnCode(t, tg, c.insns...)
		want := unhex(c.hex)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got % x, want % x (%s)", c.name, got, want, c.asm)
			continue
		}
		if len(got) == 0 {
			continue
		}
		if d := disasm(t, got, 0); d != c.asm {
			t.Errorf("%s: % x disassembles to %q, want %q", c.name, got, d, c.asm)
		}
	}
}
