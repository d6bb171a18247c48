package arena

import (
	"sync"
	"testing"
	"unsafe"
)

func TestLayoutArithmetic(t *testing.T) {
	l, err := NewLayout(0xffffc90000008000, 0x7f1200000000, 16)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"kern of user", l.Kern(0x7f1200003010), 0xffffc90000008000 + 0x3010},
		{"kern ignores hi32", l.Kern(0xdead00003010), 0xffffc90000008000 + 0x3010},
		{"user of kern", l.User(0xffffc9000000b010), 0x7f1200003010},
		{"cast to user", l.CastToUser(0x1234), 0x7f1200001234},
		{"cast to user of hi bits", l.CastToUser(0xffffffff00001234), 0x7f1200001234},
		{"cast to user of 0 lo32", l.CastToUser(0xabcd00000000), 0},
		{"cast to kernel", CastToKernel(0x7f1200001234), 0x1234},
		{"page offset", l.PageOffset(0x7f1200003fff), 3},
		{"page offset of a 32-bit pointer", l.PageOffset(0x5000), 5},
		{"page user", l.PageUser(2), 0x7f1200002000},
		{"reservation", l.ReservationStart(), 0xffffc90000000000},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	// Non-zero low half of user_vm_start: page offsets are relative to it.
	l2 := Layout{KernVMStart: 0x100008000, UserVMStart: 0x7f0080000000, Pages: 4}
	if got := l2.PageOffset(0x7f0080001000); got != 1 {
		t.Errorf("page offset with lo32(user_vm_start) != 0: got %d", got)
	}
	if got := l2.PageKern(1); got != 0x100008000+0x80001000 {
		t.Errorf("PageKern: got %#x", got)
	}
	for _, bad := range []Layout{
		{KernVMStart: 0x100008000, UserVMStart: 0x7f00ffffe000, Pages: 4}, // crosses 4 GiB
		{KernVMStart: 0x100008000, UserVMStart: 0x7f0000000000, Pages: 0},
		{KernVMStart: 0x100008000, UserVMStart: 0x7f0000000000, Pages: MaxPages + 1},
		{KernVMStart: 0x100008001, UserVMStart: 0x7f0000000000, Pages: 1},
		{KernVMStart: 0x100008000, UserVMStart: 0, Pages: 1},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("layout %+v accepted", bad)
		}
	}
	if !l.InReservation(l.KernVMStart-GuardSize/2) || l.InReservation(l.KernVMStart-GuardSize/2-1) ||
		!l.InReservation(l.KernVMStart+Size4G+GuardSize/2-1) || l.InReservation(l.KernVMStart+Size4G+GuardSize/2) {
		t.Error("InReservation bounds wrong")
	}
}

func newArena(t *testing.T, pages int, opts Options) *Arena {
	t.Helper()
	a, err := New(pages, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestNewLayoutProperties(t *testing.T) {
	for _, pages := range []int{1, 100, MaxPages} {
		a := newArena(t, pages, Options{})
		if a.KernVMStart()%PageSize != 0 || (a.KernVMStart()-GuardSize/2)%PageSize != 0 {
			t.Errorf("kern_vm_start %#x unaligned", a.KernVMStart())
		}
		lo := a.UserVMStart() & (Size4G - 1)
		if lo+a.Size() > Size4G {
			t.Errorf("%d pages: user VMA %#x crosses 4 GiB", pages, a.UserVMStart())
		}
		if a.AllocatedPages() != 0 {
			t.Error("fresh arena has allocated pages")
		}
	}
}

func TestAllocFree(t *testing.T) {
	a := newArena(t, 8, Options{})
	u0 := a.UserVMStart()
	p := a.AllocPages(0, 2)
	if p != u0 {
		t.Fatalf("first alloc at %#x, want %#x", p, u0)
	}
	b := a.Bytes(p, 2*PageSize)
	if b == nil {
		t.Fatal("Bytes of allocated pages is nil")
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("new page byte %d = %d", i, v)
		}
	}
	b[5] = 0xaa
	b[PageSize+7] = 0xbb
	// Written through the user view, visible through the kernel view.
	k := a.Lookup(a.Kern(p), 8)
	if k == nil || *(*byte)(unsafe.Add(k, 5)) != 0xaa {
		t.Fatal("kernel view does not see the user-view store")
	}
	*(*byte)(unsafe.Add(k, 9)) = 0xcc
	if b[9] != 0xcc {
		t.Fatal("user view does not see the kernel-view store")
	}
	if kb := a.KernBytes(a.Kern(p)+PageSize, 8); kb == nil || kb[7] != 0xbb {
		t.Fatal("KernBytes")
	}

	// Requested address: free and aligned succeeds, taken or unaligned fails.
	want := u0 + 5*PageSize
	if got := a.AllocPages(want, 1); got != want {
		t.Fatalf("alloc at %#x gave %#x", want, got)
	}
	if got := a.AllocPages(want, 1); got != 0 {
		t.Fatalf("second alloc at the same address gave %#x", got)
	}
	if got := a.AllocPages(u0+PageSize, 1); got != 0 {
		t.Fatalf("alloc over an allocated page gave %#x", got)
	}
	if got := a.AllocPages(u0+6*PageSize+8, 1); got != 0 {
		t.Fatalf("unaligned alloc gave %#x", got)
	}
	if got := a.AllocPages(u0+7*PageSize, 2); got != 0 {
		t.Fatalf("alloc past the end gave %#x", got)
	}
	// The requested address may be a 32-bit arena pointer: only lo32 counts.
	if got := a.AllocPages(uint64(uint32(u0+6*PageSize)), 1); got != u0+6*PageSize {
		t.Fatalf("alloc by kernel address gave %#x", got)
	}
	// First fit: pages 2,3,4 free, 7 free.
	if got := a.AllocPages(0, 3); got != u0+2*PageSize {
		t.Fatalf("first fit of 3 gave %#x", got)
	}
	if got := a.AllocPages(0, 2); got != 0 {
		t.Fatalf("exhausted arena gave %#x", got)
	}
	if got := a.AllocPages(0, 1); got != u0+7*PageSize {
		t.Fatalf("last page gave %#x", got)
	}
	if got := a.AllocPages(0, 1); got != 0 {
		t.Fatalf("full arena gave %#x", got)
	}
	if n := a.AllocatedPages(); n != 8 || a.usedCount() != 8 {
		t.Fatalf("allocated %d / bitmap %d, want 8", n, a.usedCount())
	}
	if got := a.AllocPages(0, 0); got != 0 {
		t.Fatal("zero pages")
	}
	if got := a.AllocPages(0, 9); got != 0 {
		t.Fatal("more than the arena")
	}

	// Free and reallocate: contents read zero again.
	a.FreePages(p, 2)
	if a.Bytes(p, 1) != nil || a.Lookup(a.Kern(p), 1) != nil || a.PageAllocated(p) {
		t.Fatal("freed page still accessible")
	}
	if got := a.AllocPages(p, 2); got != p {
		t.Fatalf("realloc gave %#x", got)
	}
	b = a.Bytes(p, 2*PageSize)
	if b[5] != 0 || b[9] != 0 || b[PageSize+7] != 0 {
		t.Fatal("reallocated page not zero")
	}
	// Freeing a range with holes and past the end is fine.
	a.FreePages(u0, 100)
	if a.AllocatedPages() != 0 || a.usedCount() != 0 {
		t.Fatalf("after freeing all: %d allocated", a.AllocatedPages())
	}
	a.FreePages(u0, 1) // double free: no-op
}

func TestLookupBounds(t *testing.T) {
	a := newArena(t, 4, Options{})
	u := a.AllocPages(a.UserVMStart()+PageSize, 1)
	if u == 0 {
		t.Fatal("alloc")
	}
	k := a.Kern(u)
	tests := []struct {
		name string
		addr uint64
		n    int
		ok   bool
	}{
		{"start", k, 8, true},
		{"last byte", k + PageSize - 1, 1, true},
		{"last dword", k + PageSize - 8, 8, true},
		{"straddles into free page", k + PageSize - 4, 8, false},
		{"straddles from free page", k - 4, 8, false},
		{"free page", k + PageSize, 1, false},
		{"below kern_vm_start", a.KernVMStart() - 8, 8, false},
		{"past 4G", a.KernVMStart() + Size4G, 1, false},
	}
	for _, tc := range tests {
		if got := a.Lookup(tc.addr, tc.n) != nil; got != tc.ok {
			t.Errorf("%s: Lookup ok=%v, want %v", tc.name, got, tc.ok)
		}
	}
	if a.LookupUser(u+8, 8) == nil || a.LookupUser(u+PageSize, 8) != nil {
		t.Error("LookupUser")
	}
	if a.Bytes(u-1, 2) != nil || a.Bytes(a.UserVMStart()+a.Size(), 1) != nil {
		t.Error("Bytes across unallocated/outside")
	}
}

func TestFixedAddresses(t *testing.T) {
	const user = 0x7e5500000000
	a, err := New(16, Options{UserVMStart: user})
	if err != nil {
		t.Skip("fixed address not available:", err)
	}
	defer a.Close()
	if a.UserVMStart() != user {
		t.Fatalf("user_vm_start %#x", a.UserVMStart())
	}
	if got := a.AllocPages(0, 1); got != user {
		t.Fatalf("alloc gave %#x", got)
	}
	// The same range cannot be reserved twice.
	if _, err := New(16, Options{UserVMStart: user}); err == nil {
		t.Fatal("second arena at the same user_vm_start")
	}
	if _, err := New(16, Options{UserVMStart: user + Size4G - PageSize}); err == nil {
		t.Fatal("user VMA crossing 4 GiB accepted")
	}
	kern := a.KernVMStart() + 2*Size4G
	b, err := New(1, Options{KernVMStart: kern})
	if err == nil {
		if b.KernVMStart() != kern {
			t.Errorf("kern_vm_start %#x, want %#x", b.KernVMStart(), kern)
		}
		b.Close()
	}
}

// Many scattered single-page allocations fragment both views into many
// mappings; once vm.max_map_count is reached allocation must return 0, not
// crash, and freeing must still work.
func TestMapCountPressure(t *testing.T) {
	if testing.Short() {
		t.Skip("maps tens of thousands of pages")
	}
	const pages = 200000
	a := newArena(t, pages, Options{})
	u0 := a.UserVMStart()
	ok, failed := 0, 0
	for pg := uint64(0); pg < pages; pg += 2 {
		if a.AllocPages(u0+pg*PageSize, 1) != 0 {
			ok++
		} else {
			failed++
			if failed > 10 {
				break
			}
		}
	}
	if failed == 0 {
		t.Logf("no allocation failed after %d fragmented pages (max_map_count is large)", ok)
	} else {
		t.Logf("%d fragmented pages allocated before NULL", ok)
	}
	if a.AllocatedPages() != ok {
		t.Fatalf("bookkeeping: %d allocated, %d succeeded", a.AllocatedPages(), ok)
	}
	// Every allocated page is usable through both views.
	for pg := uint64(0); pg < pages; pg += 2 {
		u := u0 + pg*PageSize
		if !a.PageAllocated(u) {
			continue
		}
		b := a.Bytes(u, 8)
		b[0] = 1
		if *(*byte)(a.Lookup(a.Kern(u), 1)) != 1 {
			t.Fatalf("page %d: views disagree", pg)
		}
	}
	a.FreePages(u0, pages)
	if a.AllocatedPages() != 0 {
		t.Fatal("free after pressure")
	}
	if a.AllocPages(0, 1) == 0 {
		t.Fatal("allocation after freeing everything failed")
	}
}

func TestConcurrent(t *testing.T) {
	a := newArena(t, 256, Options{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				u := a.AllocPages(0, 1+i%3)
				if u == 0 {
					continue
				}
				b := a.Bytes(u, 8)
				if b == nil {
					t.Error("allocated page not accessible")
					return
				}
				if b[0] != 0 {
					t.Error("fresh page not zero")
					return
				}
				b[0] = byte(g + 1)
				if a.Lookup(a.Kern(u), 1) == nil {
					t.Error("lookup")
					return
				}
				a.FreePages(u, 1+i%3)
			}
		}(g)
	}
	wg.Wait()
	if a.AllocatedPages() != 0 {
		t.Fatalf("%d pages leaked", a.AllocatedPages())
	}
}

func TestClosed(t *testing.T) {
	a, err := New(4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := a.AllocPages(0, 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a.AllocPages(0, 1) != 0 || a.Bytes(u, 1) != nil || a.Lookup(a.Kern(u), 1) != nil {
		t.Fatal("closed arena still usable")
	}
	a.FreePages(u, 1)
	if err := a.Close(); err != nil {
		t.Fatal("double close")
	}
	if _, err := New(0, Options{}); err == nil {
		t.Fatal("zero pages")
	}
}

func TestLoadGlobals(t *testing.T) {
	a := newArena(t, 8, Options{})
	u, err := a.LoadGlobals([]byte{1, 2, 3}, PageSize+10)
	if err != nil {
		t.Fatal(err)
	}
	if want := a.UserVMStart() + 6*PageSize; u != want {
		t.Fatalf("globals at %#x, want %#x", u, want)
	}
	if b := a.Bytes(u, 2*PageSize); b == nil || b[2] != 3 || b[PageSize+9] != 0 {
		t.Fatal("globals content")
	}
	if _, err := a.LoadGlobals(nil, 0); err == nil {
		t.Fatal("empty globals accepted")
	}
	if _, err := a.LoadGlobals(nil, 9*PageSize); err == nil {
		t.Fatal("oversized globals accepted")
	}
	if _, err := a.LoadGlobals([]byte{1}, 1); err == nil {
		t.Fatal("globals loaded twice")
	}
}

// A user_vm_start whose low 32 bits are not zero: page offsets, kernel
// addresses and lookups are all relative to it.
func TestNonZeroLow32UserBase(t *testing.T) {
	const user = 0x7e3480000000 // lo32 = 0x80000000
	a, err := New(8, Options{UserVMStart: user})
	if err != nil {
		t.Skip("fixed address not available:", err)
	}
	defer a.Close()
	u := a.AllocPages(0, 2)
	if u != user {
		t.Fatalf("alloc at %#x", u)
	}
	if k := a.Kern(u + PageSize + 8); k != a.KernVMStart()+0x80000000+PageSize+8 {
		t.Fatalf("Kern = %#x", k)
	}
	a.Bytes(u+PageSize, 16)[8] = 0x5a
	if p := a.Lookup(a.Kern(u+PageSize+8), 1); p == nil || *(*byte)(p) != 0x5a {
		t.Fatal("kernel view of the second page")
	}
	if a.Lookup(a.KernVMStart()+PageSize, 1) != nil {
		t.Fatal("kernel address below lo32(user_vm_start) is not in the arena")
	}
	if a.User(a.Kern(u+PageSize+8)) != u+PageSize+8 || a.PageOffset(u+PageSize) != 1 {
		t.Fatal("round trip")
	}
	if got := a.AllocPages(uint64(uint32(u+4*PageSize)), 1); got != u+4*PageSize {
		t.Fatalf("alloc by 32-bit pointer gave %#x", got)
	}
}

func TestLoadGlobalsClosed(t *testing.T) {
	a, err := New(2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := a.LoadGlobals([]byte{1}, 1); err != ErrClosed {
		t.Fatalf("LoadGlobals on a closed arena: %v", err)
	}
}
