package kernel

import (
	"fmt"
	"runtime"
	"unsafe"
)

// RunOptions is the input of BPF_PROG_TEST_RUN.
type RunOptions struct {
	// Data is the packet for socket filter / XDP / sched_cls programs.
	Data []byte
	// DataOutSize is the room for the packet after the run (default
	// len(Data)+256).
	DataOutSize int
	// Ctx is the context. Syscall programs read and write it in place: the
	// kernel copies it back into the input buffer.
	Ctx []byte
	// Repeat runs the program this many times (not for syscall programs).
	Repeat uint32
}

// RunResult is what BPF_PROG_TEST_RUN returned.
type RunResult struct {
	Retval uint32 // truncated to 32 bits by the kernel
	Data   []byte // the packet after the run
	Ctx    []byte // the context after the run (syscall programs)
	// Duration is the kernel's ns per run (0 for syscall programs).
	Duration uint32
}

// TestRun runs a loaded program once (or Repeat times) in the kernel.
func (l *Loaded) TestRun(o RunOptions) (*RunResult, error) { return TestRun(l.FD, o) }

// TestRun runs the program fd in the kernel with BPF_PROG_TEST_RUN.
func TestRun(fd int, o RunOptions) (*RunResult, error) {
	res := &RunResult{}
	attr := testRunAttr{progFd: uint32(fd), repeat: o.Repeat}
	var out []byte
	if len(o.Data) > 0 {
		n := o.DataOutSize
		if n == 0 {
			n = len(o.Data) + 256
		}
		out = make([]byte, n)
		attr.dataIn = ptr(o.Data)
		attr.dataSizeIn = uint32(len(o.Data))
		attr.dataOut = ptr(out)
		attr.dataSizeOut = uint32(len(out))
	}
	var ctx []byte
	if len(o.Ctx) > 0 {
		ctx = append([]byte(nil), o.Ctx...)
		attr.ctxIn = ptr(ctx)
		attr.ctxSizeIn = uint32(len(ctx))
	}
	_, err := bpf(cmdProgTestRun, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(o.Data)
	runtime.KeepAlive(out)
	runtime.KeepAlive(ctx)
	if err != nil {
		return nil, fmt.Errorf("BPF_PROG_TEST_RUN: %w", err)
	}
	res.Retval = attr.retval
	res.Duration = attr.duration
	if out != nil {
		res.Data = out[:min(int(attr.dataSizeOut), len(out))]
	}
	res.Ctx = ctx
	return res, nil
}
