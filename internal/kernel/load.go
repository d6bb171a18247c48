package kernel

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/ir"
)

// ProgType is a BPF program type (enum bpf_prog_type).
type ProgType uint32

const (
	SocketFilter ProgType = 1
	SchedCLS     ProgType = 3
	XDP          ProgType = 6
	Syscall      ProgType = 31
)

var progTypeNames = map[ProgType]string{
	SocketFilter: "socket_filter",
	SchedCLS:     "sched_cls",
	XDP:          "xdp",
	Syscall:      "syscall",
}

func (t ProgType) String() string {
	if s, ok := progTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("prog_type(%d)", uint32(t))
}

// ParseProgType accepts the names String returns.
func ParseProgType(s string) (ProgType, error) {
	for t, n := range progTypeNames {
		if n == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown program type %q (want socket_filter, sched_cls, xdp or syscall)", s)
}

// MapType is a BPF map type (enum bpf_map_type).
type MapType uint32

const (
	MapHash      MapType = 1
	MapArray     MapType = 2
	MapProgArray MapType = 3
	MapArena     MapType = 33
)

// MapDef describes a map a program uses. Programs refer to map k of
// Spec.Maps with ld_imm64 src_reg = ir.PseudoMapIdx (map) or
// ir.PseudoMapIdxValue (address of the value, second imm = offset), imm = k;
// the maps are passed in fd_array.
type MapDef struct {
	Type       MapType `json:"type"`
	KeySize    uint32  `json:"key_size,omitempty"`
	ValueSize  uint32  `json:"value_size,omitempty"`
	MaxEntries uint32  `json:"max_entries"`
	Flags      uint32  `json:"flags,omitempty"`
	// Extra is map_extra; for an arena, the user address (0: let mmap choose).
	Extra uint64 `json:"map_extra,omitempty"`
}

// Spec is a program to load into the live kernel.
type Spec struct {
	Name string
	Type ProgType
	// Flags are extra prog_flags; Syscall programs always get FlagSleepable.
	Flags uint32
	// Program holds the instructions exactly as they are loaded (ir.Encode).
	// Calls with src_reg ir.CallKfunc whose Aux.SymbolKind is ir.SymKfunc are
	// resolved by name to the kernel's BTF id at load time.
	Program *ir.Program
	Maps    []MapDef
	// FuncDecls describe functions for BTF func info, by first instruction
	// (functions not listed are static `int f(void)`): global functions are
	// verified on their own, and their arena arguments (`arg:arena` decl
	// tags) arrive as arena pointers.
	FuncDecls map[int]FuncDecl
	// MapFDs are maps the caller already has; they follow the maps created
	// from Maps in fd_array (index len(Maps)+k). The caller keeps them open.
	MapFDs []int
	// NoLineInfo loads without BTF line info (by default every instruction
	// gets one record, which yields the exact BPF->x86 offset map).
	NoLineInfo bool
	// License defaults to "GPL".
	License string
}

// Loaded is a program loaded into the kernel, with its maps.
type Loaded struct {
	Spec   *Spec
	FD     int
	Maps   []*ebpf.Map
	btfFD  int
	arenas []arenaMem
	// UserVMStart is the user address of the program's arena (0 without one).
	UserVMStart uint64
	// Log is the verifier log when the load failed and was retried with one.
	Log string
}

type arenaMem struct {
	addr unsafe.Pointer // outside the Go heap (mmap)
	size uintptr
}

// addrPtr turns an address outside the Go heap (a fixed mmap address) into
// a pointer.
func addrPtr(a uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&a)) }

// Close releases the program, its maps and arena mappings.
func (l *Loaded) Close() error {
	if l == nil {
		return nil
	}
	if l.FD >= 0 {
		unix.Close(l.FD)
		l.FD = -1
	}
	if l.btfFD > 0 {
		unix.Close(l.btfFD)
		l.btfFD = -1
	}
	for _, a := range l.arenas {
		unix.MunmapPtr(a.addr, a.size)
	}
	l.arenas = nil
	for _, m := range l.Maps {
		m.Close()
	}
	l.Maps = nil
	return nil
}

// ArenaMemory returns the user view of the program's arena (nil without
// one). Writing to it allocates pages, as a user page fault does.
func (l *Loaded) ArenaMemory() []byte {
	if len(l.arenas) == 0 {
		return nil
	}
	a := l.arenas[0]
	return unsafe.Slice((*byte)(a.addr), a.size)
}

// LoadError is a program the verifier (or the loader) rejected.
type LoadError struct {
	Name string
	Err  error
	Log  string
}

func (e *LoadError) Error() string {
	s := fmt.Sprintf("load %s: %v", e.Name, e.Err)
	if e.Log != "" {
		lines := strings.Split(strings.TrimSpace(e.Log), "\n")
		if len(lines) > 12 {
			lines = lines[len(lines)-12:]
		}
		s += "\nverifier log (tail):\n" + strings.Join(lines, "\n")
	}
	return s
}

func (e *LoadError) Unwrap() error { return e.Err }

const pageSize = 4096

// Load creates the spec's maps and loads its program. The caller must Close
// the result.
func Load(spec *Spec) (*Loaded, error) {
	if spec.Program == nil || len(spec.Program.Insns) == 0 {
		return nil, &LoadError{Name: spec.Name, Err: fmt.Errorf("empty program")}
	}
	l := &Loaded{Spec: spec, FD: -1}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	if err := l.createMaps(); err != nil {
		return nil, &LoadError{Name: spec.Name, Err: err}
	}
	insns := append([]ir.Instruction(nil), spec.Program.Insns...)
	if err := resolveKfuncs(spec.Program, insns); err != nil {
		return nil, &LoadError{Name: spec.Name, Err: err}
	}
	p := &ir.Program{Insns: insns}
	code := ir.Encode(p)

	fds := make([]int32, 0, len(l.Maps)+len(spec.MapFDs))
	for _, m := range l.Maps {
		fds = append(fds, int32(m.FD()))
	}
	for _, fd := range spec.MapFDs {
		fds = append(fds, int32(fd))
	}
	license := spec.License
	if license == "" {
		license = "GPL"
	}
	lic := append([]byte(license), 0)
	flags := spec.Flags
	if spec.Type == Syscall {
		flags |= FlagSleepable
	}
	attr := progLoadAttr{
		progType:  uint32(spec.Type),
		insnCnt:   uint32(len(insns)),
		insns:     ptr(code),
		license:   ptr(lic),
		progFlags: flags,
	}
	copy(attr.progName[:15], sanitizeName(spec.Name))
	if len(fds) > 0 {
		attr.fdArray = ptr(fds)
	}
	var linfo, funcInfo []byte
	if !spec.NoLineInfo {
		starts := funcStarts(insns)
		blob, recs, finfo := lineInfoBTF(insns, starts, spec.FuncDecls)
		fd, err := loadBTF(blob)
		if err != nil {
			return nil, &LoadError{Name: spec.Name, Err: err}
		}
		l.btfFD = fd
		linfo = recs
		attr.progBTFFd = uint32(fd)
		attr.lineInfoRecSize = lineInfoRecSize
		attr.lineInfo = ptr(linfo)
		attr.lineInfoCnt = uint32(len(linfo) / lineInfoRecSize)
		if len(starts) > 1 || len(spec.FuncDecls) > 0 {
			// Tail calls in subprograms need BTF func info.
			funcInfo = finfo
			attr.funcInfoRecSize = funcInfoRecSize
			attr.funcInfo = ptr(funcInfo)
			attr.funcInfoCnt = uint32(len(starts))
		}
	}
	fd, err := bpf(cmdProgLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		// Retry with a log to explain the rejection (a log that overflows
		// makes the load fail with ENOSPC, so only do this on failure).
		log := make([]byte, 4<<20)
		attr.logLevel = 1
		attr.logBuf = ptr(log)
		attr.logSize = uint32(len(log))
		_, err2 := bpf(cmdProgLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(log)
		if err2 == nil {
			err2 = err
		}
		return nil, &LoadError{Name: spec.Name, Err: fmt.Errorf("BPF_PROG_LOAD: %w", err2), Log: cstring(log)}
	}
	runtime.KeepAlive(code)
	runtime.KeepAlive(lic)
	runtime.KeepAlive(fds)
	runtime.KeepAlive(linfo)
	runtime.KeepAlive(funcInfo)
	l.FD = fd
	ok = true
	return l, nil
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() == 15 {
			break
		}
		if c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (l *Loaded) createMaps() error {
	for i, d := range l.Spec.Maps {
		ms := &ebpf.MapSpec{
			Type:       ebpf.MapType(d.Type),
			KeySize:    d.KeySize,
			ValueSize:  d.ValueSize,
			MaxEntries: d.MaxEntries,
			Flags:      d.Flags,
			MapExtra:   d.Extra,
		}
		if d.Type == MapArena {
			ms.Flags |= unix.BPF_F_MMAPABLE
		}
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return fmt.Errorf("map %d (%d): %w", i, d.Type, err)
		}
		l.Maps = append(l.Maps, m)
		if d.Type == MapArena {
			// The arena's user address must be set before the program
			// loads: mmap it now (at map_extra when given).
			size := uintptr(d.MaxEntries) * pageSize
			var hint unsafe.Pointer
			flags := unix.MAP_SHARED
			if d.Extra != 0 {
				hint = addrPtr(uintptr(d.Extra))
				flags |= unix.MAP_FIXED_NOREPLACE
			}
			addr, err := unix.MmapPtr(m.FD(), 0, hint, size, unix.PROT_READ|unix.PROT_WRITE, flags)
			if err != nil {
				return fmt.Errorf("mmap arena map %d: %w", i, err)
			}
			l.arenas = append(l.arenas, arenaMem{addr: addr, size: size})
			if l.UserVMStart == 0 {
				l.UserVMStart = uint64(uintptr(addr))
			}
		}
	}
	return nil
}

var kernelBTF *btf.Spec

// resolveKfuncs rewrites the imm of kfunc calls named in aux to BTF ids.
func resolveKfuncs(p *ir.Program, insns []ir.Instruction) error {
	for i, ins := range insns {
		if !ins.IsKfuncCall() || i >= len(p.Aux) || p.Aux[i].SymbolKind != ir.SymKfunc {
			continue
		}
		if kernelBTF == nil {
			s, err := btf.LoadKernelSpec()
			if err != nil {
				return fmt.Errorf("kernel BTF: %w", err)
			}
			kernelBTF = s
		}
		var fn *btf.Func
		if err := kernelBTF.TypeByName(p.Aux[i].Symbol, &fn); err != nil {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("kfunc %s: %v", p.Aux[i].Symbol, err)}
		}
		id, err := kernelBTF.TypeID(fn)
		if err != nil {
			return &ir.Error{Index: i, Reason: fmt.Sprintf("kfunc %s: %v", p.Aux[i].Symbol, err)}
		}
		insns[i].Imm = int32(id)
	}
	return nil
}

// funcStarts returns the first instruction of every function: 0 and the
// targets of bpf-to-bpf calls and function-address loads, sorted.
func funcStarts(insns []ir.Instruction) []int {
	set := map[int]bool{0: true}
	for i := 0; i < len(insns); i++ {
		in := insns[i]
		if in.IsPseudoCall() || in.IsPseudoFunc() {
			if t := i + 1 + int(in.Imm); t > 0 && t < len(insns) {
				set[t] = true
			}
		}
		if in.IsLdImm64() {
			i++
		}
	}
	out := make([]int, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// FuncDecl is the BTF declaration of one function.
type FuncDecl struct {
	Global bool
	// Args is the number of arguments (u64 scalars, or arena pointers for
	// those listed in ArenaArgs).
	Args      int
	ArenaArgs []int
}

// Line and func info: one bpf_line_info record per instruction (second
// halves of ld_imm64 excluded, as the kernel requires), all pointing at one
// file name in a minimal BTF blob: an int, a u64, a pointer to int, a
// prototype per function and one FUNC per function (func_info, needed by
// multi-function programs), plus `arg:arena` decl tags.
const (
	lineInfoRecSize = 16
	funcInfoRecSize = 8
)

func lineInfoBTF(insns []ir.Instruction, starts []int, decls map[int]FuncDecl) (blob, recs, finfo []byte) {
	strs := []byte("\x00int\x00bpfc\x00insn\x00u64\x00arg:arena\x00a\x00")
	const offInt, offFile, offLine, offU64, offArena, offArg = 1, 5, 10, 15, 19, 29
	le := binary.LittleEndian
	var types []byte
	typ := func(name, info, sizeOrType uint32) {
		types = le.AppendUint32(types, name)
		types = le.AppendUint32(types, info)
		types = le.AppendUint32(types, sizeOrType)
	}
	// [1] INT "int": size 4, encoding signed 32 bits.
	typ(offInt, 1<<24, 4)
	types = le.AppendUint32(types, 1<<24|32)
	// [2] INT "u64".
	typ(offU64, 1<<24, 8)
	types = le.AppendUint32(types, 64)
	// [3] PTR to int.
	typ(0, 2<<24, 1)
	next := uint32(4)
	var tags []byte
	for k, st := range starts {
		d := decls[st]
		// FUNC_PROTO int (args...).
		proto := next
		typ(0, 13<<24|uint32(d.Args), 1)
		for a := 0; a < d.Args; a++ {
			t := uint32(2)
			for _, x := range d.ArenaArgs {
				if x == a {
					t = 3
				}
			}
			types = le.AppendUint32(types, offArg)
			types = le.AppendUint32(types, t)
		}
		next++
		// FUNC "f<k>", static or global.
		name := uint32(len(strs))
		strs = append(strs, fmt.Sprintf("f%d", k)...)
		strs = append(strs, 0)
		linkage := uint32(0)
		if d.Global {
			linkage = 1
		}
		fn := next
		typ(name, 12<<24|linkage, proto)
		next++
		finfo = le.AppendUint32(finfo, uint32(st))
		finfo = le.AppendUint32(finfo, fn)
		for _, a := range d.ArenaArgs {
			// DECL_TAG "arg:arena" on argument a of the function.
			tags = le.AppendUint32(tags, offArena)
			tags = le.AppendUint32(tags, 17<<24)
			tags = le.AppendUint32(tags, fn)
			tags = le.AppendUint32(tags, uint32(a))
		}
	}
	types = append(types, tags...)
	hdr := make([]byte, 0, 24)
	hdr = le.AppendUint16(hdr, 0xeB9F) // magic
	hdr = append(hdr, 1, 0)            // version, flags
	hdr = le.AppendUint32(hdr, 24)     // hdr_len
	hdr = le.AppendUint32(hdr, 0)      // type_off
	hdr = le.AppendUint32(hdr, uint32(len(types)))
	hdr = le.AppendUint32(hdr, uint32(len(types))) // str_off
	hdr = le.AppendUint32(hdr, uint32(len(strs)))
	blob = append(append(hdr, types...), strs...)
	for i := 0; i < len(insns); i++ {
		recs = le.AppendUint32(recs, uint32(i))
		recs = le.AppendUint32(recs, offFile)
		recs = le.AppendUint32(recs, offLine)
		recs = le.AppendUint32(recs, uint32(i+1)<<10) // line i+1, col 0
		if insns[i].IsLdImm64() {
			i++
		}
	}
	return blob, recs, finfo
}
