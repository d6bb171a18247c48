package vm

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/extable"
)

// Read by sigtramp (vm_amd64.s); written only through the atomic package.
var (
	codeLo, codeHi uintptr // the code region's rx view
	faultTable     uintptr // off-heap: [count uint64][faultEntry...], sorted by pc
	inHandler      int64   // handlers between entry and return
	goHandler      uintptr // Go's own SIGSEGV/SIGBUS handler
)

// stackTable lists the private stack regions ([lo, hi) pairs) for sigtramp:
// entries are written before stackTableN is raised, and never change.
var (
	stackTable  [4096][2]uintptr
	stackTableN int64
	stackMu     sync.Mutex
)

// registerStack adds the stack region at base to stackTable (once per
// region: the context page remembers it). Beyond the table's capacity a
// region is simply not registered: a stray fault there kills the process
// as it would without the vm.
func registerStack(base uintptr) {
	stackMu.Lock()
	defer stackMu.Unlock()
	n := atomic.LoadInt64(&stackTableN)
	if int(n) >= len(stackTable) {
		return
	}
	stackTable[n] = [2]uintptr{base, base + stackRegion}
	atomic.StoreInt64(&stackTableN, n+1)
}

// faultEntry is one fault-table entry as sigtramp reads it.
type faultEntry struct {
	pc    uint64
	len   uint32
	clear uint32 // ucontext offset of the register to clear, 0 for none
}

// sigaction is the kernel's struct sigaction for rt_sigaction on x86-64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const saOnStack = 0x08000000

// ucontext_t gregs offsets by pt_regs offset / 8 (r15 at 0 ... rdi at 14).
// gregs starts at 40; order r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx
// rdx rax rcx rsp rip.
var ucontextOffset = [15]uint32{
	40 + 7*8,  // r15
	40 + 6*8,  // r14
	40 + 5*8,  // r13
	40 + 4*8,  // r12
	40 + 10*8, // rbp
	40 + 11*8, // rbx
	40 + 3*8,  // r11
	40 + 2*8,  // r10
	40 + 1*8,  // r9
	40 + 0*8,  // r8
	40 + 13*8, // rax
	40 + 14*8, // rcx
	40 + 12*8, // rdx
	40 + 9*8,  // rsi
	40 + 8*8,  // rdi
}

var installOnce struct {
	sync.Once
	err error
}

// installHandler installs sigtramp for SIGSEGV, SIGBUS, SIGFPE, SIGILL and
// SIGTRAP, keeping Go's
// flags, mask and restorer and remembering Go's handler to chain to.
func installHandler() error {
	installOnce.Do(func() {
		_, _, sig := stubAddrs()
		sigs := []uintptr{uintptr(unix.SIGSEGV), uintptr(unix.SIGBUS), uintptr(unix.SIGFPE), uintptr(unix.SIGILL), uintptr(unix.SIGTRAP)}
		old := make([]sigaction, len(sigs))
		for i, s := range sigs {
			if r := rtSigaction(s, nil, unsafe.Pointer(&old[i])); r != 0 {
				installOnce.err = fmt.Errorf("vm: rt_sigaction(%d): errno %d", s, -r)
				return
			}
		}
		for i := range old {
			if old[i].handler != old[0].handler || old[i].handler <= 1 || old[i].flags&saOnStack == 0 {
				installOnce.err = fmt.Errorf("vm: signal %d: unexpected handler %#x flags %#x (Go's is %#x)",
					sigs[i], old[i].handler, old[i].flags, old[0].handler)
				return
			}
		}
		atomic.StoreUintptr(&goHandler, old[0].handler)
		for i, s := range sigs {
			n := old[i]
			n.handler = sig
			n.flags |= saOnStack
			if r := rtSigaction(s, unsafe.Pointer(&n), nil); r != 0 {
				installOnce.err = fmt.Errorf("vm: rt_sigaction(%d): errno %d", s, -r)
				return
			}
		}
	})
	return installOnce.err
}

// faults is the set of exception-table entries of all loaded programs.
var faults struct {
	mu     sync.Mutex
	byProg map[int][]faultEntry // by the program's offset in the code region
	cur    []byte               // the published table's mapping
}

// faultEntries converts an image's extable (addresses where the code runs)
// into fault-table entries.
func faultEntries(t *extable.Table) ([]faultEntry, error) {
	if t == nil {
		return nil, nil
	}
	out := make([]faultEntry, 0, len(t.Entries))
	for k, e := range t.Entries {
		fe := faultEntry{pc: t.InsnAddr(k), len: uint32(e.InsnLen())}
		if e.Type() != extable.TypeBPF {
			return nil, fmt.Errorf("vm: extable entry %d: type %d, want %d", k, e.Type(), extable.TypeBPF)
		}
		if e.Clears() {
			r := e.ClearReg()
			if r%8 != 0 || int(r/8) >= len(ucontextOffset) {
				return nil, fmt.Errorf("vm: extable entry %d: bad register offset %d", k, r)
			}
			fe.clear = ucontextOffset[r/8]
		}
		if fe.len == 0 {
			return nil, fmt.Errorf("vm: extable entry %d: zero instruction length", k)
		}
		out = append(out, fe)
	}
	return out, nil
}

// publishFaults sets the entries of the program at offset prog of the code
// region (nil removes them) and publishes a new table. The old table is
// unmapped once no handler can be reading it.
func publishFaults(prog int, entries []faultEntry) error {
	faults.mu.Lock()
	defer faults.mu.Unlock()
	if faults.byProg == nil {
		faults.byProg = map[int][]faultEntry{}
	}
	if entries == nil {
		delete(faults.byProg, prog)
	} else {
		faults.byProg[prog] = entries
	}
	var all []faultEntry
	for _, es := range faults.byProg {
		all = append(all, es...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].pc < all[j].pc })
	for i := 1; i < len(all); i++ {
		if all[i].pc == all[i-1].pc {
			return fmt.Errorf("vm: two exception-table entries for pc %#x", all[i].pc)
		}
	}
	var mem []byte
	var addr uintptr
	if len(all) > 0 {
		size := 8 + len(all)*int(unsafe.Sizeof(faultEntry{}))
		var err error
		mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("vm: mmap fault table: %w", err)
		}
		*(*uint64)(unsafe.Pointer(&mem[0])) = uint64(len(all))
		copy(unsafe.Slice((*faultEntry)(unsafe.Pointer(&mem[8])), len(all)), all)
		addr = uintptr(unsafe.Pointer(&mem[0]))
	}
	atomic.StoreUintptr(&faultTable, addr)
	old := faults.cur
	faults.cur = mem
	if old != nil {
		// A handler that loaded the old pointer incremented inHandler
		// before loading it; wait for all such handlers to return.
		for atomic.LoadInt64(&inHandler) != 0 {
			runtime.Gosched()
		}
		unix.Munmap(old)
	}
	return nil
}

// lookupFault is the Go mirror of sigtramp's search, for tests.
func lookupFault(pc uint64) (faultEntry, bool) {
	t := atomic.LoadUintptr(&faultTable)
	if t == 0 {
		return faultEntry{}, false
	}
	faults.mu.Lock()
	defer faults.mu.Unlock()
	n := *(*uint64)(unsafe.Pointer(&faults.cur[0]))
	es := unsafe.Slice((*faultEntry)(unsafe.Pointer(&faults.cur[8])), n)
	k := sort.Search(len(es), func(k int) bool { return es[k].pc >= pc })
	if k < len(es) && es[k].pc == pc {
		return es[k], true
	}
	return faultEntry{}, false
}
