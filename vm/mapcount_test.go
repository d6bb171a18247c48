package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
)

// TestMapCountPressure: when the process has no memory mappings left
// (vm.max_map_count reached), a run that needs a new stack fails with an
// error, bpf_arena_alloc_pages returns NULL, and both work again once
// mappings are released — nothing crashes. The pressure is made in a child
// process (this test binary re-run), so the parent is never short of
// mappings; the child fragments a reserved region page by page until
// mprotect fails with ENOMEM.
func TestMapCountPressure(t *testing.T) {
	if os.Getenv("BPFC_MAPCOUNT_CHILD") == "1" {
		mapCountChild()
		return
	}
	if testing.Short() {
		t.Skip("fragments the address space up to vm.max_map_count; skipped with -short")
	}
	if raceEnabled {
		t.Skip("the race detector's runtime maps shadow memory as it goes: it cannot live at the map limit")
	}
	// At the limit the Go runtime itself occasionally needs a mapping
	// (span metadata) and dies; that is the runtime's, not the vm's,
	// failure, so such a child is retried.
	var s string
	var err error
	for attempt := 1; attempt <= 4; attempt++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMapCountPressure$", "-test.v")
		cmd.Env = append(os.Environ(), "BPFC_MAPCOUNT_CHILD=1")
		var out []byte
		out, err = cmd.CombinedOutput()
		s = string(out)
		if !strings.Contains(s, "fatal error: runtime: cannot allocate memory") && !strings.Contains(s, "fatal error: out of memory") {
			break
		}
		t.Logf("attempt %d: the Go runtime ran out of mappings itself; retrying", attempt)
	}
	if strings.Contains(s, "SKIP:") {
		t.Skip(s)
	}
	if err != nil || !strings.Contains(s, "mapcount: done") {
		t.Fatalf("child: %v\n%s", err, s)
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "mapcount:") {
			t.Log(line)
		}
	}
}

// pressure fragments a reserved PROT_NONE region into single-page VMAs.
type pressure struct {
	region []byte
	next   int // next page to mprotect
}

const pressurePages = 80_000 // two VMAs per page above the default 65,530

func newPressure() (*pressure, error) {
	b, err := unix.Mmap(-1, 0, pressurePages*pageSize, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	return &pressure{region: b, next: 1}, nil
}

// fill splits the region until the kernel refuses (ENOMEM); it returns the
// number of splits.
func (p *pressure) fill() (int, error) {
	n := 0
	for ; p.next < pressurePages-1; p.next += 2 {
		err := unix.Mprotect(p.region[p.next*pageSize:(p.next+1)*pageSize], unix.PROT_READ)
		if err == unix.ENOMEM {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, fmt.Errorf("region of %d pages did not exhaust the map count", pressurePages)
}

// release undoes the last k splits (merging the pages back).
func (p *pressure) release(k int) {
	for ; k > 0 && p.next > 1; k-- {
		p.next -= 2
		unix.Mprotect(p.region[p.next*pageSize:(p.next+1)*pageSize], unix.PROT_NONE)
	}
}

func mapCountChild() {
	say := func(format string, args ...any) { fmt.Printf("mapcount: "+format+"\n", args...) }
	die := func(format string, args ...any) {
		say("FAIL "+format, args...)
		os.Exit(1)
	}
	// Everything the test needs that maps memory is set up first.
	if _, err := CallBase(); err != nil {
		fmt.Println("SKIP: vm:", err)
		os.Exit(0)
	}
	a, err := arena.New(4096, arena.Options{})
	if err != nil {
		fmt.Println("SKIP: arena:", err)
		os.Exit(0)
	}
	seven, err := Load(ir.NewProgram("seven", []ir.Instruction{mov64K(ir.R0, 7), exitInsn}), &LoadOptions{})
	if err != nil {
		die("load: %v", err)
	}
	ap := allocAtProgram()
	alloc, err := Load(ap, &LoadOptions{Options: Options{Arena: a, Helpers: helpers.Kernel()}, Context: stressContext()})
	if err != nil {
		die("load alloc: %v", err)
	}
	// The Go runtime maps more memory only when its heap grows: grow it
	// now, so that while the process is out of mappings the runtime
	// reuses what it has (otherwise the runtime itself dies with "out
	// of memory allocating heap arena metadata").
	// Many small objects of every size too, so that the span structures
	// (persistentalloc'd, never freed) exist and are recycled.
	grow := make([]byte, 512<<20)
	for i := 0; i < len(grow); i += 4096 {
		grow[i] = 1
	}
	var small [][]byte
	for size := 8; size <= 64<<10; size *= 2 {
		for n := 0; n < (4<<20)/size; n++ {
			small = append(small, make([]byte, size))
		}
	}
	grow, small = nil, nil
	runtime.GC()
	runtime.GC()
	debug.SetGCPercent(-1)
	pr, err := newPressure()
	if err != nil {
		die("reserve: %v", err)
	}
	n, err := pr.fill()
	if err != nil {
		die("%v", err)
	}
	say("address space fragmented: %d extra mappings until ENOMEM", 2*n)

	// 1. No stack yet and no mapping left: the run fails with an error.
	_, err = seven.Run(context.Background())
	if err == nil {
		say("run without free mappings succeeded (a stack was cached)")
	} else {
		say("run without free mappings: %v", err)
		if !strings.Contains(err.Error(), "cannot allocate memory") {
			die("unexpected error: %v", err)
		}
	}
	// Failed attempts leave no stack slab mapped behind (before the fix
	// each leaked one, and the runtime soon died of the shortage).
	before := mappedBytes()
	for i := 0; i < 10; i++ {
		if _, err := seven.Run(context.Background()); err == nil {
			break
		}
	}
	// (The runtime may map a little meanwhile; a leaked stack slab is
	// 17 x 64 KiB per failure.)
	if after := mappedBytes(); after > before+stackRegion*(stacksPerSlab+1) {
		die("10 failed runs left %d bytes mapped", after-before)
	}
	// 2. With some mappings back, runs work again.
	pr.release(200)
	if got, err := seven.Run(context.Background()); err != nil || got != 7 {
		die("run after release: %d, %v", got, err)
	}
	// 3. Fragmenting arena allocations under pressure end in NULL.
	if _, err := pr.fill(); err != nil {
		die("%v", err)
	}
	ok, null := 0, 0
	u0 := a.UserVMStart()
	for pg := uint64(0); pg < 4096 && null < 8; pg += 2 {
		got, err := alloc.Run(context.Background(), u0+pg*arena.PageSize)
		if err != nil {
			die("alloc run: %v", err)
		}
		if got == 0 {
			null++
		} else {
			ok++
		}
	}
	say("under pressure: %d scattered arena pages allocated, then %d NULLs", ok, null)
	if null == 0 {
		die("no allocation failed under map-count pressure")
	}
	pr.release(1 << 30)
	a.FreePages(u0, 4096)
	if got, err := alloc.Run(context.Background(), u0); err != nil || got != u0 {
		die("alloc after release: %#x, %v", got, err)
	}
	unix.Munmap(pr.region)
	say("done")
	os.Exit(0)
}

// allocAtProgram: r0 = bpf_arena_alloc_pages(&arena, (void *)r1, 1, -1, 0).
func allocAtProgram() *ir.Program {
	m := ir.LdImm64(ir.R6, 0)
	m[0].Src = ir.PseudoMapFD
	p := ir.NewProgram("alloc_at", []ir.Instruction{
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R2, Src: ir.R1},
		m[0], m[1],
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov) | uint8(ir.SourceX), Dst: ir.R1, Src: ir.R6},
		mov64K(ir.R3, 1), mov64K(ir.R4, -1), mov64K(ir.R5, 0),
		{Op: ir.OpCall, Src: ir.CallKfunc},
		exitInsn,
	})
	p.Aux[1].Symbol, p.Aux[1].SymbolKind = "arena", ir.SymMap
	p.Aux[7].Symbol, p.Aux[7].SymbolKind = helpers.KfuncArenaAllocPages, ir.SymKfunc
	p.UsesArena = true
	return p
}

// mappedBytes is the total size of the process's mappings.
func mappedBytes() uint64 {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	var total uint64
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil {
			total += hi - lo
		}
	}
	return total
}
