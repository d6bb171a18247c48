package helpers

import (
	"bytes"
	"os"
	"testing"

	"github.com/bpfc/bpfc/arena"
)

// flatMem is a Memory over one slice at a fake base address.
type flatMem struct {
	base uint64
	b    []byte
}

func (m flatMem) Bytes(addr uint64, n int, _ bool) []byte {
	if addr < m.base || addr-m.base+uint64(n) > uint64(len(m.b)) {
		return nil
	}
	return m.b[addr-m.base : addr-m.base+uint64(n)]
}

func TestRegistry(t *testing.T) {
	r := Kernel()
	for _, id := range []int32{IDKtimeGetNs, IDTracePrintk, IDGetPrandomU32, IDKtimeGetBootNs} {
		if _, ok := r.Helper(id); !ok || r.Func(id) == nil {
			t.Errorf("kernel helper %d missing", id)
		}
	}
	if r.Func(IDTailCall) != nil {
		t.Error("tail call must not be a function")
	}
	if _, ok := r.Helper(4000); ok {
		t.Error("unknown helper found")
	}
	if _, err := r.ResolveKfunc(KfuncArenaAllocPages, 0); err != nil {
		t.Error(err)
	}
	if _, err := r.ResolveKfunc("nope", 0); err == nil {
		t.Error("unknown kfunc name resolved")
	}
	if _, err := r.ResolveKfunc("", 77); err == nil {
		t.Error("unknown kfunc id resolved")
	}
	if !r.SetKfuncID(KfuncArenaFreePages, 77) {
		t.Fatal("SetKfuncID")
	}
	if h, err := r.ResolveKfunc("", 77); err != nil || h.Name != KfuncArenaFreePages {
		t.Errorf("by id: %v %v", h, err)
	}
	c := Conformance().Clone()
	c.Register(5000, "big", Unwind)
	if c.Func(5000) == nil || c.Func(IDConformanceUnwind) == nil || len(c.Helpers()) != 2 || len(c.Kfuncs()) != 2 {
		t.Error("clone/register")
	}
}

func TestUnwind(t *testing.T) {
	var c Context
	if got := Unwind(&c, 7, 0, 0, 0, 0); got != 7 || c.Interrupted() {
		t.Fatalf("unwind(7) = %d stopped=%v", got, c.Interrupted())
	}
	Unwind(&c, 0, 0, 0, 0, 0)
	if ret, ok := c.Stopped(); !ok || ret != 0 {
		t.Fatal("unwind(0) did not stop")
	}
	c.Reset()
	if c.Interrupted() {
		t.Fatal("reset")
	}
}

func TestPrintk(t *testing.T) {
	mem := flatMem{base: 0x1000, b: make([]byte, 256)}
	put := func(off int, s string) uint64 { copy(mem.b[off:], s+"\x00"); return mem.base + uint64(off) }
	str := put(128, "world")
	tests := []struct {
		format     string
		a1, a2, a3 uint64
		want       string
	}{
		{"plain\n", 0, 0, 0, "plain\n"},
		{"%d %u %x", 0xffffffff, 0xffffffff, 255, "-1 4294967295 ff"},
		{"%lld %llu", ^uint64(0), ^uint64(0), 0, "-1 18446744073709551615"},
		{"%5d|%-4x|%08lx", 42, 10, 0xabc, "   42|a   |00000abc"},
		{"hello %s %c%%", str, 'x', 0, "hello world x%"},
		{"%p", 0x1234, 0, 0, "0x1234"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		c := Context{Mem: mem, Trace: &out}
		f := put(0, tc.format)
		n := TracePrintk(&c, f, uint64(len(tc.format)+1), tc.a1, tc.a2, tc.a3)
		if out.String() != tc.want || n != uint64(len(tc.want)) {
			t.Errorf("%q: got %q (%d), want %q", tc.format, out.String(), n, tc.want)
		}
	}
	c := Context{Mem: mem}
	for _, bad := range []string{"%d %d %d %d", "%q", "%s", "%"} {
		f := put(0, bad)
		if r := TracePrintk(&c, f, uint64(len(bad)+1), 0, 0, 0); int64(r) != -22 {
			t.Errorf("%q: got %d, want -EINVAL", bad, int64(r))
		}
	}
	if r := TracePrintk(&c, 0x99999, 4, 0, 0, 0); int64(r) != -22 {
		t.Error("unreadable format accepted")
	}
	copy(mem.b, "abc")
	if r := TracePrintk(&c, mem.base, 3, 0, 0, 0); int64(r) != -22 {
		t.Error("format without NUL accepted")
	}
}

func TestRandAndClock(t *testing.T) {
	var c Context
	a, b := GetPrandomU32(&c, 0, 0, 0, 0, 0), GetPrandomU32(&c, 0, 0, 0, 0, 0)
	if a == b || a>>32 != 0 {
		t.Errorf("prandom %x %x", a, b)
	}
	c.Clock = func() uint64 { return 99 }
	if KtimeGetNs(&c, 0, 0, 0, 0, 0) != 99 {
		t.Error("clock")
	}
	if KtimeGetNs(&Context{}, 0, 0, 0, 0, 0) == 0 {
		t.Error("monotonic clock is zero")
	}
}

func TestArenaKfuncs(t *testing.T) {
	a, err := arena.New(4, arena.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c := Context{Arena: a}
	p := ArenaAllocPages(&c, 0, 0, 2, ^uint64(0), 0)
	if p != a.UserVMStart() {
		t.Fatalf("alloc gave %#x", p)
	}
	if ArenaAllocPages(&c, 0, 0, 1, 0, 1) != 0 || ArenaAllocPages(&c, 0, 0, 0, 0, 0) != 0 {
		t.Error("flags or zero count accepted")
	}
	if ArenaAllocPages(&Context{}, 0, 0, 1, 0, 0) != 0 {
		t.Error("alloc without arena")
	}
	ArenaFreePages(&c, 0, p, 2, 0, 0)
	if a.AllocatedPages() != 0 {
		t.Error("free")
	}
}

func TestProbeReadAndPid(t *testing.T) {
	mem := flatMem{base: 0x1000, b: make([]byte, 64)}
	copy(mem.b[32:], "abcdefgh")
	c := &Context{Mem: mem}
	if r := ProbeRead(c, 0x1000, 8, 0x1020, 0, 0); r != 0 || string(mem.b[:8]) != "abcdefgh" {
		t.Fatalf("probe read: %d %q", int64(r), mem.b[:8])
	}
	if r := ProbeRead(c, 0x1000, 8, 0x9999, 0, 0); int64(r) != -14 || mem.b[0] != 0 {
		t.Fatalf("probe read of a bad address: %d %q", int64(r), mem.b[:8])
	}
	if ProbeRead(c, 0x1000, 0, 0, 0, 0) != 0 || c.Interrupted() {
		t.Fatal("zero-size read")
	}
	ProbeRead(c, 0x5000, 8, 0x1020, 0, 0)
	if c.Err() == nil {
		t.Fatal("unwritable destination did not abort")
	}
	if v := GetCurrentPidTgid(nil, 0, 0, 0, 0, 0); v>>32 != uint64(os.Getpid()) || uint32(v) == 0 {
		t.Fatalf("pid_tgid %#x", v)
	}
}

func TestCheckTimedMayGoto(t *testing.T) {
	st := make([]byte, 16)
	if CheckTimedMayGoto(st, 100) != MaxTimedLoops || st[8] != 100 {
		t.Fatal("fresh slot not stamped")
	}
	if CheckTimedMayGoto(st, 100+249_999_999) != MaxTimedLoops {
		t.Fatal("expired early")
	}
	if CheckTimedMayGoto(st, 100+250_000_000) != 0 {
		t.Fatal("did not expire")
	}
	c := &Context{}
	TimedMayGotoPlaceholder(c, 0, 0, 0, 0, 0)
	if c.Err() == nil {
		t.Fatal("placeholder called without error")
	}
}
