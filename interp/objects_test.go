package interp

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/ir/elf"
)

// testdata/elf/maps.o: a hash map, an array map, .data/.bss/.rodata and
// the map helpers, ktime and trace_printk.
func TestObjectWithMaps(t *testing.T) {
	obj, err := elf.Load("../testdata/elf/maps.o")
	if err != nil {
		t.Skip(err)
	}
	maps, err := ObjectMaps(obj)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"counters", "stamps", ".data", ".bss", ".rodata"} {
		if maps[name] == nil {
			t.Fatalf("no map %s (have %v)", name, maps)
		}
	}
	count := obj.Program("count_packets")
	q, err := Prepare(count.Prog, Options{Maps: maps})
	if err != nil {
		t.Fatal(err)
	}
	skb := make([]byte, 192)
	for run := 1; run <= 3; run++ {
		res, err := q.Run(RunOptions{Ctx: skb, Rand: uint64(run)})
		if err != nil {
			t.Fatal(err)
		}
		if res.R0 != 1 {
			t.Fatalf("run %d: r0 = %d, want 1 (hits < limit)", run, res.R0)
		}
	}
	if hits := binary.LittleEndian.Uint32(maps[".bss"].Values()); hits != 3 {
		t.Errorf("hits = %d, want 3", hits)
	}
	if n := maps["counters"].Len(); n < 1 || n > 3 {
		t.Errorf("counters has %d entries", n)
	}
	total := binary.LittleEndian.Uint64(maps[".data"].Values())
	if total < 1 || total > 1+3*63 {
		t.Errorf("total = %d", total)
	}

	stamp := obj.Program("stamp")
	q, err = Prepare(stamp.Prog, Options{Maps: maps})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := q.Run(RunOptions{Ctx: make([]byte, 32), Trace: &out})
	if err != nil || res.R0 != 2 {
		t.Fatalf("stamp: r0=%d err=%v", res.R0, err)
	}
	v, _ := maps["stamps"].Get([]byte{0, 0, 0, 0})
	ts := binary.LittleEndian.Uint64(v)
	if ts == 0 || !strings.HasPrefix(out.String(), "stamp ") || !strings.Contains(out.String(), "\n") {
		t.Fatalf("stamp %d, trace %q", ts, out.String())
	}
}

// testdata/elf/calls.o caller_two: static and global bpf-to-bpf calls and
// kfuncs (rcu lock/unlock as no-ops).
func TestObjectWithCalls(t *testing.T) {
	obj, err := elf.Load("../testdata/elf/calls.o")
	if err != nil {
		t.Skip(err)
	}
	p := obj.Program("caller_two")
	q, err := Prepare(p.Prog, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Run(RunOptions{Ctx: make([]byte, 8)})
	if err != nil {
		t.Fatal(err)
	}
	// mix(square_sum(5), 3) computed in Go.
	mix := func(a, b uint64) uint64 { return (a ^ (b << 13)) + (b >> 3) }
	s := uint64(0)
	for i := uint64(0); i < 5; i++ {
		s = mix(s, i*i)
	}
	if want := uint64(uint32(mix(s, 3))); uint64(uint32(res.R0)) != want {
		t.Fatalf("r0 = %#x, want %#x", res.R0, want)
	}
}

// testdata/elf/arena_globals.o: arena globals placed by arena.LoadGlobals.
func TestObjectWithArenaGlobals(t *testing.T) {
	obj, err := elf.Load("../testdata/elf/arena_globals.o")
	if err != nil || obj.Arena == nil {
		t.Skip(err)
	}
	var pages, extra uint64 = 4, 1 << 44
	for _, m := range obj.Maps {
		if m.Name == obj.Arena.Map {
			pages, extra = uint64(m.MaxEntries), m.MapExtra
		}
	}
	a, err := arena.New(int(pages), arena.Options{UserVMStart: extra})
	if err != nil {
		t.Skip(err)
	}
	defer a.Close()
	base, err := a.LoadGlobals(obj.Arena.Data, obj.Arena.Size)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Prepare(obj.Program("arena_bump").Prog, Options{Arena: a,
		Symbols: map[string]uint64{elf.ArenaSection: base, obj.Arena.Map: fakeMapAddr}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		res, err := q.Run(RunOptions{Ctx: make([]byte, 8)})
		if err != nil || res.R0 != uint64(i) {
			t.Fatalf("run %d: r0=%d err=%v", i, res.R0, err)
		}
	}
	// slots[] = {1, 2, 3, ...}: runs 1..3 added 5 to slots[1], slots[2], slots[3].
	g := a.Bytes(base, obj.Arena.Size)
	var slots [4]uint32
	// The section layout is the compiler's: find slots[] by its contents.
	for off := 0; off+16 <= len(g); off += 4 {
		if binary.LittleEndian.Uint32(g[off:]) == 1 && binary.LittleEndian.Uint32(g[off+4:]) == 7 {
			for k := range slots {
				slots[k] = binary.LittleEndian.Uint32(g[off+4*k:])
			}
		}
	}
	if slots != [4]uint32{1, 7, 8, 5} {
		t.Fatalf("globals: slots %v (% x)", slots, g)
	}
}

// testdata/elf/calls.o caller_one: bpf_loop with a static callback.
func TestObjectWithBpfLoop(t *testing.T) {
	obj, err := elf.Load("../testdata/elf/calls.o")
	if err != nil {
		t.Skip(err)
	}
	q, err := Prepare(obj.Program("caller_one").Prog, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Run(RunOptions{Ctx: make([]byte, 192)})
	if err != nil {
		t.Fatal(err)
	}
	mix := func(a, b uint64) uint64 { return (a ^ (b << 13)) + (b >> 3) }
	acc := uint64(0)
	for i := uint64(0); i < 10; i++ {
		acc = mix(acc, i*i)
	}
	for i := uint64(0); i < 8; i++ {
		acc = mix(acc, i)
	}
	if want := uint64(int32(acc) & 1); uint64(uint32(res.R0)) != want {
		t.Fatalf("r0 = %d, want %d", res.R0, want)
	}
}
