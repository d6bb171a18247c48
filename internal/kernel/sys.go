package kernel

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf(2) commands used here (include/uapi/linux/bpf.h).
const (
	cmdMapCreate      = 0
	cmdProgLoad       = 5
	cmdObjGetInfoByFD = 15
	cmdProgTestRun    = 10
	cmdBTFLoad        = 18
)

// Program load flags (prog_flags).
const (
	// FlagStrictAlignment is BPF_F_STRICT_ALIGNMENT.
	FlagStrictAlignment uint32 = 1 << 0
	// FlagTestRndHi32 is BPF_F_TEST_RND_HI32: the verifier writes random
	// upper halves after 32-bit definitions it found unread (the zext oracle).
	FlagTestRndHi32 uint32 = 1 << 2
	// FlagSleepable is BPF_F_SLEEPABLE (required for syscall programs' test runs).
	FlagSleepable uint32 = 1 << 4
)

// progLoadAttr is the BPF_PROG_LOAD part of union bpf_attr (6.18 layout).
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
	progBTFFd          uint32
	funcInfoRecSize    uint32
	funcInfo           uint64
	funcInfoCnt        uint32
	lineInfoRecSize    uint32
	lineInfo           uint64
	lineInfoCnt        uint32
	attachBTFID        uint32
	attachBTFObjFd     uint32
	coreReloCnt        uint32
	fdArray            uint64
	coreRelos          uint64
	coreReloRecSize    uint32
	logTrueSize        uint32
	progTokenFd        int32
	fdArrayCnt         uint32
	signature          uint64
	signatureSize      uint32
	keyringID          int32
}

// progInfo is struct bpf_prog_info (6.18 layout).
type progInfo struct {
	typ                  uint32
	id                   uint32
	tag                  [8]byte
	jitedProgLen         uint32
	xlatedProgLen        uint32
	jitedProgInsns       uint64
	xlatedProgInsns      uint64
	loadTime             uint64
	createdByUID         uint32
	nrMapIDs             uint32
	mapIDs               uint64
	name                 [16]byte
	ifindex              uint32
	gplCompatible        uint32
	netnsDev             uint64
	netnsIno             uint64
	nrJitedKsyms         uint32
	nrJitedFuncLens      uint32
	jitedKsyms           uint64
	jitedFuncLens        uint64
	btfID                uint32
	funcInfoRecSize      uint32
	funcInfo             uint64
	nrFuncInfo           uint32
	nrLineInfo           uint32
	lineInfo             uint64
	jitedLineInfo        uint64
	nrJitedLineInfo      uint32
	lineInfoRecSize      uint32
	jitedLineInfoRecSize uint32
	nrProgTags           uint32
	progTags             uint64
	runTimeNs            uint64
	runCnt               uint64
	recursionMisses      uint64
	verifiedInsns        uint32
	attachBTFObjID       uint32
	attachBTFID          uint32
	_                    uint32
}

type infoByFDAttr struct {
	fd      uint32
	infoLen uint32
	info    uint64
}

type testRunAttr struct {
	progFd      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

type btfLoadAttr struct {
	btf         uint64
	logBuf      uint64
	btfSize     uint32
	logSize     uint32
	logLevel    uint32
	logTrueSize uint32
	btfFlags    uint32
	btfTokenFd  int32
}

// bpf calls the bpf(2) system call with attr, which must be a pointer to
// one of the attr structs above. Pointers inside attr point to Go memory kept
// alive by the caller (runtime.KeepAlive).
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		runtime.KeepAlive(attr)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == cmdProgLoad {
			continue
		}
		if errno != 0 {
			return int(r), errno
		}
		return int(r), nil
	}
}

func ptr[T any](s []T) uint64 {
	if len(s) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&s[0])))
}

// objInfo fills info for the object fd (program, map, BTF).
func objInfo(fd int, info unsafe.Pointer, size uintptr) error {
	attr := infoByFDAttr{fd: uint32(fd), infoLen: uint32(size), info: uint64(uintptr(info))}
	_, err := bpf(cmdObjGetInfoByFD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return fmt.Errorf("BPF_OBJ_GET_INFO_BY_FD: %w", err)
	}
	return nil
}

// loadBTF loads a raw BTF blob and returns its fd.
func loadBTF(blob []byte) (int, error) {
	log := make([]byte, 64*1024)
	attr := btfLoadAttr{btf: ptr(blob), btfSize: uint32(len(blob)), logBuf: ptr(log), logSize: uint32(len(log)), logLevel: 1}
	fd, err := bpf(cmdBTFLoad, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(blob)
	runtime.KeepAlive(log)
	if err != nil {
		return -1, fmt.Errorf("BPF_BTF_LOAD: %w: %s", err, cstring(log))
	}
	return fd, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

var errNoBPF = errors.New("bpf() unavailable")
