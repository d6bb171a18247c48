package arena_test

import (
	"fmt"

	"github.com/bpfc/bpfc/arena"
)

// An arena has two views of the same pages: the user view (the addresses
// a program's arena pointers hold after a cast to user, and what Go reads
// with Bytes) and the kernel view that compiled code reaches as
// kern_vm_start + the low 32 bits.
func ExampleNew() {
	a, err := arena.New(4, arena.Options{UserVMStart: 1 << 44})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	u := a.AllocPages(0, 1) // bpf_arena_alloc_pages(&arena, NULL, 1, ...)
	fmt.Printf("page at user %#x, offset %#x\n", u, a.PageOffset(u))
	copy(a.Bytes(u, 5), "hello")
	k := a.Kern(u) // where the JIT'ed code reaches it
	fmt.Printf("kernel view: kern_vm_start+%#x reads %q\n", k-a.KernVMStart(), a.KernBytes(k, 5))
	fmt.Println("allocated pages:", a.AllocatedPages(), "unallocated page readable:", a.Bytes(u+4096, 1) != nil)
	// Output:
	// page at user 0x100000000000, offset 0x0
	// kernel view: kern_vm_start+0x0 reads "hello"
	// allocated pages: 1 unallocated page readable: false
}
