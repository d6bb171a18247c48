package passes

// Test helpers: read a clang object into ir.Program (through cilium/ebpf's
// ELF reader, which links .text functions into each program), and load it
// into the live kernel with raw bpf() calls (cilium's encoder drops the
// addr_space_cast offset, so loading goes through our own encoding).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/ir"
	irelf "github.com/bpfc/bpfc/ir/elf"
)

// objProg is one program of an object: the flattened instructions with
// symbols on the aux entries, plus what a kernel load needs.
type objProg struct {
	Name     string
	Prog     *ir.Program
	FuncInfo []funcInfo // slot -> BTF func
	// Maps are the object's maps by the names the aux symbols use.
	Maps map[string]*ebpf.MapSpec
	// ArenaGlobals is the size of the .addr_space.1 section (0: none).
	ArenaGlobals int
	// Type is the program type from the section name.
	Type ebpf.ProgramType
}

type funcInfo struct {
	Slot int
	Func *btf.Func
}

// readObject reads all programs of a clang object.
func readObject(path string) ([]*objProg, error) {
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		// cilium/ebpf refuses arena globals: read those through ir/elf.
		return readObjectIRElf(path)
	}
	names := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*objProg
	for _, n := range names {
		ps := spec.Programs[n]
		op, err := convertInsns(ps.Name, ps.Instructions)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		op.Maps = spec.Maps
		op.Type = ps.Type
		out = append(out, op)
	}
	return out, nil
}

func convertInsns(name string, insns asm.Instructions) (*objProg, error) {
	// Slot offsets of symbols.
	sym := map[string]int{}
	slot := 0
	for i := range insns {
		if s := insns[i].Symbol(); s != "" {
			sym[s] = slot
		}
		slot += int(insns[i].Width())
	}
	var raw []ir.Instruction
	var aux []ir.Aux
	op := &objProg{Name: name}
	for i := range insns {
		ins := insns[i]
		at := len(raw)
		if fn := btf.FuncMetadata(&ins); fn != nil {
			op.FuncInfo = append(op.FuncInfo, funcInfo{Slot: at, Func: fn})
		}
		var bb bytes.Buffer
		cp := ins
		cp.Metadata = asm.Metadata{}
		n, err := cp.Marshal(&bb, binary.LittleEndian)
		if err != nil {
			return nil, fmt.Errorf("instruction %d: %w", at, err)
		}
		buf := bb.Bytes()
		slots := make([]ir.Instruction, n/8)
		for k := range slots {
			b := buf[k*8:]
			slots[k] = ir.Instruction{Op: b[0], Dst: ir.Register(b[1] & 0xf), Src: ir.Register(b[1] >> 4),
				Off: int16(binary.LittleEndian.Uint16(b[2:])), Imm: int32(binary.LittleEndian.Uint32(b[4:]))}
		}
		if ins.OpCode.Class().IsALU() && ins.OpCode.ALUOp() == asm.Mov && ins.Offset != 0 {
			slots[0].Off = ins.Offset // cilium drops the addr_space_cast offset
		}
		a := make([]ir.Aux, len(slots))
		for k := range a {
			a[k].OrigIndex = int32(at + k)
		}
		if fn := btf.FuncMetadata(&ins); fn != nil {
			a[0].ArgArena = argArenaOf(fn)
			a[0].GlobalFunc = at > 0 && fn.Linkage == btf.GlobalFunc
		}
		switch {
		case ins.IsFunctionReference():
			t, ok := sym[ins.Reference()]
			if !ok {
				return nil, fmt.Errorf("instruction %d: unknown function %q", at, ins.Reference())
			}
			slots[0].Imm = int32(t - (at + 1))
			a[0].Symbol, a[0].SymbolKind = ins.Reference(), ir.SymFunc
		case ins.IsLoadFromMap():
			slots[0].Imm = 0
			a[0].Symbol, a[0].SymbolKind = ins.Reference(), ir.SymMap
		case ins.IsKfuncCall():
			slots[0].Imm = 0
			a[0].Symbol, a[0].SymbolKind = ins.Reference(), ir.SymKfunc
		}
		raw = append(raw, slots...)
		aux = append(aux, a...)
	}
	p := &ir.Program{Name: name, Insns: raw, Aux: aux}
	if err := ir.Validate(p, ir.DecodeOptions{}); err != nil {
		return nil, err
	}
	op.Prog = p
	return op, nil
}

// ---- live kernel ----

const (
	bpfMapCreate     = 0
	bpfProgLoad      = 5
	bpfObjGetInfoFD  = 15
	progTypeSyscall  = 31
	flagSleepable    = 1 << 4
	flagTestRndHi32  = 1 << 2
	progTypeSocketFl = 1
)

func bpfSys(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	runtime.KeepAlive(attr)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// kernelAvailable reports why BPF cannot be used, or "".
func kernelAvailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	// A trivial socket filter: r0 = 0; exit.
	_, err := loadRaw(progTypeSocketFl, 0, []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, nil, nil)
	if err != nil {
		return "bpf() prog load fails: " + err.Error()
	}
	return ""
}

type loadExtra struct {
	BTFFD    int
	FuncInfo []uint32 // pairs insn_off, type_id
}

// loadRaw loads program bytes; returns the fd.
func loadRaw(typ uint32, flags uint32, code []byte, extra *loadExtra, log *[]byte) (int, error) {
	license := []byte("GPL\x00")
	attr := make([]byte, 160)
	le := binary.LittleEndian
	le.PutUint32(attr[0:], typ)
	le.PutUint32(attr[4:], uint32(len(code)/8))
	le.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&code[0]))))
	le.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	var logbuf []byte
	if log != nil {
		logbuf = make([]byte, 1<<22)
		le.PutUint32(attr[24:], 1)
		le.PutUint32(attr[28:], uint32(len(logbuf)))
		le.PutUint64(attr[32:], uint64(uintptr(unsafe.Pointer(&logbuf[0]))))
	}
	le.PutUint32(attr[44:], flags)
	copy(attr[48:64], "bpfc_test")
	var fi []uint32
	if extra != nil && extra.BTFFD > 0 {
		le.PutUint32(attr[72:], uint32(extra.BTFFD))
		fi = extra.FuncInfo
		if len(fi) > 0 {
			le.PutUint32(attr[76:], 8)
			le.PutUint64(attr[80:], uint64(uintptr(unsafe.Pointer(&fi[0]))))
			le.PutUint32(attr[88:], uint32(len(fi)/2))
		}
	}
	fd, err := bpfSys(bpfProgLoad, unsafe.Pointer(&attr[0]), uintptr(len(attr)))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(fi)
	if log != nil {
		n := 0
		for n < len(logbuf) && logbuf[n] != 0 {
			n++
		}
		*log = logbuf[:n]
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// progInfo is what the kernel reports about a loaded program.
type progInfo struct {
	Xlated   []byte
	Jited    []byte
	Ksyms    []uint64
	FuncLens []uint32
}

func getInfo(fd int) (*progInfo, error) {
	le := binary.LittleEndian
	info := make([]byte, 232)
	get := func() error {
		attr := make([]byte, 16)
		le.PutUint32(attr[0:], uint32(fd))
		le.PutUint32(attr[4:], uint32(len(info)))
		le.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&info[0]))))
		_, err := bpfSys(bpfObjGetInfoFD, unsafe.Pointer(&attr[0]), 16)
		runtime.KeepAlive(info)
		return err
	}
	if err := get(); err != nil {
		return nil, err
	}
	jl, xl := le.Uint32(info[16:]), le.Uint32(info[20:])
	nk, nf := le.Uint32(info[104:]), le.Uint32(info[108:])
	pi := &progInfo{Xlated: make([]byte, xl), Jited: make([]byte, jl), Ksyms: make([]uint64, nk), FuncLens: make([]uint32, nf)}
	if jl == 0 || xl == 0 {
		return nil, errors.New("no jited/xlated bytes (kptr_restrict?)")
	}
	for i := range info {
		info[i] = 0
	}
	le.PutUint32(info[16:], jl)
	le.PutUint32(info[20:], xl)
	le.PutUint64(info[24:], uint64(uintptr(unsafe.Pointer(&pi.Jited[0]))))
	le.PutUint64(info[32:], uint64(uintptr(unsafe.Pointer(&pi.Xlated[0]))))
	le.PutUint32(info[104:], nk)
	le.PutUint32(info[108:], nf)
	if nk > 0 {
		le.PutUint64(info[112:], uint64(uintptr(unsafe.Pointer(&pi.Ksyms[0]))))
	}
	if nf > 0 {
		le.PutUint64(info[120:], uint64(uintptr(unsafe.Pointer(&pi.FuncLens[0]))))
	}
	err := get()
	runtime.KeepAlive(pi)
	return pi, err
}

// argArenaOf returns the arguments of a global function tagged arg:arena.
func argArenaOf(fn *btf.Func) ir.RegSet {
	var set ir.RegSet
	if fn.Linkage != btf.GlobalFunc {
		return 0
	}
	for i, tags := range fn.ParamTags {
		for _, t := range tags {
			if t == "arg:arena" && i < 5 {
				set = set.Add(ir.Register(i + 1))
			}
		}
	}
	return set
}

func closeFD(fd int) { unix.Close(fd) }

// readObjectIRElf reads an object with the project's loader (ir/elf), for
// what cilium/ebpf cannot read (arena globals).
func readObjectIRElf(path string) ([]*objProg, error) {
	obj, err := irelf.Load(path)
	if err != nil {
		return nil, err
	}
	maps := map[string]*ebpf.MapSpec{}
	for _, m := range obj.Maps {
		maps[m.Name] = &ebpf.MapSpec{Name: m.Name, Type: m.Type, KeySize: m.KeySize, ValueSize: m.ValueSize,
			MaxEntries: m.MaxEntries, Flags: m.Flags, MapExtra: m.MapExtra}
	}
	var out []*objProg
	for _, pr := range obj.Programs {
		op := &objProg{Name: pr.Name, Prog: pr.Prog.Clone(), Maps: maps, Type: pr.Type}
		if obj.Arena != nil {
			op.ArenaGlobals = obj.Arena.Size
		}
		starts := make([]int, 0, len(pr.Funcs))
		for s := range pr.Funcs {
			starts = append(starts, s)
		}
		sort.Ints(starts)
		for _, s := range starts {
			var fn *btf.Func
			if obj.BTF == nil || obj.BTF.TypeByName(pr.Funcs[s], &fn) != nil {
				return nil, fmt.Errorf("%s: no BTF for function %s", path, pr.Funcs[s])
			}
			op.FuncInfo = append(op.FuncInfo, funcInfo{Slot: s, Func: fn})
		}
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
