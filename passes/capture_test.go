package passes

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/ir"
)

var captureFlag = flag.Bool("capture", false, "load the testdata/arena objects into the live kernel and rewrite their captures")

const arenaDir = "../testdata/arena"

// arenaCapture is what the live kernel made of one arena program.
type arenaCapture struct {
	Object  string `json:"object"`
	Program string `json:"program"`
	// Error is set when the kernel rejected the program.
	Error string `json:"error,omitempty"`
	// Xlated is the verifier's output; XlatedRnd the same program loaded
	// with BPF_F_TEST_RND_HI32.
	Xlated    string   `json:"xlated"`
	XlatedRnd string   `json:"xlated_rnd"`
	Jited     string   `json:"jited"`
	Ksyms     []uint64 `json:"ksyms"`
	FuncLens  []uint32 `json:"func_lens"`
	CallBase  uint64   `json:"call_base"`
	// Addrs holds the address of every map and kfunc symbol the program uses.
	Addrs       map[string]uint64 `json:"addrs"`
	KernVMStart uint64            `json:"kern_vm_start"`
	UserVMStart uint64            `json:"user_vm_start"`
	// MapIDs are the kernel's IDs of the maps (the xlated dump shows them
	// in map loads).
	MapIDs map[string]uint32 `json:"map_ids,omitempty"`
}

func kallsyms(names ...string) (map[string]uint64, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && want[fs[2]] {
			if _, seen := out[fs[2]]; !seen {
				v, _ := strconv.ParseUint(fs[0], 16, 64)
				out[fs[2]] = v
			}
		}
	}
	for _, n := range names {
		if out[n] == 0 {
			return nil, fmt.Errorf("kallsyms: no address for %s (kptr_restrict?)", n)
		}
	}
	return out, nil
}

// movabsTargets decodes the image and returns the imm64 of every movabs, by
// destination register.
func movabsTargets(code []byte) (r12 []uint64, other []uint64) {
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			off++
			continue
		}
		if inst.Op == x86asm.MOV && inst.Len == 10 {
			if reg, ok := inst.Args[0].(x86asm.Reg); ok {
				if imm, ok := inst.Args[1].(x86asm.Imm); ok {
					if reg == x86asm.R12 {
						r12 = append(r12, uint64(imm))
					} else {
						other = append(other, uint64(imm))
					}
				}
			}
		}
		off += inst.Len
	}
	return
}

// mapFuncs are the map types' functions the verifier calls for map helpers.
var mapFuncs = KernelSymbols[2:]

// genericHelpers are the functions behind the map helpers when the
// verifier cannot send them to a map type.
var genericHelpers = map[int32]string{1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem"}

// captureProgram loads one program twice (plain and RND_HI32) and records
// what the kernel made of it.
func captureProgram(t *testing.T, obj string, op *objProg, kspec *btf.Spec) *arenaCapture {
	c := &arenaCapture{Object: obj, Program: op.Name, Addrs: map[string]uint64{}}
	p := op.Prog.Clone()
	// Maps.
	maps := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	var kfuncs []string
	for i := range p.Insns {
		a := p.Aux[i]
		switch a.SymbolKind {
		case ir.SymMap:
			m, ok := maps[a.Symbol]
			if !ok {
				ms := op.Maps[a.Symbol]
				if ms == nil {
					c.Error = "no map " + a.Symbol
					return c
				}
				var err error
				m, err = ebpf.NewMap(ms)
				if err != nil {
					c.Error = fmt.Sprintf("map %s: %v", a.Symbol, err)
					return c
				}
				maps[a.Symbol] = m
				if mi, err := m.Info(); err == nil {
					if id, ok := mi.ID(); ok {
						if c.MapIDs == nil {
							c.MapIDs = map[string]uint32{}
						}
						c.MapIDs[a.Symbol] = uint32(id)
					}
				}
				if ms.Type == ebpf.Arena {
					c.UserVMStart = ms.MapExtra
				}
			}
			p.Insns[i].Imm = int32(m.FD())
		case ir.SymArena:
			// libbpf: the arena map's value, at the end of the arena.
			var am *ebpf.Map
			var ams *ebpf.MapSpec
			for name, ms := range op.Maps {
				if ms.Type == ebpf.Arena {
					ams = ms
					if m, ok := maps[name]; ok {
						am = m
					} else {
						m, err := ebpf.NewMap(ms)
						if err != nil {
							c.Error = fmt.Sprintf("map %s: %v", name, err)
							return c
						}
						maps[name] = m
						am = m
					}
					c.UserVMStart = ms.MapExtra
				}
			}
			if am == nil {
				c.Error = "arena global without an arena map"
				return c
			}
			dataOff := int(ams.MaxEntries)*4096 - (op.ArenaGlobals+4095)&^4095
			p.Insns[i].Imm = int32(am.FD())
			p.Insns[i+1].Imm += int32(dataOff)
			c.Addrs[a.Symbol] = ams.MapExtra + uint64(dataOff)
		case ir.SymKfunc:
			var fn *btf.Func
			if err := kspec.TypeByName(a.Symbol, &fn); err != nil {
				c.Error = fmt.Sprintf("kfunc %s: %v", a.Symbol, err)
				return c
			}
			id, err := kspec.TypeID(fn)
			if err != nil {
				c.Error = err.Error()
				return c
			}
			p.Insns[i].Imm = int32(id)
			kfuncs = append(kfuncs, a.Symbol)
		}
	}
	extra := &loadExtra{}
	if len(op.FuncInfo) > 0 {
		b, err := btf.NewBuilder(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range op.FuncInfo {
			id, err := b.Add(fi.Func)
			if err != nil {
				t.Fatal(err)
			}
			extra.FuncInfo = append(extra.FuncInfo, uint32(fi.Slot), uint32(id))
		}
		raw, err := b.Marshal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// cilium/ebpf does not write Func.ParamTags out: add the
		// arg:arena decl tags the verifier reads.
		for k, fi := range op.FuncInfo {
			for arg, tags := range fi.Func.ParamTags {
				for _, tag := range tags {
					raw = appendDeclTag(raw, extra.FuncInfo[2*k+1], int32(arg), tag)
				}
			}
		}
		h, err := btf.NewHandleFromRawBTF(raw)
		if err != nil {
			t.Fatalf("%s: BTF: %v", obj, err)
		}
		defer h.Close()
		extra.BTFFD = h.FD()
	}
	code := ir.Encode(p)
	var log []byte
	typ, flags := uint32(progTypeSyscall), uint32(flagSleepable)
	if op.Type == ebpf.Kprobe {
		typ, flags = 2, 0 // BPF_PROG_TYPE_KPROBE
	}
	fd, err := loadRaw(typ, flags, code, extra, nil)
	if err != nil {
		loadRaw(typ, flags, code, extra, &log)
		if os.Getenv("BPFC_VERBOSE") != "" {
			t.Logf("%s", log)
		}
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		c.Error = fmt.Sprintf("load: %v: %s", err, strings.Join(lines, " | "))
		return c
	}
	defer unix.Close(fd)
	info, err := getInfo(fd)
	if err != nil {
		t.Fatal(err)
	}
	fd2, err := loadRaw(typ, flags|flagTestRndHi32, code, extra, nil)
	if err != nil {
		t.Fatalf("%s: RND_HI32 load: %v", obj, err)
	}
	defer unix.Close(fd2)
	info2, err := getInfo(fd2)
	if err != nil {
		t.Fatal(err)
	}
	c.Xlated = hex.EncodeToString(info.Xlated)
	c.XlatedRnd = hex.EncodeToString(info2.Xlated)
	c.Jited = hex.EncodeToString(info.Jited)
	c.Ksyms = info.Ksyms
	c.FuncLens = info.FuncLens
	fixed := []string{"__bpf_call_base", MayGotoSymbol}
	fixed = append(fixed, mapFuncs...)
	for _, fn := range genericHelpers {
		fixed = append(fixed, fn)
	}
	ks, err := kallsyms(append(fixed, kfuncs...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.CallBase = ks["__bpf_call_base"]
	for _, n := range fixed[1:] {
		c.Addrs[n] = ks[n]
	}
	for id, fn := range genericHelpers {
		c.Addrs[HelperSymbol(id)] = ks[fn]
	}
	for _, k := range kfuncs {
		c.Addrs[k] = ks[k]
	}
	// Addresses of what the verifier inlined (not in kallsyms): read back
	// from the xlated program (cpu_number's per-cpu address in a mov, the
	// address of jiffies in a ld_imm64 followed by a 64-bit load of r0).
	for k := 0; k+3 <= len(info.Xlated)/8; k++ {
		ins := func(j int) ir.Instruction {
			b := info.Xlated[(k+j)*8:]
			return ir.Instruction{Op: b[0], Dst: ir.Register(b[1] & 0xf), Src: ir.Register(b[1] >> 4),
				Off: int16(binary.LittleEndian.Uint16(b[2:])), Imm: int32(binary.LittleEndian.Uint32(b[4:]))}
		}
		a, b, c2 := ins(0), ins(1), ins(2)
		if a.Op == 0xb7 && a.Dst == ir.R0 && b.IsPerCPUAddr() && b.Dst == ir.R0 {
			c.Addrs[CPUNumberSymbol] = uint64(uint32(a.Imm))
		}
		if a.IsLdImm64() && a.Dst == ir.R0 && a.Src == 0 && c2.Op == 0x79 && c2.Dst == ir.R0 && c2.Src == ir.R0 && c2.Off == 0 {
			c.Addrs[JiffiesSymbol] = ir.Imm64(a, b)
		}
	}
	r12, other := movabsTargets(info.Jited)
	if len(r12) > 0 {
		c.KernVMStart = r12[0]
	}
	k := 0
	for i := range p.Insns {
		switch {
		case p.Aux[i].SymbolKind == ir.SymMap && k < len(other):
			c.Addrs[p.Aux[i].Symbol] = other[k]
			k++
		case p.Aux[i].SymbolKind == ir.SymArena:
			k++ // a movabs of the user address
		}
	}
	return c
}

// arenaObjects lists the compiled test objects.
func arenaObjects(t *testing.T) []string {
	objs, err := filepath.Glob(filepath.Join(arenaDir, "*.o"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("no objects in %s (run build.sh): %v", arenaDir, err)
	}
	return objs
}

func captureName(obj, prog string) string {
	return strings.TrimSuffix(obj, ".o") + "." + prog + ".json"
}

// TestCaptureArena rewrites testdata/arena/*.json from the live kernel
// (go test ./passes -run TestCaptureArena -capture).
func TestCaptureArena(t *testing.T) {
	if !*captureFlag {
		t.Skip("captures are rewritten only with -capture")
	}
	if why := kernelAvailable(); why != "" {
		t.Skip(why)
	}
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skip("no kernel BTF: ", err)
	}
	for _, obj := range arenaObjects(t) {
		progs, err := readObject(obj)
		if err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
		for _, op := range progs {
			c := captureProgram(t, filepath.Base(obj), op, kspec)
			if c.Error != "" {
				t.Errorf("%s/%s: %s", obj, op.Name, c.Error)
			}
			b, _ := json.MarshalIndent(c, "", "  ")
			if err := os.WriteFile(captureName(obj, op.Name), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// loadCaptures reads every committed capture with its object's program.
func loadCaptures(t *testing.T) []captured {
	var out []captured
	for _, obj := range arenaObjects(t) {
		progs, err := readObject(obj)
		if err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
		for _, op := range progs {
			b, err := os.ReadFile(captureName(obj, op.Name))
			if err != nil {
				t.Fatalf("%s: no capture (go test ./passes -run TestCaptureArena -capture): %v", obj, err)
			}
			var c arenaCapture
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, captured{op: op, c: &c})
		}
	}
	return out
}

type captured struct {
	op *objProg
	c  *arenaCapture
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendDeclTag appends a BTF_KIND_DECL_TAG type (tag on argument arg of
// the type id target) to raw BTF, adding its string.
func appendDeclTag(raw []byte, target uint32, arg int32, tag string) []byte {
	le := binary.LittleEndian
	hdrLen := le.Uint32(raw[4:])
	typeOff, typeLen := le.Uint32(raw[8:]), le.Uint32(raw[12:])
	strOff, strLen := le.Uint32(raw[16:]), le.Uint32(raw[20:])
	hdr := raw[:hdrLen]
	types := raw[hdrLen+typeOff : hdrLen+typeOff+typeLen]
	strs := raw[hdrLen+strOff : hdrLen+strOff+strLen]
	nameOff := uint32(len(strs))
	var rec [16]byte
	le.PutUint32(rec[0:], nameOff)
	le.PutUint32(rec[4:], 17<<24) // BTF_KIND_DECL_TAG, vlen 0
	le.PutUint32(rec[8:], target)
	le.PutUint32(rec[12:], uint32(arg))
	out := append([]byte(nil), hdr...)
	newTypes := append(append([]byte(nil), types...), rec[:]...)
	newStrs := append(append(append([]byte(nil), strs...), tag...), 0)
	le.PutUint32(out[8:], 0)
	le.PutUint32(out[12:], uint32(len(newTypes)))
	le.PutUint32(out[16:], uint32(len(newTypes)))
	le.PutUint32(out[20:], uint32(len(newStrs)))
	out = append(out, newTypes...)
	return append(out, newStrs...)
}
