package ir_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
	"github.com/bpfc/bpfc/ir/asm"
)

var capture = flag.Bool("capture", false, "load the printer test programs into the live kernel and rewrite ir/testdata/xlated")

// xlatedGolden is one program as the live kernel translated it, with
// bpftool's listing of it.
type xlatedGolden struct {
	Name     string `json:"name"`
	Kernel   string `json:"kernel"`
	ProgType string `json:"prog_type"`
	// Source is the program as loaded (hex of the raw bytes).
	Source string `json:"source"`
	// Xlated is BPF_OBJ_GET_INFO_BY_FD's xlated_prog_insns (hex).
	Xlated string `json:"xlated"`
	// Bpftool is the output of `bpftool prog dump xlated id N`.
	Bpftool string `json:"bpftool"`
	// What bpftool's print_call needs: __bpf_call_base, the program's
	// jited_ksyms, and the kallsyms names of every address a call refers to.
	CallBase uint64            `json:"call_base"`
	Ksyms    []uint64          `json:"ksyms"`
	Syms     map[string]string `json:"syms"`
	// VerifierLog is the level-2 verifier log of the load: the kernel's
	// own print_bpf_insn text of every instruction of Source it walked.
	VerifierLog string `json:"verifier_log"`
	// Kfuncs names the BTF ids of kfunc calls in Source.
	Kfuncs map[string]string `json:"kfuncs,omitempty"`
	// A second load with one BTF line-info record per source instruction:
	// LinfoXlated is its xlated program and Linfo[k] the xlated index the
	// kernel moved record k (source instruction k) to while patching.
	LinfoXlated string `json:"linfo_xlated"`
	Linfo       []int  `json:"linfo"`
}

const xlatedDir = "testdata/xlated"

// I builds one slot.
func I(op uint8, dst, src ir.Register, off int16, imm int32) ir.Instruction {
	return ir.Instruction{Op: op, Dst: dst, Src: src, Off: off, Imm: imm}
}

func ld64(dst, src ir.Register, lo, hi int32) []ir.Instruction {
	return []ir.Instruction{I(ir.OpLdImm64, dst, src, 0, lo), I(0, 0, 0, 0, hi)}
}

type progBuilder struct{ insns []ir.Instruction }

func (b *progBuilder) add(ins ...ir.Instruction) { b.insns = append(b.insns, ins...) }

const (
	alu64K = 0x07
	alu64X = 0x0f
	alu32K = 0x04
	alu32X = 0x0c
)

func xlatedPrograms() []struct {
	name string
	typ  kernel.ProgType
	maps []kernel.MapDef
	prog *ir.Program
} {
	type entry = struct {
		name string
		typ  kernel.ProgType
		maps []kernel.MapDef
		prog *ir.Program
	}
	var out []entry

	// ALU: every operation, both widths, both sources.
	{
		var b progBuilder
		b.add(I(0xb7, 1, 0, 0, 7), I(0xb7, 2, 0, 0, 3), I(0xb4, 3, 0, 0, 5), I(0xb4, 4, 0, 0, -2))
		for _, op := range []uint8{0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xc0, 0xb0} {
			b.add(I(alu64K|op, 1, 0, 0, 3), I(alu64X|op, 1, 2, 0, 0), I(alu32K|op, 3, 0, 0, 3), I(alu32X|op, 3, 4, 0, 0))
		}
		for _, op := range []uint8{0x30, 0x90} { // sdiv, smod
			b.add(I(alu64K|op, 1, 0, 1, -3), I(alu64X|op, 1, 2, 1, 0), I(alu32K|op, 3, 0, 1, 3), I(alu32X|op, 3, 4, 1, 0))
		}
		b.add(I(0x87, 1, 0, 0, 0), I(0x84, 3, 0, 0, 0)) // neg
		for _, w := range []int32{16, 32, 64} {
			b.add(I(0xd4, 1, 0, 0, w), I(0xdc, 1, 0, 0, w), I(0xd7, 1, 0, 0, w))
		}
		b.add(I(0xbf, 1, 2, 8, 0), I(0xbf, 1, 2, 16, 0), I(0xbf, 1, 2, 32, 0), I(0xbc, 3, 4, 8, 0), I(0xbc, 3, 4, 16, 0))
		b.add(I(0xb7, 1, 0, 0, -1), I(0x07, 1, 0, 0, 0x7fffffff), I(0x04, 3, 0, 0, -2147483648))
		b.add(I(0xbf, 0, 1, 0, 0), I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		out = append(out, entry{"alu", kernel.SocketFilter, nil, ir.NewProgram("alu", b.insns)})
	}

	// Memory: stores, loads (incl. sign-extending), atomics, acquire/release, ctx.
	{
		var b progBuilder
		b.add(I(0xbf, 6, 1, 0, 0), I(0xb7, 0, 0, 0, 0))
		b.add(ld64(1, 0, 0x55667788, 0x11223344)...)
		b.add(I(0x7b, 10, 1, -8, 0), I(0x63, 10, 1, -12, 0), I(0x6b, 10, 1, -14, 0), I(0x73, 10, 1, -15, 0))
		b.add(I(0x7a, 10, 0, -24, 5), I(0x62, 10, 0, -28, -6), I(0x6a, 10, 0, -30, 7), I(0x72, 10, 0, -31, 8))
		b.add(I(0x79, 2, 10, -8, 0), I(0x61, 2, 10, -12, 0), I(0x69, 2, 10, -14, 0), I(0x71, 2, 10, -15, 0))
		b.add(I(0x81, 2, 10, -12, 0), I(0x89, 2, 10, -14, 0), I(0x91, 2, 10, -15, 0))
		for _, a := range []int32{0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1} {
			b.add(I(0xdb, 10, 1, -8, a), I(0xc3, 10, 1, -12, a))
		}
		for _, sz := range []uint8{0x18, 0x00, 0x08, 0x10} {
			b.add(I(0xd3|sz, 3, 10, -8, 0x100))
		}
		for _, sz := range []uint8{0x18, 0x00, 0x08, 0x10} {
			b.add(I(0xd3|sz, 10, 1, -8, 0x110))
		}
		b.add(I(0x61, 2, 6, 0, 0), I(0x61, 2, 6, 4, 0), I(0x61, 2, 6, 16, 0)) // skb->len, pkt_type, protocol
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		out = append(out, entry{"mem", kernel.SocketFilter, nil, ir.NewProgram("mem", b.insns)})
	}

	// Jumps: every condition, both widths, both sources; ja, gotol,
	// may_goto, a bpf-to-bpf call, helper calls.
	{
		var b progBuilder
		b.add(I(0xbf, 6, 1, 0, 0), I(ir.OpCall, 0, 0, 0, 7)) // bpf_get_prandom_u32
		b.add(I(0xbf, 7, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 5)) // bpf_ktime_get_ns
		b.add(I(0xbf, 1, 7, 0, 0), I(0xbf, 2, 0, 0, 0), I(0xb7, 3, 0, 0, 0))
		for _, op := range []uint8{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0} {
			// Fresh unknown operands for every jump and a filler
			// (r6 = r6) that leaves the state alone, so that no
			// branch is decidable and the verifier prunes at each
			// merge instead of walking 2^44 paths.
			b.add(I(ir.OpCall, 0, 0, 0, 7), I(0x05|op, 0, 0, 1, 5), I(0xbf, 6, 6, 0, 0))
			b.add(I(ir.OpCall, 0, 0, 0, 7), I(0xbf, 7, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 7), I(0x0d|op, 0, 7, 1, 0), I(0xbf, 6, 6, 0, 0))
			b.add(I(ir.OpCall, 0, 0, 0, 7), I(0x06|op, 0, 0, 1, -5), I(0xbf, 6, 6, 0, 0))
			b.add(I(ir.OpCall, 0, 0, 0, 7), I(0xbf, 7, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 7), I(0x0e|op, 0, 7, 1, 0), I(0xbf, 6, 6, 0, 0))
		}
		b.add(I(ir.OpCall, 0, 0, 0, 7), I(0xbf, 7, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 7), I(0xbf, 8, 0, 0, 0))
		// Diamonds so that ja/gotol stay live.
		b.add(I(0x25, 7, 0, 2, 3), I(0xb7, 3, 0, 0, 1), I(ir.OpJA, 0, 0, 1, 0), I(0xb7, 3, 0, 0, 2))
		b.add(I(0x25, 8, 0, 2, 3), I(0xb7, 3, 0, 0, 1), I(ir.OpGotoL, 0, 0, 0, 1), I(0xb7, 3, 0, 0, 2))
		// may_goto loop.
		b.add(I(0xb7, 4, 0, 0, 0), I(ir.OpMayGoto, 0, 0, 2, 0), I(0x07, 4, 0, 0, 1), I(ir.OpJA, 0, 0, -3, 0))
		b.add(ld64(5, 0, -1, 0x7fffffff)...)
		b.add(I(0xb7, 1, 0, 0, 4), I(ir.OpCall, 0, ir.CallLocal, 0, 2))
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		b.add(I(0xbf, 0, 1, 0, 0), I(ir.OpExit, 0, 0, 0, 0)) // callee
		out = append(out, entry{"jumps", kernel.SocketFilter, nil, ir.NewProgram("jumps", b.insns)})
	}

	// Maps: inlined array lookup, hash lookup, map value address, tail
	// call, bpf_loop with a callback.
	{
		var b progBuilder
		b.add(I(0xbf, 6, 1, 0, 0), I(0x62, 10, 0, -4, 0))
		b.add(I(0xbf, 2, 10, 0, 0), I(0x07, 2, 0, 0, -4))
		b.add(ld64(1, ir.PseudoMapIdx, 0, 0)...)
		b.add(I(ir.OpCall, 0, 0, 0, 1), I(0x15, 0, 0, 1, 0), I(0x79, 3, 0, 0, 0))
		b.add(I(0xbf, 2, 10, 0, 0), I(0x07, 2, 0, 0, -4))
		b.add(ld64(1, ir.PseudoMapIdx, 1, 0)...)
		b.add(I(ir.OpCall, 0, 0, 0, 1), I(0x15, 0, 0, 1, 0), I(0x79, 3, 0, 0, 0))
		b.add(ld64(1, ir.PseudoMapIdxValue, 3, 8)...)
		b.add(I(0x79, 3, 1, 0, 0))
		b.add(I(0xbf, 1, 6, 0, 0))
		b.add(ld64(2, ir.PseudoMapIdx, 2, 0)...)
		b.add(I(0xb7, 3, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 12))
		b.add(I(0xb7, 1, 0, 0, 4))
		b.add(ld64(2, ir.PseudoFunc, 0, 0)...) // patched below to the callback
		fref := len(b.insns) - 2
		b.add(I(0xb7, 3, 0, 0, 0), I(0xb7, 4, 0, 0, 0), I(ir.OpCall, 0, 0, 0, 181)) // bpf_loop
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		cb := len(b.insns)
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		b.insns[fref].Imm = int32(cb - fref - 1)
		maps := []kernel.MapDef{
			{Type: kernel.MapArray, KeySize: 4, ValueSize: 16, MaxEntries: 4},
			{Type: kernel.MapHash, KeySize: 4, ValueSize: 8, MaxEntries: 4},
			{Type: kernel.MapProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 2},
			{Type: kernel.MapArray, KeySize: 4, ValueSize: 16, MaxEntries: 1},
		}
		out = append(out, entry{"maps", kernel.SocketFilter, maps, ir.NewProgram("maps", b.insns)})
	}

	// Jumps, gotol and calls across instructions the verifier patches
	// (division by a register gets a zero guard), forward and backward.
	{
		p, err := asm.Assemble(`
			mov %r6, %r1
			call 7
			mov %r7, %r0
			call 7
			mov %r8, %r0
			jgt %r7, 5, l1
			div %r7, %r8
			mod32 %r7, %r8
		l1:	jgt %r8, 7, l6
			ja32 l2
		l6:	div %r7, %r8
		l2:	mov %r9, 0
		l3:	div %r7, %r8
			add %r9, 1
			jlt %r9, 3, l3
		l4:	add %r9, 1
			mod %r7, %r8
			jlt %r9, 6, l4
			mov %r1, %r7
			mov %r2, %r8
			call local f2
			mov %r0, 0
			exit
		f1:	div %r1, %r2
			mov %r0, %r1
			exit
		f2:	jeq %r2, 0, l5
			div32 %r1, %r2
		l5:	call local f1
			exit`)
		if err != nil {
			panic(err)
		}
		p.Name = "cross"
		out = append(out, entry{"cross", kernel.SocketFilter, nil, p})
	}

	// Dead code and a never-taken branch: the verifier hard-wires the
	// branch to "ja +0", removes the dead instructions and then the nop
	// (verifier_remove_insns); TestRemoveMatchesKernel replays it.
	{
		p, err := asm.Assemble(deadSource)
		if err != nil {
			panic(err)
		}
		p.Name = "dead"
		out = append(out, entry{"dead", kernel.SocketFilter, nil, p})
	}

	// Legacy packet loads (the verifier turns them into helper calls).
	{
		var b progBuilder
		b.add(I(0xbf, 6, 1, 0, 0))
		b.add(I(0x30, 0, 0, 0, 12), I(0x28, 0, 0, 0, 12), I(0x20, 0, 0, 0, 12))
		b.add(I(0xb7, 7, 0, 0, 2), I(0x50, 0, 7, 0, 3), I(0x48, 0, 7, 0, 3), I(0x40, 0, 7, 0, 3))
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		out = append(out, entry{"ldabs", kernel.SocketFilter, nil, ir.NewProgram("ldabs", b.insns)})
	}

	// Arena: kfunc call, addr_space_cast, arena loads/stores/atomics (the
	// dump shows them as MEM).
	{
		var b progBuilder
		b.add(ld64(1, ir.PseudoMapIdx, 0, 0)...)
		b.add(I(0xb7, 2, 0, 0, 0), I(0xb7, 3, 0, 0, 1), I(0xb7, 4, 0, 0, -1), I(0xb7, 5, 0, 0, 0))
		kf := len(b.insns)
		b.add(I(ir.OpCall, 0, ir.CallKfunc, 0, 0)) // bpf_arena_alloc_pages
		b.add(I(0x15, 0, 0, 8, 0))
		b.add(I(0xbf, 1, 0, ir.OffAddrSpaceCast, ir.CastToKernel))
		b.add(I(0xbf, 2, 1, ir.OffAddrSpaceCast, ir.CastToUser))
		b.add(I(0x7a, 1, 0, 0, 1), I(0x7b, 1, 2, 8, 0), I(0x79, 3, 1, 8, 0), I(0x81, 3, 1, 8, 0))
		b.add(I(0xdb, 1, 3, 0, 0x01), I(0xc3, 1, 3, 0, 0x00))
		b.add(I(0xb7, 0, 0, 0, 0), I(ir.OpExit, 0, 0, 0, 0))
		p := ir.NewProgram("arena", b.insns)
		p.Aux[kf].Symbol, p.Aux[kf].SymbolKind = "bpf_arena_alloc_pages", ir.SymKfunc
		maps := []kernel.MapDef{{Type: kernel.MapArena, MaxEntries: 4, Flags: 1 << 10, Extra: 1 << 32}}
		out = append(out, entry{"arena", kernel.Syscall, maps, p})
	}
	return out
}

// TestCaptureXlated loads the printer test programs into the live kernel and
// writes their goldens (run with -capture).
func TestCaptureXlated(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture to refresh ir/testdata/xlated from the live kernel")
	}
	if ok, why := kernel.Available(); !ok {
		t.Skip(why)
	}
	callBase, err := kernel.CallBase()
	if err != nil {
		t.Skip(err)
	}
	if err := os.MkdirAll(xlatedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	for _, e := range xlatedPrograms() {
		t.Run(e.name, func(t *testing.T) {
			l, err := loadWithLog(e.name, e.typ, e.maps, e.prog)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			info, err := kernel.ProgInfo(l.fd)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("bpftool", "prog", "dump", "xlated", "id", strconv.Itoa(int(info.ID))).CombinedOutput()
			if err != nil {
				t.Fatalf("bpftool: %v\n%s", err, out)
			}
			p, err := ir.DecodeWith(info.Xlated, ir.DecodeOptions{Xlated: true})
			if err != nil {
				// Keep it anyway: the printer must cope.
				t.Logf("xlated does not decode strictly: %v", err)
				p = rawProgram(info.Xlated)
			}
			g := xlatedGolden{
				Name: e.name, Kernel: strings.TrimSpace(string(release)), ProgType: e.typ.String(),
				Source: hex.EncodeToString(ir.Encode(l.source)), Xlated: hex.EncodeToString(info.Xlated),
				Bpftool: string(out), CallBase: callBase, Ksyms: info.Ksyms, VerifierLog: l.log,
			}
			if len(l.kfuncs) > 0 {
				g.Kfuncs = map[string]string{}
				for id, n := range l.kfuncs {
					g.Kfuncs[strconv.Itoa(int(id))] = n
				}
			}
			g.Syms, err = callSyms(p, callBase, info.Ksyms)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := kernel.Load(&kernel.Spec{Name: e.name, Type: e.typ, Maps: e.maps, Program: e.prog})
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			info2, err := kernel.ProgInfo(l2.FD)
			if err != nil {
				t.Fatal(err)
			}
			g.LinfoXlated = hex.EncodeToString(info2.Xlated)
			for _, li := range info2.Lines {
				g.Linfo = append(g.Linfo, li.Insn)
			}
			b, err := json.MarshalIndent(&g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(xlatedDir, e.name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d xlated slots", e.name, len(info.Xlated)/8)
		})
	}
}

func rawProgram(b []byte) *ir.Program {
	insns := make([]ir.Instruction, len(b)/8)
	for i := range insns {
		s := b[i*8:]
		insns[i] = ir.Instruction{Op: s[0], Dst: ir.Register(s[1] & 0xf), Src: ir.Register(s[1] >> 4),
			Off: int16(uint16(s[2]) | uint16(s[3])<<8), Imm: int32(uint32(s[4]) | uint32(s[5])<<8 | uint32(s[6])<<16 | uint32(s[7])<<24)}
	}
	return ir.NewProgram("", insns)
}

// callSyms resolves, through /proc/kallsyms, every address a call in p
// refers to, as bpftool's print_call computes them.
func callSyms(p *ir.Program, callBase uint64, ksyms []uint64) (map[string]string, error) {
	want := map[uint64]bool{}
	for i, ins := range p.Insns {
		if ins.Op != ir.OpCall {
			continue
		}
		addr := callBase + uint64(int64(ins.Imm))
		if ins.Src == ir.CallLocal && uint32(ins.Imm) < uint32(len(ksyms)) {
			addr = ksyms[ins.Imm]
		}
		want[addr] = true
		_ = i
	}
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// bpftool keeps the first symbol of an address (its qsort is not
	// stable, but kallsyms lists an address's aliases together and we only
	// see a difference if two names share one; the test would tell).
	got := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || !want[a] {
			continue
		}
		key := fmt.Sprintf("0x%x", a)
		if _, ok := got[key]; !ok {
			got[key] = fields[2]
		}
	}
	return got, sc.Err()
}

var (
	bpftoolLine = regexp.MustCompile(`^\s*(\d+): (.*)$`)
	// Instruction lines of a level-2 verifier log: "N: (op) text ; state"
	// and, in the liveness listing, "N: <live regs> (op) text".
	logLine = regexp.MustCompile(`^\s*(\d+): (?:[.0-9]{10} )?(\([0-9a-f]{2}\) [^;]*?)\s*(?:;.*)?$`)
)

func readGoldens(t *testing.T) []xlatedGolden {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(xlatedDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no goldens; run with -capture on a machine with BPF")
	}
	sort.Strings(files)
	var out []xlatedGolden
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var g xlatedGolden
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, g)
	}
	return out
}

func hexProgram(t *testing.T, s string) *ir.Program {
	t.Helper()
	raw, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return rawProgram(raw)
}

// bpftoolPredates reports instructions newer than the disassembler built
// into the installed bpftool (v7.1, libbpf 1.1, from Linux 6.2): it prints
// BUG_... or an older text for them, so they are checked against the
// kernel's own verifier log instead.
func bpftoolPredates(ins ir.Instruction) bool {
	switch {
	case ins.Class().IsALU() && (ins.ALUOp() == ir.ALUDiv || ins.ALUOp() == ir.ALUMod) && ins.Off == ir.OffSigned:
		return true // sdiv/smod (6.6)
	case ins.Class().IsALU() && ins.ALUOp() == ir.ALUMov && ins.Source() == ir.SourceX && ins.Off != 0:
		return true // movsx (6.6), addr_space_cast (6.9), per-cpu mov (6.10)
	case ins.Class() == ir.ClassALU64 && ins.ALUOp() == ir.ALUEnd:
		return true // bswap (6.6)
	case ins.Class() == ir.ClassLDX && ins.Mode() == ir.ModeMEMSX:
		return true // sign-extending loads (6.6)
	case ins.IsAtomic() && (ins.Imm == ir.AtomicLoadAcq || ins.Imm == ir.AtomicStoreRel):
		return true // load-acquire/store-release (6.15)
	case ins.Op == ir.OpGotoL || ins.Op == ir.OpMayGoto:
		return true // gotol (6.6), may_goto (6.9)
	}
	return false
}

// TestXlatedGoldens prints each captured xlated program and compares it,
// instruction by instruction, with bpftool's listing from the live kernel
// (calls named through the captured kernel symbols, as bpftool does).
func TestXlatedGoldens(t *testing.T) {
	kinds := map[uint8]bool{}
	total, predates := 0, 0
	gs := readGoldens(t)
	for _, g := range gs {
		p := hexProgram(t, g.Xlated)
		syms := map[uint64]string{}
		for k, v := range g.Syms {
			a, _ := strconv.ParseUint(strings.TrimPrefix(k, "0x"), 16, 64)
			syms[a] = v
		}
		opts := &ir.PrintOptions{
			CallName:       ir.BpftoolCalls(g.CallBase, g.Ksyms, func(a uint64) string { return syms[a] }),
			KernelInternal: true, // the dump keeps PROBE_MEM32SX and PROBE_ATOMIC
		}
		idx, text := p.Lines(opts)
		var want []string
		var wantIdx []int
		for _, line := range strings.Split(g.Bpftool, "\n") {
			m := bpftoolLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n, _ := strconv.Atoi(m[1])
			wantIdx = append(wantIdx, n)
			want = append(want, m[2])
		}
		if len(want) != len(text) {
			t.Errorf("%s: bpftool lists %d instructions, we print %d", g.Name, len(want), len(text))
		}
		var ours []string
		for k := 0; k < len(want) && k < len(text); k++ {
			ours = append(ours, fmt.Sprintf("% 4d: %s", idx[k], text[k]))
			if wantIdx[k] != idx[k] {
				t.Errorf("%s: line %d: bpftool index %d, ours %d", g.Name, k, wantIdx[k], idx[k])
			}
			ins := p.Insns[idx[k]]
			if bpftoolPredates(ins) {
				predates++
				continue
			}
			if want[k] != text[k] {
				t.Errorf("%s: insn %d:\n got %q\nwant %q", g.Name, idx[k], text[k], want[k])
			}
			kinds[ins.Op] = true
			total++
		}
		if got := p.StringWith(opts); got != strings.Join(ours, "\n")+"\n" {
			t.Errorf("%s: String() and Lines() disagree", g.Name)
		}
	}
	t.Logf("%d programs: %d xlated instructions equal to bpftool's text (%d opcodes); %d newer than bpftool's disassembler, checked against the verifier log", len(gs), total, len(kinds), predates)
}

// TestVerifierLogGoldens compares our text with the kernel's own
// print_bpf_insn output in the level-2 verifier log of each capture, for
// every instruction of the loaded program the verifier printed. ld_imm64 of
// maps are left out: at log time the kernel has replaced the map fd by the
// map's address, which the capture does not keep.
func TestVerifierLogGoldens(t *testing.T) {
	kinds := map[uint8]bool{}
	compared := 0
	gs := readGoldens(t)
	for _, g := range gs {
		p := hexProgram(t, g.Source)
		kf := map[int32]string{}
		for k, v := range g.Kfuncs {
			id, _ := strconv.Atoi(k)
			kf[int32(id)] = v
		}
		opts := &ir.PrintOptions{
			KernelImm: true,
			CallName: func(p *ir.Program, i int) string {
				if ins := p.Insns[i]; ins.IsKfuncCall() {
					return kf[ins.Imm]
				}
				return ""
			},
		}
		seen := map[int]bool{}
		for _, line := range strings.Split(g.VerifierLog, "\n") {
			m := logLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n, _ := strconv.Atoi(m[1])
			if n >= len(p.Insns) {
				t.Errorf("%s: log names instruction %d of %d", g.Name, n, len(p.Insns))
				continue
			}
			ins := p.Insns[n]
			if ins.IsLdImm64() && ins.Src != ir.PseudoNone && ins.Src != ir.PseudoFunc {
				continue
			}
			if got := p.KernelText(n, opts); got != m[2] {
				t.Errorf("%s: insn %d:\n got %q\nwant %q (%s)", g.Name, n, got, m[2], line)
			}
			if !seen[n] {
				seen[n] = true
				kinds[ins.Op] = true
				compared++
			}
		}
		// Every instruction of the source should have been printed at
		// least once (the programs have no dead code).
		for i := 0; i < len(p.Insns); i++ {
			ins := p.Insns[i]
			if ins.IsLdImm64() {
				i++
				if ins.Src != ir.PseudoNone && ins.Src != ir.PseudoFunc {
					continue
				}
			}
			if !seen[i-boolInt(ins.IsLdImm64())] {
				t.Errorf("%s: instruction %d (%s) never appears in the verifier log", g.Name, i, p.Format(i-boolInt(ins.IsLdImm64())))
			}
		}
	}
	t.Logf("%d programs: %d source instructions equal to the verifier log's text (%d opcodes)", len(gs), compared, len(kinds))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPatchMatchesKernel replays the verifier's patching with Patch: for
// each source instruction the kernel rewrote (its line-info record tells
// where its replacement starts in the xlated program), Patch it with the
// kernel's replacement, from the last instruction to the first. The result
// must have the kernel's length, every instruction the kernel left in place
// must sit where the kernel put it with the jump or call distance the
// kernel's bpf_adj_branches gave it, and every replacement slot whose jump
// stays inside its replacement must equal the kernel's.
func TestPatchMatchesKernel(t *testing.T) {
	checked, patched := 0, 0
	for _, g := range readGoldens(t) {
		if len(g.Linfo) == 0 || g.Name == "dead" {
			continue // "dead" loses instructions: TestRemoveMatchesKernel
		}
		src := hexProgram(t, g.Source)
		x := hexProgram(t, g.LinfoXlated)
		var starts []int
		for i := 0; i < src.Len(); i += src.SlotLen(i) {
			starts = append(starts, i)
		}
		if len(starts) != len(g.Linfo) {
			t.Fatalf("%s: %d line records for %d instructions", g.Name, len(g.Linfo), len(starts))
		}
		end := func(k int) int {
			if k+1 < len(g.Linfo) {
				return g.Linfo[k+1]
			}
			return x.Len()
		}
		// Is the kernel's region the source instruction, rewritten in
		// place at most (immediates, offsets, ctx field offsets)?
		inPlace := func(k int) bool {
			s, n := starts[k], src.SlotLen(starts[k])
			if end(k)-g.Linfo[k] != n {
				return false
			}
			a, b := src.Insns[s], x.Insns[g.Linfo[k]]
			if a.IsLdImm64() || b.IsLdImm64() {
				return a.IsLdImm64() && b.IsLdImm64()
			}
			if a.IsCall() || a.IsTailCall() {
				return b.Op == ir.OpCall
			}
			return a.Op == b.Op && a.Dst == b.Dst && a.Src == b.Src && (a.IsJumpWithOffset() || a.Class().IsLoadStore() || a.Imm == b.Imm)
		}
		// The regions' own jumps that leave them are in final
		// coordinates; later patches would move them again.
		leaves := func(k, slot int) bool {
			ins := x.Insns[slot]
			if !(ins.IsJumpWithOffset() || ins.IsPseudoCall()) {
				return false
			}
			d := ins.JumpDelta()
			if ins.IsPseudoCall() {
				d = int64(ins.Off)
			}
			tgt := slot + 1 + int(d)
			return tgt < g.Linfo[k] || tgt >= end(k)
		}
		p := src.Clone()
		for k := len(starts) - 1; k >= 0; k-- {
			if inPlace(k) {
				continue
			}
			repl := append([]ir.Instruction(nil), x.Insns[g.Linfo[k]:end(k)]...)
			if err := p.Patch(starts[k], repl); err != nil {
				t.Fatalf("%s: patch %d: %v", g.Name, starts[k], err)
			}
			patched++
		}
		if p.Len() != x.Len() {
			t.Fatalf("%s: %d slots after patching, kernel has %d", g.Name, p.Len(), x.Len())
		}
		for k := range starts {
			at := g.Linfo[k]
			if p.Aux[at].OrigIndex != int32(starts[k]) {
				t.Errorf("%s: slot %d has OrigIndex %d, want %d", g.Name, at, p.Aux[at].OrigIndex, starts[k])
			}
			if inPlace(k) {
				ours, theirs := p.Insns[at], x.Insns[at]
				switch {
				case ours.IsPseudoCall():
					// The dump keeps the callee's distance in off.
					if ours.Imm != int32(theirs.Off) {
						t.Errorf("%s: call at %d: distance %d, kernel %d", g.Name, at, ours.Imm, theirs.Off)
					}
				case ours.IsJumpWithOffset():
					if ours.JumpDelta() != theirs.JumpDelta() {
						t.Errorf("%s: jump at %d (source %d): distance %d, kernel %d", g.Name, at, starts[k], ours.JumpDelta(), theirs.JumpDelta())
					}
				}
				checked++
				continue
			}
			for slot := at; slot < end(k); slot++ {
				if leaves(k, slot) {
					continue
				}
				if p.Insns[slot] != x.Insns[slot] {
					t.Errorf("%s: slot %d: %+v, kernel %+v", g.Name, slot, p.Insns[slot], x.Insns[slot])
				}
				checked++
			}
		}
	}
	t.Logf("replayed %d kernel patches; %d slots checked against the kernel", patched, checked)
}

const deadSource = `
	mov %r6, %r1
	ldxw %r2, [%r6+0]
	mov %r0, 0
	mov %r3, 0
	jne %r3, 0, +3
	ja +3
	mov %r0, 1
	exit
	mov %r0, 99
	jgt %r2, 10, -4
	jne %r3, 0, +3
	jgt %r2, 20, +3
	mov %r0, 2
	ja +1
	mov %r0, 98
	exit`

// TestRemoveMatchesKernel replays the verifier's dead-code passes on the
// "dead" capture with Patch and Remove, in the kernel's order
// (opt_hard_wire_dead_code_branches, opt_remove_dead_code low to high,
// opt_remove_nops), and compares with the kernel's xlated program.
func TestRemoveMatchesKernel(t *testing.T) {
	var g *xlatedGolden
	for _, x := range readGoldens(t) {
		if x.Name == "dead" {
			x := x
			g = &x
		}
	}
	if g == nil {
		t.Skip("no dead-code capture")
	}
	p := hexProgram(t, g.Source)
	want := hexProgram(t, g.Xlated)
	// Instructions 4 and 10 (jne r3, 0) are never taken: hard-wired to
	// ja +0.
	for _, i := range []int{4, 10} {
		if err := p.Patch(i, []ir.Instruction{{Op: ir.OpJA}}); err != nil {
			t.Fatal(err)
		}
	}
	// Dead: 8 and 14, removed from low to high as the kernel does (14 is
	// 13 once 8 is gone).
	for _, i := range []int{8, 13} {
		if err := p.Remove(i, 1); err != nil {
			t.Fatal(err)
		}
	}
	// opt_remove_nops: every "ja +0", including the one the removal of 14
	// made out of the "ja +1" over it.
	nops := 0
	for i := 0; i < p.Len(); i++ {
		if p.Insns[i] == (ir.Instruction{Op: ir.OpJA}) {
			if err := p.Remove(i, 1); err != nil {
				t.Fatal(err)
			}
			nops++
			i--
		}
	}
	if nops != 3 {
		t.Errorf("removed %d nops, want 3", nops)
	}
	if p.Len() != want.Len() {
		t.Fatalf("%d slots, kernel %d\nours:\n%s\nkernel:\n%s", p.Len(), want.Len(), p, want)
	}
	for i := range p.Insns {
		a, b := p.Insns[i], want.Insns[i]
		if i == 1 { // the ctx load is rewritten in place (skb->len)
			a.Off = b.Off
		}
		if a != b {
			t.Errorf("slot %d: ours %q, kernel %q", i, p.Format(i), want.Format(i))
		}
	}
}
