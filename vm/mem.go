package vm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	pageSize = 4096

	// codeRegionSize is the address space of the code region (a sparse
	// memfd mapped twice). Every call rel32 in it reaches every stub.
	codeRegionSize = 256 << 20

	// Layout of the stub area at the start of the code region.
	slotExitOff = 0 // absolute address of vmexit
	// stubsOff is the first stub. Every stub's call imm (its offset from
	// CallBase) is at least 4096, above every kernel helper id, so passes
	// that look at helper ids never mistake a rewritten call for one.
	stubsOff      = 4096
	stubSize      = 16
	maxHelperID   = 1024     // helper ids 0..maxHelperID-1 have a stub
	numRegStubs   = 11       // callx through r0..r10
	stubAreaSize  = 64 << 10 // holds stubsOff + numStubs*stubSize
	codeAllocBase = stubAreaSize

	// Exit codes, as the stubs load them into r11.
	exitReturn  = 0
	exitHelper  = 0x10000 // | helper id
	exitCallX   = 0x20000 // | register number
	exitYield   = 0x30000
	exitFault   = 0x40000 // from vmfault
	exitKfunc   = 0x50000 // | the program's kfunc slot
	exitMayGoto = 0x60000 // arch_bpf_timed_may_goto
)

// Stub numbers after the helpers': callx through each register, yield,
// then kfunc slots (resolved per program).
const (
	stubIndexCallX   = maxHelperID
	stubIndexYield   = maxHelperID + numRegStubs
	stubIndexMayGoto = stubIndexYield + 1
	stubIndexKfunc   = stubIndexMayGoto + 1
	maxKfuncSlots    = 256
	numStubs         = stubIndexKfunc + maxKfuncSlots
)

func stubOffset(k int) int { return stubsOff + k*stubSize }

// codeMem is the code region: one memfd mapped read-write (rw, where images
// are written) and read-execute (rx, where they run), at different
// addresses. Allocation is first fit over pages.
type codeMem struct {
	mu   sync.Mutex
	fd   int
	rw   []byte
	rx   uintptr
	free []span // sorted, coalesced free page spans (byte offsets)
}

type span struct{ off, size int }

func newCodeMem() (*codeMem, error) {
	fd, err := unix.MemfdCreate("bpfc-code", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vm: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, codeRegionSize); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vm: ftruncate code memfd: %w", err)
	}
	rw, err := unix.Mmap(fd, 0, codeRegionSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vm: mmap code rw view: %w", err)
	}
	rx, err := unix.MmapPtr(fd, 0, nil, codeRegionSize, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(rw)
		unix.Close(fd)
		return nil, fmt.Errorf("vm: mmap code rx view: %w", err)
	}
	m := &codeMem{fd: fd, rw: rw, rx: uintptr(rx)}
	m.free = []span{{codeAllocBase, codeRegionSize - codeAllocBase}}
	m.writeStubs()
	return m, nil
}

// writeStubs fills the stub area: the vmexit address slot, then for each
// exit code a 16-byte stub
//
//	41 bb imm32     mov r11d, code
//	ff 25 disp32    jmp qword ptr [rip + slot]
//	cc cc cc cc     int3 padding
func (m *codeMem) writeStubs() {
	exit, _, _ := stubAddrs()
	area := m.rw[:stubAreaSize]
	for i := range area {
		area[i] = 0xcc
	}
	binary.LittleEndian.PutUint64(area[slotExitOff:], uint64(exit))
	for k := 0; k < numStubs; k++ {
		var code uint32
		switch {
		case k < stubIndexCallX:
			code = exitHelper | uint32(k)
		case k < stubIndexYield:
			code = exitCallX | uint32(k-stubIndexCallX)
		case k == stubIndexYield:
			code = exitYield
		case k == stubIndexMayGoto:
			code = exitMayGoto
		default:
			code = exitKfunc | uint32(k-stubIndexKfunc)
		}
		o := stubOffset(k)
		s := area[o : o+stubSize]
		s[0], s[1] = 0x41, 0xbb
		binary.LittleEndian.PutUint32(s[2:], code)
		s[6], s[7] = 0xff, 0x25
		binary.LittleEndian.PutUint32(s[8:], uint32(int32(slotExitOff-(o+12))))
	}
}

// alloc returns the offset of n bytes (rounded up to pages) in the region.
func (m *codeMem) alloc(n int) (int, error) {
	n = (n + pageSize - 1) &^ (pageSize - 1)
	if n == 0 {
		n = pageSize
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range m.free {
		if s.size >= n {
			off := s.off
			if s.size == n {
				m.free = append(m.free[:i], m.free[i+1:]...)
			} else {
				m.free[i] = span{s.off + n, s.size - n}
			}
			return off, nil
		}
	}
	return 0, fmt.Errorf("vm: code region full (%d bytes requested)", n)
}

// release fills the span with int3 and returns it to the free list.
func (m *codeMem) release(off, n int) {
	n = (n + pageSize - 1) &^ (pageSize - 1)
	if n == 0 {
		n = pageSize
	}
	b := m.rw[off : off+n]
	for i := range b {
		b[i] = 0xcc
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.free) && m.free[i].off < off {
		i++
	}
	m.free = append(m.free, span{})
	copy(m.free[i+1:], m.free[i:])
	m.free[i] = span{off, n}
	// coalesce with the neighbours
	if i+1 < len(m.free) && m.free[i].off+m.free[i].size == m.free[i+1].off {
		m.free[i].size += m.free[i+1].size
		m.free = append(m.free[:i+1], m.free[i+2:]...)
	}
	if i > 0 && m.free[i-1].off+m.free[i-1].size == m.free[i].off {
		m.free[i-1].size += m.free[i].size
		m.free = append(m.free[:i], m.free[i+1:]...)
	}
}

// Private stacks. Each is a 64 KiB region aligned to 64 KiB:
//
//	[0, 4K)     the execution context (budget counter first), read-write
//	[4K, 8K)    guard page, PROT_NONE: a stack overflow faults here
//	[8K, 64K)   the stack; the code starts at 64K-16
const (
	stackRegion   = 64 << 10
	stacksPerSlab = 16
)

type stack struct {
	base unsafe.Pointer // the region, 64 KiB aligned; off-heap
}

func (s *stack) ctx() *execCtx { return (*execCtx)(s.base) }

// Stacks are cached per P in a sync.Pool; a stack the pool drops is
// returned to the free list of regions by a cleanup, so no region leaks.
var stackPool = sync.Pool{}

var stackFree struct {
	mu    sync.Mutex
	bases []unsafe.Pointer
}

func newStackSlab() error {
	size := uintptr(stackRegion * (stacksPerSlab + 1))
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("vm: mmap stacks: %w", err)
	}
	skip := (stackRegion - uintptr(p)%stackRegion) % stackRegion
	first := unsafe.Add(p, skip)
	for k := 0; k < stacksPerSlab; k++ {
		base := unsafe.Add(first, k*stackRegion)
		err := mprotect(base, pageSize, unix.PROT_READ|unix.PROT_WRITE)
		if err == nil {
			err = mprotect(unsafe.Add(base, 2*pageSize), stackRegion-2*pageSize, unix.PROT_READ|unix.PROT_WRITE)
		}
		if err != nil {
			// Out of mappings (vm.max_map_count) or memory: keep the
			// stacks already made, unmap the rest of the slab.
			start := base
			if k == 0 {
				start = p
			}
			unix.MunmapPtr(start, uintptr(p)+size-uintptr(start))
			if k > 0 {
				return nil
			}
			return fmt.Errorf("vm: no stack for the run (%w)", err)
		}
		stackFree.bases = append(stackFree.bases, base)
	}
	return nil
}

func mprotect(p unsafe.Pointer, n uintptr, prot int) error {
	if err := unix.Mprotect(unsafe.Slice((*byte)(p), n), prot); err != nil {
		return fmt.Errorf("vm: mprotect: %w", err)
	}
	return nil
}

func freeStackRegion(base unsafe.Pointer) {
	stackFree.mu.Lock()
	stackFree.bases = append(stackFree.bases, base)
	stackFree.mu.Unlock()
}

func getStack() (*stack, error) {
	if s, ok := stackPool.Get().(*stack); ok {
		return s, nil
	}
	stackFree.mu.Lock()
	defer stackFree.mu.Unlock()
	if len(stackFree.bases) == 0 {
		if err := newStackSlab(); err != nil {
			return nil, err
		}
	}
	base := stackFree.bases[len(stackFree.bases)-1]
	stackFree.bases = stackFree.bases[:len(stackFree.bases)-1]
	s := &stack{base: base}
	runtime.AddCleanup(s, freeStackRegion, base)
	return s, nil
}

func putStack(s *stack) { stackPool.Put(s) }
