package ir_test

import (
	"bytes"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/internal/kernel"
	"github.com/bpfc/bpfc/ir"
)

// A minimal bpf() loader for the printer's captures: unlike
// internal/kernel.Load it keeps the level-2 verifier log of a successful
// load, the kernel's own print_bpf_insn output for every instruction it
// walks, which is the oracle for the verifier-log syntax.

// mapCreateAttr is the head of union bpf_attr for BPF_MAP_CREATE.
type mapCreateAttr struct {
	mapType, keySize, valueSize, maxEntries, mapFlags, innerMapFd, numaNode uint32
	name                                                                    [16]byte
	ifindex, btfFd, btfKeyTypeID, btfValueTypeID, btfVmlinuxValueTypeID     uint32
	mapExtra                                                                uint64
}

// progLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD, up to fd_array.
type progLoadAttr struct {
	progType, insnCnt                                 uint32
	insns, license                                    uint64
	logLevel, logSize                                 uint32
	logBuf                                            uint64
	kernVersion, progFlags                            uint32
	name                                              [16]byte
	ifindex, expectedAttachType, btfFd, funcInfoRecSz uint32
	funcInfo                                          uint64
	funcInfoCnt, lineInfoRecSz                        uint32
	lineInfo                                          uint64
	lineInfoCnt, attachBTFID, attachBTFObjFd, coreCnt uint32
	fdArray                                           uint64
}

// btfLoadAttr is the head of union bpf_attr for BPF_BTF_LOAD.
type btfLoadAttr struct {
	btf, logBuf                uint64
	size, logSize, logLevel, _ uint32
}

// funcInfoBTF builds BTF with one function per subprogram (the main one
// int f0(void *ctx), the others static int fN(int, int)) and the
// bpf_func_info records pointing at them: the verifier wants func_info for
// callbacks.
func funcInfoBTF(funcs []ir.Func) (blob []byte, recs []uint32, err error) {
	i32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, f := range funcs {
		link := btf.StaticFunc
		fp := &btf.FuncProto{Return: i32, Params: []btf.FuncParam{{Name: "a", Type: i32}, {Name: "b", Type: i32}}}
		if k == 0 {
			link = btf.GlobalFunc
			fp = &btf.FuncProto{Return: i32, Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: &btf.Void{}}}}}
		}
		id, err := b.Add(&btf.Func{Name: fmt.Sprintf("f%d", k), Type: fp, Linkage: link})
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, uint32(f.Start), uint32(id))
	}
	blob, err = b.Marshal(nil, nil)
	return blob, recs, err
}

const (
	bpfMapCreate  = 0
	bpfProgLoad   = 5
	bpfBTFLoad    = 18
	flagSleepable = 1 << 4
)

func sysBPF(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

type loadedProg struct {
	fd   int
	maps []int
	log  string
	// source is what was loaded, kfunc ids filled in.
	source *ir.Program
	kfuncs map[int32]string
}

func (l *loadedProg) close() {
	unix.Close(l.fd)
	for _, m := range l.maps {
		unix.Close(m)
	}
}

// loadWithLog creates the maps, resolves kfunc calls named in Aux.Symbol to
// their vmlinux BTF ids and loads p with a level-2 verifier log.
func loadWithLog(name string, typ kernel.ProgType, maps []kernel.MapDef, p *ir.Program) (*loadedProg, error) {
	l := &loadedProg{fd: -1, kfuncs: map[int32]string{}}
	ok := false
	defer func() {
		if !ok {
			l.close()
		}
	}()
	for _, m := range maps {
		a := mapCreateAttr{mapType: uint32(m.Type), keySize: m.KeySize, valueSize: m.ValueSize,
			maxEntries: m.MaxEntries, mapFlags: m.Flags, mapExtra: m.Extra}
		fd, err := sysBPF(bpfMapCreate, unsafe.Pointer(&a), unsafe.Sizeof(a))
		if err != nil {
			return nil, fmt.Errorf("map create %+v: %w", m, err)
		}
		l.maps = append(l.maps, fd)
	}
	src := p.Clone()
	var spec *btf.Spec
	for i, ins := range src.Insns {
		if !ins.IsKfuncCall() || src.Aux[i].Symbol == "" {
			continue
		}
		if spec == nil {
			var err error
			if spec, err = btf.LoadKernelSpec(); err != nil {
				return nil, err
			}
		}
		var fn *btf.Func
		if err := spec.TypeByName(src.Aux[i].Symbol, &fn); err != nil {
			return nil, fmt.Errorf("kfunc %s: %w", src.Aux[i].Symbol, err)
		}
		id, err := spec.TypeID(fn)
		if err != nil {
			return nil, err
		}
		src.Insns[i].Imm = int32(id)
		l.kfuncs[int32(id)] = src.Aux[i].Symbol
	}
	l.source = src
	code := ir.Encode(src)
	lic := []byte("GPL\x00")
	logBuf := make([]byte, 16<<20)
	fds := make([]int32, len(l.maps))
	for i, fd := range l.maps {
		fds[i] = int32(fd)
	}
	a := progLoadAttr{progType: uint32(typ), insnCnt: uint32(len(src.Insns)),
		insns: uint64(uintptr(unsafe.Pointer(&code[0]))), license: uint64(uintptr(unsafe.Pointer(&lic[0]))),
		logLevel: 2, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0])))}
	if typ == kernel.Syscall {
		a.progFlags = flagSleepable
	}
	copy(a.name[:15], name)
	if len(fds) > 0 {
		a.fdArray = uint64(uintptr(unsafe.Pointer(&fds[0])))
	}
	var recs []uint32
	if funcs, ferr := ir.FindFuncs(src); ferr == nil && len(funcs) > 1 {
		blob, r, err := funcInfoBTF(funcs)
		if err != nil {
			return nil, err
		}
		blog := make([]byte, 1<<16)
		ba := btfLoadAttr{btf: uint64(uintptr(unsafe.Pointer(&blob[0]))), size: uint32(len(blob)),
			logBuf: uint64(uintptr(unsafe.Pointer(&blog[0]))), logSize: uint32(len(blog)), logLevel: 1}
		bfd, err := sysBPF(bpfBTFLoad, unsafe.Pointer(&ba), unsafe.Sizeof(ba))
		runtime.KeepAlive(blob)
		if err != nil {
			return nil, fmt.Errorf("BTF load: %w: %s", err, bytes.TrimRight(blog, "\x00"))
		}
		l.maps = append(l.maps, bfd) // closed with the maps
		recs = r
		a.btfFd = uint32(bfd)
		a.funcInfoRecSz = 8
		a.funcInfo = uint64(uintptr(unsafe.Pointer(&recs[0])))
		a.funcInfoCnt = uint32(len(recs) / 2)
	}
	fd, err := sysBPF(bpfProgLoad, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(recs)
	runtime.KeepAlive(code)
	runtime.KeepAlive(lic)
	runtime.KeepAlive(fds)
	log := logBuf
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w\n%s", name, err, tail(string(log), 2000))
	}
	l.fd = fd
	l.log = string(log)
	ok = true
	return l, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
