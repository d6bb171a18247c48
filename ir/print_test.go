package ir_test

import (
	"strings"
	"testing"

	"github.com/bpfc/bpfc/ir"
)

// TestFormat covers the printer's forms one by one, including those the
// live-kernel goldens cannot show (kernel-internal opcodes, hooks).
func TestFormat(t *testing.T) {
	ld := func(src ir.Register, lo, hi int32) []ir.Instruction {
		return []ir.Instruction{{Op: ir.OpLdImm64, Dst: 1, Src: src, Imm: lo}, {Imm: hi}}
	}
	tests := []struct {
		insns []ir.Instruction
		opts  *ir.PrintOptions
		want  string // KernelText of slot 0
	}{
		{[]ir.Instruction{I(0xb7, 0, 0, 0, -1)}, nil, "(b7) r0 = -1"},
		{[]ir.Instruction{I(0x04, 0, 0, 0, 5)}, nil, "(04) w0 += 5"},
		{[]ir.Instruction{I(0x0c, 0, 1, 0, 0)}, nil, "(0c) w0 += w1"},
		{[]ir.Instruction{I(0xc7, 3, 0, 0, 2)}, nil, "(c7) r3 s>>= 2"},
		{[]ir.Instruction{I(0x3f, 1, 2, 1, 0)}, nil, "(3f) r1 s/= r2"},
		{[]ir.Instruction{I(0x94, 1, 0, 1, 7)}, nil, "(94) w1 s%= 7"},
		{[]ir.Instruction{I(0x87, 4, 0, 0, 0)}, nil, "(87) r4 = -r4"},
		{[]ir.Instruction{I(0x84, 4, 0, 0, 0)}, nil, "(84) w4 = -w4"},
		{[]ir.Instruction{I(0xdc, 2, 0, 0, 16)}, nil, "(dc) r2 = be16 r2"},
		{[]ir.Instruction{I(0xd4, 2, 0, 0, 64)}, nil, "(d4) r2 = le64 r2"},
		{[]ir.Instruction{I(0xd7, 2, 0, 0, 32)}, nil, "(d7) r2 = bswap32 r2"},
		{[]ir.Instruction{I(0xbf, 0, 1, 8, 0)}, nil, "(bf) r0 = (s8)r1"},
		{[]ir.Instruction{I(0xbc, 0, 1, 16, 0)}, nil, "(bc) w0 = (s16)w1"},
		{[]ir.Instruction{I(0xbf, 0, 1, 32, 0)}, nil, "(bf) r0 = (s32)r1"},
		{[]ir.Instruction{I(0xbf, 1, 1, 1, ir.CastToUser)}, nil, "(bf) r1 = addr_space_cast(r1, 1, 0)"},
		{[]ir.Instruction{I(0xbf, 1, 2, 1, ir.CastToKernel)}, nil, "(bf) r1 = addr_space_cast(r2, 0, 1)"},
		{[]ir.Instruction{I(0xbf, 0, 0, -1, 0)}, nil, "(bf) r0 = &(void __percpu *)(r0)"},
		{[]ir.Instruction{I(0xbc, 3, 3, 0, 1)}, nil, "(bc) w3 = w3"}, // BPF_ZEXT_REG prints as a plain mov
		{[]ir.Instruction{I(0xb7, ir.RAX, 0, 0, 5)}, nil, "(b7) r11 = 5"},
		{[]ir.Instruction{I(0xe7, 0, 0, 0, 0)}, nil, "(e7) r0 (null) 0"}, // unknown ALU op as printk shows NULL

		{[]ir.Instruction{I(0x61, 0, 1, 4, 0)}, nil, "(61) r0 = *(u32 *)(r1 +4)"},
		{[]ir.Instruction{I(0x79, 0, 10, -8, 0)}, nil, "(79) r0 = *(u64 *)(r10 -8)"},
		{[]ir.Instruction{I(0x91, 0, 1, 0, 0)}, nil, "(91) r0 = *(s8 *)(r1 +0)"},
		{[]ir.Instruction{I(0x99, 0, 1, 0, 0)}, nil, "(99) r0 = *((null) *)(r1 +0)"}, // MEMSX DW: no type name
		{[]ir.Instruction{I(0x39, 0, 1, 8, 0)}, nil, "(39) r0 = *(u64 *)(r1 +8) probe_mem"},
		{[]ir.Instruction{I(0x39, 0, 1, 8, 0)}, &ir.PrintOptions{KernelInternal: true}, "BUG_ldx_39"},
		{[]ir.Instruction{I(0x51, 0, 1, 8, 0)}, nil, "(51) r0 = *(s8 *)(r1 +8) probe_memsx"},
		{[]ir.Instruction{I(0xb9, 0, 1, 8, 0)}, nil, "(b9) r0 = *(u64 *)(r1 +8) probe_mem32"},
		{[]ir.Instruction{I(0xc1, 0, 1, 8, 0)}, nil, "(c1) r0 = *(s32 *)(r1 +8) probe_mem32sx"},
		{[]ir.Instruction{I(0x01, 0, 1, 8, 0)}, nil, "BUG_ldx_01"},
		{[]ir.Instruction{I(0x62, 1, 0, -4, -7)}, nil, "(62) *(u32 *)(r1 -4) = -7"},
		{[]ir.Instruction{I(0xba, 1, 0, 4, 7)}, nil, "(ba) *(u64 *)(r1 +4) = 7 probe_mem32"},
		{[]ir.Instruction{I(0xba, 1, 0, 4, 7)}, &ir.PrintOptions{KernelInternal: true}, "BUG_st_ba"},
		{[]ir.Instruction{I(0xc2, 0, 0, 0, 0)}, nil, "(c2) nospec"},
		{[]ir.Instruction{I(0x22, 0, 0, 0, 0)}, nil, "BUG_st_22"},
		{[]ir.Instruction{I(0x73, 10, 1, -1, 0)}, nil, "(73) *(u8 *)(r10 -1) = r1"},
		{[]ir.Instruction{I(0xbb, 1, 2, 0, 0)}, nil, "(bb) *(u64 *)(r1 +0) = r2 probe_mem32"},
		{[]ir.Instruction{I(0xdb, 10, 1, -8, 0x00)}, nil, "(db) lock *(u64 *)(r10 -8) += r1"},
		{[]ir.Instruction{I(0xc3, 10, 1, -8, 0xa0)}, nil, "(c3) lock *(u32 *)(r10 -8) ^= r1"},
		{[]ir.Instruction{I(0xdb, 10, 1, -8, 0x51)}, nil, "(db) r1 = atomic64_fetch_and((u64 *)(r10 -8), r1)"},
		{[]ir.Instruction{I(0xc3, 10, 1, -8, 0x41)}, nil, "(c3) r1 = atomic_fetch_or((u32 *)(r10 -8), r1)"},
		{[]ir.Instruction{I(0xdb, 10, 1, -8, 0xe1)}, nil, "(db) r1 = atomic64_xchg((u64 *)(r10 -8), r1)"},
		{[]ir.Instruction{I(0xc3, 10, 1, -8, 0xf1)}, nil, "(c3) r0 = atomic_cmpxchg((u32 *)(r10 -8), r0, r1)"},
		{[]ir.Instruction{I(0xdb, 0, 1, 0, 0x100)}, nil, "(db) r0 = load_acquire((u64 *)(r1 +0))"},
		{[]ir.Instruction{I(0xd3, 1, 2, 2, 0x110)}, nil, "(d3) store_release((u8 *)(r1 +2), r2)"},
		{[]ir.Instruction{I(0xfb, 1, 2, 0, 0x01)}, nil, "(fb) r2 = atomic64_fetch_add((u64 *)(r1 +0), r2) probe_atomic"},
		{[]ir.Instruction{I(0xe3, 1, 2, 0, 0x00)}, nil, "(e3) lock *(u32 *)(r1 +0) += r2 probe_atomic"},
		{[]ir.Instruction{I(0xfb, 1, 2, 0, 0x01)}, &ir.PrintOptions{KernelInternal: true}, "BUG_fb"},
		{[]ir.Instruction{I(0xdb, 1, 2, 0, 0x10)}, nil, "BUG_db"},

		{[]ir.Instruction{I(0x30, 0, 0, 0, 12)}, nil, "(30) r0 = *(u8 *)skb[12]"},
		{[]ir.Instruction{I(0x48, 0, 7, 0, 3)}, nil, "(48) r0 = *(u16 *)skb[r7 + 3]"},
		{ld(0, 0x55667788, 0x11223344), nil, "(18) r1 = 0x1122334455667788"},
		{ld(ir.PseudoMapFD, 5, 0), nil, "(18) r1 = map[id:5]"},
		{ld(ir.PseudoMapValue, 5, 16), nil, "(18) r1 = map[id:5][0]+16"},
		{ld(ir.PseudoMapIdx, 2, 0), nil, "(18) r1 = 0x2"}, // bpftool has no form for idx
		{ld(ir.PseudoMapIdxValue, 2, 8), nil, "(18) r1 = map[idx:2]+8"},
		{ld(ir.PseudoFunc, 4, 0), nil, "(18) r1 = subprog[+4]"},
		{ld(ir.PseudoBTFID, 77, 0), nil, "(18) r1 = 0x4d"},
		{ld(ir.PseudoMapFD, 5, 0), &ir.PrintOptions{KernelImm: true}, "(18) r1 = 0x5"},
		{ld(ir.PseudoMapFD, 5, 0), &ir.PrintOptions{KernelImm: true, HidePointers: true}, "(18) r1 = 0x0"},
		{ld(ir.PseudoMapFD, 5, 0), &ir.PrintOptions{ImmText: func(p *ir.Program, i int, v uint64) string { return "map[name:counts]" }}, "(18) r1 = map[name:counts]"},
		{[]ir.Instruction{I(0x00, 0, 0, 0, 0)}, nil, "BUG_ld_00"},

		{[]ir.Instruction{I(0x05, 0, 0, -3, 0)}, nil, "(05) goto pc-3"},
		{[]ir.Instruction{I(0x05, 0, 0, 0, 0)}, nil, "(05) goto pc+0"},
		{[]ir.Instruction{I(0x06, 0, 0, 0, 70000)}, nil, "(06) gotol pc+70000"},
		{[]ir.Instruction{I(0x0d, 3, 0, 0, 0)}, nil, "(0d) gotox r3"},
		{[]ir.Instruction{I(0xe5, 0, 0, 2, 0)}, nil, "(e5) may_goto pc+2"},
		{[]ir.Instruction{I(0x15, 1, 0, 2, -1)}, nil, "(15) if r1 == 0xffffffff goto pc+2"},
		{[]ir.Instruction{I(0xce, 1, 2, -2, 0)}, nil, "(ce) if w1 s< w2 goto pc-2"},
		{[]ir.Instruction{I(0x45, 1, 0, 1, 8)}, nil, "(45) if r1 & 0x8 goto pc+1"},
		{[]ir.Instruction{I(0x95, 0, 0, 0, 0)}, nil, "(95) exit"},
		{[]ir.Instruction{I(0x85, 0, 0, 0, 1)}, nil, "(85) call bpf_map_lookup_elem#1"},
		{[]ir.Instruction{I(0x85, 0, 0, 0, 5000)}, nil, "(85) call unknown#5000"},
		{[]ir.Instruction{I(0x85, 0, 1, 0, 3)}, nil, "(85) call pc+3"},
		{[]ir.Instruction{I(0x85, 0, 1, 0, -3)}, nil, "(85) call pc-3"},
		{[]ir.Instruction{I(0x85, 0, 2, 0, 1234)}, nil, "(85) call kernel-function#1234"},
		{[]ir.Instruction{I(0x85, 0, 2, 0, 1234)}, &ir.PrintOptions{CallName: func(*ir.Program, int) string { return "bpf_arena_alloc_pages" }}, "(85) call bpf_arena_alloc_pages#1234"},
		{[]ir.Instruction{I(0x8d, 2, 0, 0, 0)}, nil, "(8d) call bpf_unspec#0"}, // callx: the kernel prints it as helper 0
		{[]ir.Instruction{I(0xf5, 0, 0, 0, 0)}, nil, "(f5) tail_call"},
		{[]ir.Instruction{I(0xf5, 0, 0, 0, 0)}, &ir.PrintOptions{KernelInternal: true}, "(f5) if r0 (null) 0x0 goto pc+0"},
	}
	for _, tc := range tests {
		p := ir.NewProgram("", tc.insns)
		if got := p.KernelText(0, tc.opts); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.insns[0], got, tc.want)
		}
		// Format drops the opcode column and nothing else.
		want := tc.want
		if strings.HasPrefix(want, "(") {
			want = want[5:]
		}
		if got := p.FormatWith(0, tc.opts); got != want {
			t.Errorf("FormatWith: got %q, want %q", got, want)
		}
	}
}

func TestBpftoolCalls(t *testing.T) {
	syms := map[uint64]string{0x1000 + 4000: "bpf_ktime_get_ns", 0x9000: "bpf_prog_abc_F"}
	sym := func(a uint64) string { return syms[a] }
	p := ir.NewProgram("", []ir.Instruction{
		I(0x85, 0, 0, 0, 4000), // helper at call base + 4000 (ids below HelperMaxID print their own names)
		I(0x85, 0, 0, 0, -16),  // no symbol
		I(0x85, 0, 1, 5, 1),    // bpf-to-bpf: off = distance, imm = function index
		I(0x85, 0, 1, 5, 0),    // function without symbol
		I(0x95, 0, 0, 0, 0),
	})
	jited := &ir.PrintOptions{CallName: ir.BpftoolCalls(0x1000, []uint64{0x8000, 0x9000}, sym)}
	interp := &ir.PrintOptions{CallName: ir.BpftoolCalls(0x1000, nil, sym)}
	for _, tc := range []struct {
		i    int
		o    *ir.PrintOptions
		want string
	}{
		{0, jited, "call bpf_ktime_get_ns#4000"},
		{1, jited, "call 0xff0#-16"},
		{2, jited, "call pc+5#bpf_prog_abc_F"},
		{3, jited, "call pc+5#0x8000"},
		{2, interp, "call pc+5"},
	} {
		if got := p.FormatWith(tc.i, tc.o); got != tc.want {
			t.Errorf("insn %d: %q, want %q", tc.i, got, tc.want)
		}
	}
}

func TestString(t *testing.T) {
	p := ir.NewProgram("", []ir.Instruction{
		I(ir.OpLdImm64, 1, 0, 0, 7), I(0, 0, 0, 0, 0),
		I(0xb7, 0, 0, 0, 0),
		I(0x95, 0, 0, 0, 0),
	})
	want := "   0: (18) r1 = 0x7\n   2: (b7) r0 = 0\n   3: (95) exit\n"
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := p.Format(2); got != "r0 = 0" {
		t.Errorf("Format(2) = %q", got)
	}
	if got := p.Format(1); got != "(ld_imm64 second half)" {
		t.Errorf("Format(1) = %q", got)
	}
	idx, text := p.Lines(nil)
	if len(idx) != 3 || idx[1] != 2 || text[2] != "(95) exit" {
		t.Errorf("Lines = %v %q", idx, text)
	}
	if n, ok := ir.HelperName(12); !ok || n != "bpf_tail_call" {
		t.Errorf("HelperName(12) = %q, %v", n, ok)
	}
	if _, ok := ir.HelperName(ir.HelperMaxID); ok {
		t.Error("HelperName beyond the table")
	}
}
