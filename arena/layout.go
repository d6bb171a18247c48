// Package arena models the BPF arena (BPF_MAP_TYPE_ARENA) the way Linux 6.18
// lays it out, and provides a real arena for a Go process.
//
// # Layout
//
// The kernel reserves KernVMSize = 4 GiB + GuardSize bytes of address space
// for an arena and sets kern_vm_start = reservation + GuardSize/2, so that
// a 16-bit signed instruction offset added to any 32-bit arena offset lands
// either inside the 4 GiB or in the guard region, never outside the
// reservation. User space sees the same pages in a VMA of at most 4 GiB
// starting at user_vm_start, which never crosses a 4 GiB boundary. A user
// address U and its kernel twin share their low 32 bits: U is backed at
// kern_vm_start + uint32(U). BPF code therefore only carries 32-bit arena
// pointers; addr_space_cast converts between the views:
//
//	cast to kernel (imm 1):     dst = uint32(src)
//	cast to user   (imm 1<<16): dst = uint32(src) == 0 ? 0 : hi32(user_vm_start) | uint32(src)
//
// Layout holds this pure address arithmetic; the interpreter, the vm and
// the tests share it.
//
// # Arena
//
// Arena is a real arena inside the process: the kernel view is reserved with
// PROT_NONE | MAP_NORESERVE (nothing is committed up front), the user view
// likewise, and pages are backed by one memfd mapped MAP_SHARED into both
// views at the same file offset, so a store through one view is visible
// through the other. Allocation and freeing follow bpf_arena_alloc_pages and
// bpf_arena_free_pages: page counts, an optional page-aligned requested
// address that must be free, first fit otherwise, NULL (0) on exhaustion or
// on a failure to map (for example vm.max_map_count), and freed pages reading
// zero when allocated again (the memfd range is hole-punched and both views
// go back to PROT_NONE). Unallocated pages of the kernel view fault, which is
// what compiled code relies on for the kernel's exception-table semantics;
// the interpreter asks Lookup instead.
//
// Page bookkeeping is a bitmap in an ordinary Go slice, read with atomic
// loads so executors can test pages without taking the mutex that
// serializes allocation and freeing.
package arena

import "fmt"

const (
	// PageSize is the arena page size (x86-64 PAGE_SIZE).
	PageSize = 4096
	// GuardSize is the guard region split around the 4 GiB kernel view:
	// round_up(1 << 16, PAGE_SIZE << 1), half below and half above.
	GuardSize = 64 << 10
	// Size4G is the size of the 32-bit arena offset space.
	Size4G = 1 << 32
	// KernVMSize is the kernel view reservation, 4 GiB plus the guard.
	KernVMSize = Size4G + GuardSize
	// MaxPages is the largest arena, 4 GiB of pages.
	MaxPages = Size4G / PageSize
)

// Layout is the address arithmetic of one arena: where the kernel view and
// the user view start and how many pages the arena has.
type Layout struct {
	KernVMStart uint64 // kern_vm_start: reservation + GuardSize/2
	UserVMStart uint64 // user_vm_start: start of the user VMA
	Pages       int    // arena size in pages (max_entries)
}

// NewLayout checks and returns a layout: pages in 1..MaxPages, page-aligned
// starts, and a user VMA that does not cross a 4 GiB boundary.
func NewLayout(kernVMStart, userVMStart uint64, pages int) (Layout, error) {
	l := Layout{KernVMStart: kernVMStart, UserVMStart: userVMStart, Pages: pages}
	return l, l.Check()
}

// Check validates the layout.
func (l Layout) Check() error {
	if l.Pages <= 0 || l.Pages > MaxPages {
		return fmt.Errorf("arena: %d pages is outside 1..%d", l.Pages, MaxPages)
	}
	if l.KernVMStart%PageSize != 0 || l.UserVMStart%PageSize != 0 {
		return fmt.Errorf("arena: kern_vm_start %#x / user_vm_start %#x not page aligned", l.KernVMStart, l.UserVMStart)
	}
	if l.KernVMStart < GuardSize/2 || l.KernVMStart > ^uint64(0)-KernVMSize {
		return fmt.Errorf("arena: kern_vm_start %#x leaves no room for the reservation", l.KernVMStart)
	}
	if l.UserVMStart == 0 {
		return fmt.Errorf("arena: user_vm_start is zero")
	}
	lo := l.UserVMStart & (Size4G - 1)
	if lo+l.Size() > Size4G {
		return fmt.Errorf("arena: user VMA %#x+%#x crosses a 4 GiB boundary", l.UserVMStart, l.Size())
	}
	return nil
}

// Size is the arena size in bytes.
func (l Layout) Size() uint64 { return uint64(l.Pages) * PageSize }

// ReservationStart is the start of the kernel view reservation (guard included).
func (l Layout) ReservationStart() uint64 { return l.KernVMStart - GuardSize/2 }

// Kern returns the kernel-view address backing user address uaddr:
// kern_vm_start + uint32(uaddr).
func (l Layout) Kern(uaddr uint64) uint64 { return l.KernVMStart + uint64(uint32(uaddr)) }

// User returns the user-view address of kernel-view address kaddr:
// hi32(user_vm_start) | uint32(kaddr - kern_vm_start).
func (l Layout) User(kaddr uint64) uint64 {
	return l.UserVMStart&^(Size4G-1) | uint64(uint32(kaddr-l.KernVMStart))
}

// CastToUser is addr_space_cast(dst, src, 0, 1) as the JIT computes it:
// 0 when the low 32 bits are zero, else hi32(user_vm_start) | lo32(v).
func (l Layout) CastToUser(v uint64) uint64 {
	if uint32(v) == 0 {
		return 0
	}
	return l.UserVMStart&^(Size4G-1) | uint64(uint32(v))
}

// CastToKernel is addr_space_cast(dst, src, 1, 0): the low 32 bits.
func CastToKernel(v uint64) uint64 { return uint64(uint32(v)) }

// PageOffset returns the page index inside the arena of an address in either
// view, as the kernel's compute_pgoff: (u32)(addr - (u32)user_vm_start) >> 12.
// The result may be >= Pages for addresses outside the arena.
func (l Layout) PageOffset(addr uint64) uint64 {
	return uint64(uint32(uint32(addr)-uint32(l.UserVMStart)) >> 12)
}

// PageUser returns the user address of page pgoff.
func (l Layout) PageUser(pgoff uint64) uint64 { return l.UserVMStart + pgoff*PageSize }

// PageKern returns the kernel-view address of page pgoff.
func (l Layout) PageKern(pgoff uint64) uint64 { return l.Kern(l.PageUser(pgoff)) }

// InKernView reports whether addr lies in the 4 GiB kernel view (guard excluded).
func (l Layout) InKernView(addr uint64) bool { return addr-l.KernVMStart < Size4G }

// InReservation reports whether addr lies in the kernel reservation, guard included.
func (l Layout) InReservation(addr uint64) bool {
	return addr-l.ReservationStart() < KernVMSize
}

// InUserView reports whether addr lies in the user VMA.
func (l Layout) InUserView(addr uint64) bool { return addr-l.UserVMStart < l.Size() }
