package arena

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options configure New.
type Options struct {
	// UserVMStart, when non-zero, is the user_vm_start to use (like the
	// arena map's map_extra); it must be page aligned, free, and the user
	// VMA must not cross a 4 GiB boundary. Zero picks an address.
	UserVMStart uint64
	// KernVMStart, when non-zero, asks for this kern_vm_start (the
	// reservation starts GuardSize/2 below it); it must be free.
	KernVMStart uint64
	// Name is the memfd name, for /proc/self/maps (default "bpf-arena").
	Name string
}

// Arena is a BPF arena in this process. All methods are safe for concurrent
// use. The kernel view and the user view are real mappings of one memfd.
type Arena struct {
	l Layout

	kbase unsafe.Pointer // reservation start (kern_vm_start - GuardSize/2)
	ubase unsafe.Pointer // user_vm_start
	fd    int

	mu     sync.Mutex // serializes Alloc/Free/Close
	used   []atomic.Uint64
	nalloc int
	// lostReservations counts ranges that could not be reserved again
	// after freeing (only under extreme mapping pressure).
	lostReservations int
	closed           atomic.Bool
}

// ErrClosed is returned by LoadGlobals on a closed arena (AllocPages
// returns 0, Bytes and Lookup nil).
var ErrClosed = errors.New("arena: closed")

const (
	reserveProt  = unix.PROT_NONE
	reserveFlags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE
)

// New creates an arena of pages pages (1..MaxPages): it reserves the kernel
// view (4 GiB + guard) and the user view without committing memory, and
// creates the memfd that backs allocated pages.
func New(pages int, opts Options) (*Arena, error) {
	if pages <= 0 || pages > MaxPages {
		return nil, fmt.Errorf("arena: %d pages is outside 1..%d", pages, MaxPages)
	}
	size := uint64(pages) * PageSize
	name := opts.Name
	if name == "" {
		name = "bpf-arena"
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("arena: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arena: ftruncate memfd to %d bytes: %w", size, err)
	}
	a := &Arena{fd: fd, used: make([]atomic.Uint64, (pages+63)/64)}
	a.l.Pages = pages
	fail := func(err error) (*Arena, error) {
		a.unmapAll()
		unix.Close(fd)
		return nil, err
	}

	// Kernel view.
	var hint unsafe.Pointer
	flags := reserveFlags
	if opts.KernVMStart != 0 {
		if opts.KernVMStart%PageSize != 0 || opts.KernVMStart < GuardSize/2 {
			return fail(fmt.Errorf("arena: requested kern_vm_start %#x is not usable", opts.KernVMStart))
		}
		hint = ptrAt(opts.KernVMStart - GuardSize/2)
		flags |= unix.MAP_FIXED_NOREPLACE
	}
	kb, err := unix.MmapPtr(-1, 0, hint, KernVMSize, reserveProt, flags)
	if err != nil {
		return fail(fmt.Errorf("arena: reserve kernel view (%d bytes): %w", uint64(KernVMSize), err))
	}
	a.kbase = kb
	a.l.KernVMStart = uint64(uintptr(kb)) + GuardSize/2

	// User view.
	if opts.UserVMStart != 0 {
		u := opts.UserVMStart
		if u%PageSize != 0 || (u&(Size4G-1))+size > Size4G {
			return fail(fmt.Errorf("arena: requested user_vm_start %#x is unaligned or its %d-byte VMA crosses a 4 GiB boundary", u, size))
		}
		ub, err := unix.MmapPtr(-1, 0, ptrAt(u), uintptr(size), reserveProt, reserveFlags|unix.MAP_FIXED_NOREPLACE)
		if err != nil {
			return fail(fmt.Errorf("arena: reserve user view at %#x: %w", u, err))
		}
		a.ubase = ub
	} else {
		// Over-reserve by 4 GiB so a start whose VMA stays inside one
		// 4 GiB window exists, then give back the head and the tail.
		total := uintptr(size) + Size4G
		rb, err := unix.MmapPtr(-1, 0, nil, total, reserveProt, reserveFlags)
		if err != nil {
			return fail(fmt.Errorf("arena: reserve user view: %w", err))
		}
		r := uint64(uintptr(rb))
		start := r
		if (start&(Size4G-1))+size > Size4G {
			start = (start + Size4G - 1) &^ (Size4G - 1)
		}
		if head := start - r; head > 0 {
			_ = unix.MunmapPtr(rb, uintptr(head))
		}
		if tail := r + uint64(total) - (start + size); tail > 0 {
			_ = unix.MunmapPtr(unsafe.Add(rb, start+size-r), uintptr(tail))
		}
		a.ubase = unsafe.Add(rb, start-r)
	}
	a.l.UserVMStart = uint64(uintptr(a.ubase))
	if err := a.l.Check(); err != nil {
		return fail(err)
	}
	return a, nil
}

// ptrAt turns a numeric address of memory outside the Go heap into a pointer.
func ptrAt(addr uint64) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(nil), uintptr(addr))
}

func (a *Arena) unmapAll() {
	if a.kbase != nil {
		_ = unix.MunmapPtr(a.kbase, KernVMSize)
		a.kbase = nil
	}
	if a.ubase != nil {
		_ = unix.MunmapPtr(a.ubase, uintptr(a.Size()))
		a.ubase = nil
	}
}

// Close unmaps both views and closes the memfd. Pointers into the arena are
// invalid afterwards; executors must not run programs on a closed arena.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Swap(true) {
		return nil
	}
	a.unmapAll()
	for i := range a.used {
		a.used[i].Store(0)
	}
	return unix.Close(a.fd)
}

// Layout returns the address layout.
func (a *Arena) Layout() Layout { return a.l }

// KernVMStart returns kern_vm_start.
func (a *Arena) KernVMStart() uint64 { return a.l.KernVMStart }

// UserVMStart returns user_vm_start.
func (a *Arena) UserVMStart() uint64 { return a.l.UserVMStart }

// Pages returns the arena size in pages.
func (a *Arena) Pages() int { return a.l.Pages }

// Size returns the arena size in bytes.
func (a *Arena) Size() uint64 { return a.l.Size() }

// Kern returns the kernel-view address of user address uaddr.
func (a *Arena) Kern(uaddr uint64) uint64 { return a.l.Kern(uaddr) }

// User returns the user-view address of kernel-view address kaddr.
func (a *Arena) User(kaddr uint64) uint64 { return a.l.User(kaddr) }

// PageOffset is the page index of user address addr (see Layout.PageOffset).
func (a *Arena) PageOffset(addr uint64) uint64 { return a.l.PageOffset(addr) }

// CastToUser is addr_space_cast to user space for this arena.
func (a *Arena) CastToUser(v uint64) uint64 { return a.l.CastToUser(v) }

// AllocatedPages returns the number of allocated pages.
func (a *Arena) AllocatedPages() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nalloc
}

func (a *Arena) isUsed(pg uint64) bool {
	return a.used[pg/64].Load()&(1<<(pg%64)) != 0
}

func (a *Arena) setUsed(pg uint64, v bool) {
	w := &a.used[pg/64]
	if v {
		w.Or(1 << (pg % 64))
	} else {
		w.And(^uint64(1 << (pg % 64)))
	}
}

// PageAllocated reports whether the arena page containing user address addr
// (only its low 32 bits count) is allocated.
func (a *Arena) PageAllocated(addr uint64) bool {
	pg := a.l.PageOffset(addr)
	return pg < uint64(a.l.Pages) && a.isUsed(pg)
}

// freeRun reports whether pages [pg, pg+n) are all free.
func (a *Arena) freeRun(pg, n uint64) bool {
	for i := pg; i < pg+n; i++ {
		if a.isUsed(i) {
			return false
		}
	}
	return true
}

// findFree returns the first run of n free pages (first fit), or false.
func (a *Arena) findFree(n uint64) (uint64, bool) {
	total := uint64(a.l.Pages)
	run := uint64(0)
	for pg := uint64(0); pg < total; {
		w := a.used[pg/64].Load()
		if pg%64 == 0 && pg+64 <= total {
			if w == 0 {
				run += 64
				pg += 64
				if run >= n {
					return pg - run, true
				}
				continue
			}
			if w == ^uint64(0) {
				run = 0
				pg += 64
				continue
			}
		}
		if w&(1<<(pg%64)) != 0 {
			run = 0
		} else {
			run++
			if run >= n {
				return pg + 1 - run, true
			}
		}
		pg++
	}
	return 0, false
}

// AllocPages is bpf_arena_alloc_pages: it allocates n pages, at the
// requested user address addr when addr != 0 (only its low 32 bits count;
// it must be page aligned and the pages free), otherwise at the first free run. It returns the user
// address of the first page, clear_lo32(user_vm_start) + lo32, or 0 when
// the request cannot be satisfied (bad arguments, exhausted arena, or the
// kernel refusing more mappings). New pages read zero.
func (a *Arena) AllocPages(addr uint64, n int) uint64 {
	if n <= 0 || n > a.l.Pages {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return 0
	}
	cnt := uint64(n)
	var pg uint64
	if addr != 0 {
		if addr%PageSize != 0 {
			return 0
		}
		pg = a.l.PageOffset(addr)
		if pg > uint64(a.l.Pages)-cnt || !a.freeRun(pg, cnt) {
			return 0
		}
	} else {
		var ok bool
		if pg, ok = a.findFree(cnt); !ok {
			return 0
		}
	}
	if err := a.mapPages(pg, cnt); err != nil {
		return 0
	}
	for i := pg; i < pg+cnt; i++ {
		a.setUsed(i, true)
	}
	a.nalloc += n
	return a.UserVMStart()&^(Size4G-1) + uint64(uint32(a.l.PageUser(pg)))
}

// mapPages maps memfd pages [pg, pg+n) RW into both views.
func (a *Arena) mapPages(pg, n uint64) error {
	off := pg * PageSize
	length := uintptr(n * PageSize)
	kp := a.kernPtr(a.l.PageKern(pg))
	up := unsafe.Add(a.ubase, off)
	const flags = unix.MAP_SHARED | unix.MAP_FIXED
	if _, err := unix.MmapPtr(a.fd, int64(off), kp, length, unix.PROT_READ|unix.PROT_WRITE, flags); err != nil {
		a.reserve(kp, length)
		return err
	}
	if _, err := unix.MmapPtr(a.fd, int64(off), up, length, unix.PROT_READ|unix.PROT_WRITE, flags); err != nil {
		a.reserve(kp, length)
		a.reserve(up, length)
		return err
	}
	return nil
}

// reserve puts a range back to a PROT_NONE reservation. Near
// vm.max_map_count even a MAP_FIXED mmap that would merge mappings is
// refused, so the fallback unmaps the range (which never needs a split when
// the range is one whole mapping, and lowers the count) and reserves it again
// with MAP_FIXED_NOREPLACE. If another thread grabbed the hole in between,
// the range stays unusable and reserve reports it.
func (a *Arena) reserve(p unsafe.Pointer, length uintptr) error {
	_, err := unix.MmapPtr(-1, 0, p, length, reserveProt, reserveFlags|unix.MAP_FIXED)
	if err == nil {
		return nil
	}
	if err := unix.MunmapPtr(p, length); err != nil {
		// Could not even unmap: at least make it inaccessible.
		return unix.Mprotect(unsafe.Slice((*byte)(p), length), unix.PROT_NONE)
	}
	_, err = unix.MmapPtr(-1, 0, p, length, reserveProt, reserveFlags|unix.MAP_FIXED_NOREPLACE)
	return err
}

// kernPtr converts a kernel-view address to a pointer into the reservation.
func (a *Arena) kernPtr(kaddr uint64) unsafe.Pointer {
	return unsafe.Add(a.kbase, kaddr-a.l.ReservationStart())
}

// FreePages is bpf_arena_free_pages: it frees the allocated pages among the
// n pages starting at user address addr (only its low 32 bits count, so a
// 32-bit arena pointer works too). Their
// contents are discarded, so a later allocation reads zero, and both views
// become inaccessible again. Unallocated pages in the range are ignored.
func (a *Arena) FreePages(addr uint64, n int) {
	if n <= 0 || addr == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return
	}
	start := a.l.PageOffset(addr &^ (PageSize - 1))
	end := start + uint64(n)
	if start >= uint64(a.l.Pages) {
		return
	}
	if end > uint64(a.l.Pages) {
		end = uint64(a.l.Pages)
	}
	for pg := start; pg < end; {
		if !a.isUsed(pg) {
			pg++
			continue
		}
		run := pg
		for run < end && a.isUsed(run) {
			run++
		}
		a.unmapPages(pg, run-pg)
		for i := pg; i < run; i++ {
			a.setUsed(i, false)
		}
		a.nalloc -= int(run - pg)
		pg = run
	}
}

func (a *Arena) unmapPages(pg, n uint64) {
	off := pg * PageSize
	length := uintptr(n * PageSize)
	// Views first, so no access sees the hole being punched.
	_ = a.reserve(a.kernPtr(a.l.PageKern(pg)), length)
	_ = a.reserve(unsafe.Add(a.ubase, off), length)
	_ = unix.Fallocate(a.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(length))
}

// Lookup returns a pointer to n bytes at kernel-view address kaddr when they
// lie in allocated pages of the kernel view, else nil. An executor uses it
// for PROBE_MEM32 accesses: nil means "the kernel would fault here" (load
// gives 0, store is skipped). n must be at most PageSize.
func (a *Arena) Lookup(kaddr uint64, n int) unsafe.Pointer {
	off := kaddr - a.l.KernVMStart
	if off >= Size4G || off+uint64(n) > Size4G || a.closed.Load() {
		return nil
	}
	pg := uint64(uint32(uint32(off)-uint32(a.l.UserVMStart)) >> 12)
	if pg >= uint64(a.l.Pages) || !a.isUsed(pg) {
		return nil
	}
	if last := (off + uint64(n) - 1) &^ (PageSize - 1); last != off&^(PageSize-1) {
		pg2 := pg + 1
		if pg2 >= uint64(a.l.Pages) || !a.isUsed(pg2) {
			return nil
		}
	}
	return unsafe.Add(a.kbase, kaddr-a.l.ReservationStart())
}

// LookupUser is Lookup for a user-view address.
func (a *Arena) LookupUser(uaddr uint64, n int) unsafe.Pointer {
	if !a.l.InUserView(uaddr) || !a.l.InUserView(uaddr+uint64(n)-1) {
		return nil
	}
	return a.Lookup(a.Kern(uaddr), n)
}

// Bytes returns the n bytes at user address uaddr as a slice of the user
// view, or nil when any of them is outside the arena or in an unallocated
// page. The slice is valid until the pages are freed or the arena closed.
func (a *Arena) Bytes(uaddr uint64, n int) []byte {
	if n <= 0 || !a.l.InUserView(uaddr) || !a.l.InUserView(uaddr+uint64(n)-1) || a.closed.Load() {
		return nil
	}
	for pg := a.l.PageOffset(uaddr); pg <= a.l.PageOffset(uaddr+uint64(n)-1); pg++ {
		if !a.isUsed(pg) {
			return nil
		}
	}
	return unsafe.Slice((*byte)(unsafe.Add(a.ubase, uaddr-a.l.UserVMStart)), n)
}

// KernBytes is Bytes through the kernel view, for a kernel-view address.
func (a *Arena) KernBytes(kaddr uint64, n int) []byte {
	if n <= 0 || !a.l.InKernView(kaddr) {
		return nil
	}
	u := a.User(kaddr)
	if a.Bytes(u, n) == nil {
		return nil
	}
	return unsafe.Slice((*byte)(a.kernPtr(kaddr)), n)
}

// usedCount is for tests: the number of set bits in the bitmap.
func (a *Arena) usedCount() int {
	c := 0
	for i := range a.used {
		c += bits.OnesCount64(a.used[i].Load())
	}
	return c
}

// LoadGlobals places an object's arena globals (the .addr_space.1 section
// of size bytes, initialized from data) the way libbpf does: in the last
// pages of the arena. It allocates those pages, copies data and returns the
// user address of the section's start; ld_imm64 references to the section
// resolve to that address plus their offset.
func (a *Arena) LoadGlobals(data []byte, size int) (uint64, error) {
	if size < len(data) {
		size = len(data)
	}
	if size == 0 {
		return 0, fmt.Errorf("arena: no globals to load")
	}
	if a.closed.Load() {
		return 0, ErrClosed
	}
	n := (size + PageSize - 1) / PageSize
	if n > a.l.Pages {
		return 0, fmt.Errorf("arena: %d bytes of globals do not fit in %d pages", size, a.l.Pages)
	}
	want := a.l.PageUser(uint64(a.l.Pages - n))
	u := a.AllocPages(want, n)
	if u == 0 {
		return 0, fmt.Errorf("arena: cannot allocate the %d global pages at %#x", n, want)
	}
	copy(a.Bytes(u, n*PageSize), data)
	return u, nil
}
