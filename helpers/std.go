package helpers

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel helper ids (enum bpf_func_id in include/uapi/linux/bpf.h).
const (
	IDKtimeGetNs         = 5
	IDTracePrintk        = 6
	IDGetPrandomU32      = 7
	IDGetSmpProcessorID  = 8
	IDTailCall           = 12
	IDKtimeGetBootNs     = 125
	IDJiffies64          = 118
	IDProbeRead          = 4
	IDGetCurrentPidTgid  = 14
	IDProbeReadUser      = 112
	IDProbeReadKernel    = 113
	IDLoop               = 181
	IDConformanceUnwind  = 5 // the bpf_conformance suite's helper 5
	KfuncArenaAllocPages = "bpf_arena_alloc_pages"
	KfuncArenaFreePages  = "bpf_arena_free_pages"
)

var start = time.Now()

// Kernel returns a registry with bpf_map_lookup_elem/update_elem/
// delete_elem (array and hash maps, see Map), bpf_probe_read(_user,
// _kernel) within the run's memory, bpf_get_current_pid_tgid,
// bpf_ktime_get_ns,
// bpf_trace_printk, bpf_get_prandom_u32, bpf_get_smp_processor_id,
// bpf_ktime_get_boot_ns, the arena kfuncs and bpf_rcu_read_lock/unlock
// (no-ops). bpf_tail_call (12) is not a function: executors handle
// it themselves.
func Kernel() *Registry {
	r := NewRegistry()
	r.Register(IDKtimeGetNs, "bpf_ktime_get_ns", KtimeGetNs)
	r.Register(IDTracePrintk, "bpf_trace_printk", TracePrintk)
	r.Register(IDGetPrandomU32, "bpf_get_prandom_u32", GetPrandomU32)
	r.Register(IDGetSmpProcessorID, "bpf_get_smp_processor_id", func(*Context, uint64, uint64, uint64, uint64, uint64) uint64 { return 0 })
	r.Register(IDKtimeGetBootNs, "bpf_ktime_get_boot_ns", KtimeGetNs)
	r.Register(IDJiffies64, "bpf_jiffies64", Jiffies64)
	r.Register(IDProbeRead, "bpf_probe_read", ProbeRead)
	r.Register(IDProbeReadUser, "bpf_probe_read_user", ProbeRead)
	r.Register(IDProbeReadKernel, "bpf_probe_read_kernel", ProbeRead)
	r.Register(IDGetCurrentPidTgid, "bpf_get_current_pid_tgid", GetCurrentPidTgid)
	r.Register(IDLoop, NameLoop, LoopPlaceholder)
	r.Register(IDMapLookupElem, "bpf_map_lookup_elem", MapLookupElem)
	r.Register(IDMapUpdateElem, "bpf_map_update_elem", MapUpdateElem)
	r.Register(IDMapDeleteElem, "bpf_map_delete_elem", MapDeleteElem)
	nop := func(*Context, uint64, uint64, uint64, uint64, uint64) uint64 { return 0 }
	r.RegisterKfunc("bpf_rcu_read_lock", 0, nop)
	r.RegisterKfunc("bpf_rcu_read_unlock", 0, nop)
	addArena(r)
	return r
}

// Conformance returns the bpf_conformance suite's helpers: helper 5 is
// "unwind" (ubpf's test helper), plus the arena kfuncs.
func Conformance() *Registry {
	r := NewRegistry()
	r.Register(IDConformanceUnwind, "unwind", Unwind)
	addArena(r)
	return r
}

func addArena(r *Registry) {
	r.RegisterKfunc(KfuncArenaAllocPages, 0, ArenaAllocPages)
	r.RegisterKfunc(KfuncArenaFreePages, 0, ArenaFreePages)
}

// Unwind is the conformance suite's helper 5: with r1 == 0 the program stops
// at once and returns 0; otherwise it returns r1 and the program goes on.
func Unwind(c *Context, r1, _, _, _, _ uint64) uint64 {
	if r1 == 0 {
		c.Stop(0)
	}
	return r1
}

// KtimeGetNs is bpf_ktime_get_ns: monotonic nanoseconds (Context.Clock
// when set).
func KtimeGetNs(c *Context, _, _, _, _, _ uint64) uint64 {
	if c.Clock != nil {
		return c.Clock()
	}
	return uint64(time.Since(start).Nanoseconds())
}

// jiffiesHz is the tick rate Jiffies64 counts in (CONFIG_HZ=250, as on the
// build machine's kernel).
const jiffiesHz = 250

// Jiffies64 is bpf_jiffies64: ticks since start, counted from the kernel's
// INITIAL_JIFFIES (-300 s worth of ticks, truncated to 32 bits) so that it
// is never 0, as on a booted kernel.
func Jiffies64(c *Context, _, _, _, _, _ uint64) uint64 {
	const initial = uint64(1<<32 - 300*jiffiesHz)
	ns := KtimeGetNs(c, 0, 0, 0, 0, 0)
	return initial + ns/(1_000_000_000/jiffiesHz)
}

// GetPrandomU32 is bpf_get_prandom_u32: a xorshift64* generator whose state
// is Context.Rand (seeded with a constant when zero, so runs repeat).
func GetPrandomU32(c *Context, _, _, _, _, _ uint64) uint64 {
	x := c.Rand
	if x == 0 {
		x = 0x9e3779b97f4a7c15
	}
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	c.Rand = x
	return uint64(uint32((x * 0x2545f4914f6cdd1d) >> 32))
}

// ArenaAllocPages is the kfunc bpf_arena_alloc_pages(map, addr, page_cnt,
// node_id, flags): NULL without an arena, with flags set or page_cnt 0; the
// node id is ignored.
func ArenaAllocPages(c *Context, _, addr, cnt, _, flags uint64) uint64 {
	if c.Arena == nil || flags != 0 || uint32(cnt) == 0 {
		return 0
	}
	return c.Arena.AllocPages(addr, int(uint32(cnt)))
}

// ArenaFreePages is the kfunc bpf_arena_free_pages(map, ptr, page_cnt).
func ArenaFreePages(c *Context, _, ptr, cnt, _, _ uint64) uint64 {
	if c.Arena != nil && ptr != 0 && uint32(cnt) != 0 {
		c.Arena.FreePages(ptr, int(uint32(cnt)))
	}
	return 0
}

// TracePrintk is bpf_trace_printk(fmt, fmt_size, a1, a2, a3): it formats
// like the kernel (%d %i %u %x %X %c %s %p with optional l/ll, flags, width
// and precision, %%; at most three arguments) and writes the text to
// Context.Trace. It returns the number of bytes written, or -EINVAL (as
// u64) for a bad format.
func TracePrintk(c *Context, fmtPtr, fmtSize, a1, a2, a3 uint64) uint64 {
	const einval = ^uint64(22 - 1) // -22
	if fmtSize == 0 || fmtSize > 1<<16 || c.Mem == nil {
		return einval
	}
	f := c.Mem.Bytes(fmtPtr, int(fmtSize), false)
	if f == nil {
		return einval
	}
	if i := bytes.IndexByte(f, 0); i >= 0 {
		f = f[:i]
	} else {
		return einval // the kernel requires a NUL-terminated format
	}
	out, err := Sprintf(c, f, []uint64{a1, a2, a3})
	if err != nil {
		return einval
	}
	if c.Trace != nil {
		c.Trace.Write(out)
	}
	return uint64(len(out))
}

// Sprintf formats a BPF printk-style format with its u64 arguments; %s
// arguments are NUL-terminated strings read through c.Mem.
func Sprintf(c *Context, f []byte, args []uint64) ([]byte, error) {
	var out []byte
	n := 0
	for i := 0; i < len(f); i++ {
		ch := f[i]
		if ch != '%' {
			out = append(out, ch)
			continue
		}
		if i+1 < len(f) && f[i+1] == '%' {
			out = append(out, '%')
			i++
			continue
		}
		j := i + 1
		for j < len(f) && bytes.IndexByte([]byte("-+ 0#"), f[j]) >= 0 {
			j++
		}
		for j < len(f) && (f[j] >= '0' && f[j] <= '9' || f[j] == '.') {
			j++
		}
		spec := string(f[i:j]) // "%" flags width precision
		long := 0
		for j < len(f) && f[j] == 'l' && long < 2 {
			long++
			j++
		}
		if j >= len(f) {
			return nil, fmt.Errorf("format ends inside a conversion")
		}
		if n >= len(args) {
			return nil, fmt.Errorf("more than %d conversions", len(args))
		}
		v := args[n]
		n++
		verb := f[j]
		switch verb {
		case 'd', 'i':
			var x int64
			switch long {
			case 0:
				x = int64(int32(v))
			default:
				x = int64(v)
			}
			out = fmt.Appendf(out, spec+"d", x)
		case 'u', 'x', 'X':
			if long == 0 {
				v = uint64(uint32(v))
			}
			gv := map[byte]string{'u': "d", 'x': "x", 'X': "X"}[verb]
			out = fmt.Appendf(out, spec+gv, v)
		case 'c':
			out = append(out, byte(v))
		case 'p':
			out = append(out, "0x"...)
			out = strconv.AppendUint(out, v, 16)
		case 's':
			if c == nil || c.Mem == nil {
				return nil, fmt.Errorf("%%s without memory")
			}
			var s []byte
			for k := 0; k < 1024; k++ {
				b := c.Mem.Bytes(v+uint64(k), 1, false)
				if b == nil {
					return nil, fmt.Errorf("%%s argument %#x is not readable", v)
				}
				if b[0] == 0 {
					break
				}
				s = append(s, b[0])
			}
			out = fmt.Appendf(out, spec+"s", s)
		default:
			return nil, fmt.Errorf("unsupported conversion %%%c", verb)
		}
		i = j
	}
	return out, nil
}

// ProbeRead is bpf_probe_read_kernel(dst, size, unsafe_ptr) (and the user
// and legacy variants): it copies size bytes when the source is memory of
// the run; otherwise it zeroes dst and returns -EFAULT, as the kernel does
// for an unreadable address.
func ProbeRead(c *Context, dst, size, src, _, _ uint64) uint64 {
	if size == 0 {
		return 0
	}
	if size > 1<<20 || c.Mem == nil {
		return errno(errEINVAL)
	}
	d := c.Mem.Bytes(dst, int(size), true)
	if d == nil {
		c.Abort(fmt.Errorf("bpf_probe_read: destination %#x (%d bytes) is not writable memory", dst, size))
		return 0
	}
	s := c.Mem.Bytes(src, int(size), false)
	if s == nil {
		clear(d)
		return errno(errEFAULT)
	}
	copy(d, s)
	return 0
}

// GetCurrentPidTgid is bpf_get_current_pid_tgid: tgid << 32 | tid of the
// calling process and thread.
func GetCurrentPidTgid(*Context, uint64, uint64, uint64, uint64, uint64) uint64 {
	return uint64(os.Getpid())<<32 | uint64(uint32(unix.Gettid()))
}

// errno returns -e as a helper's u64 return value.
func errno(e int64) uint64 { return uint64(-e) }

// NameTimedMayGoto is the kernel function the verifier's timed may_goto
// expansion calls (BPF_CALL with imm = its address - __bpf_call_base, a
// kernel-specific value). Register a helper of this name at that id and the
// interpreter runs the call with the function's own convention (AX in and
// out, every other register preserved); the Func itself is not called.
const NameTimedMayGoto = "arch_bpf_timed_may_goto"

// MaxTimedLoops is BPF_MAX_TIMED_LOOPS, the count a timed may_goto refreshes to.
const MaxTimedLoops = 0xffff

// CheckTimedMayGoto is bpf_check_timed_may_goto on the 16-byte
// {u64 count; u64 timestamp} stack slot st at time now: it stamps a fresh
// slot and refreshes the count, and returns 0 once a quarter second has
// passed since the stamp.
func CheckTimedMayGoto(st []byte, now uint64) uint64 {
	ts := binary.LittleEndian.Uint64(st[8:])
	if ts == 0 {
		binary.LittleEndian.PutUint64(st[8:], now)
		return MaxTimedLoops
	}
	if now-ts >= 250_000_000 {
		return 0
	}
	return MaxTimedLoops
}

// TimedMayGotoPlaceholder is the Func to register under NameTimedMayGoto.
func TimedMayGotoPlaceholder(c *Context, _, _, _, _, _ uint64) uint64 {
	c.Abort(fmt.Errorf("%s must be executed by the executor, not called as a helper", NameTimedMayGoto))
	return 0
}

// NameLoop is bpf_loop(nr_loops, callback_fn, callback_ctx, flags): its
// callback is BPF code, so executors run it themselves (the interpreter runs
// each callback as a bpf-to-bpf call); LoopPlaceholder stands in the
// registry.
const NameLoop = "bpf_loop"

// LoopPlaceholder is the Func registered for bpf_loop: an executor that does
// not run callbacks fails the program with a clear error.
func LoopPlaceholder(c *Context, _, _, _, _, _ uint64) uint64 {
	c.Abort(fmt.Errorf("%s needs an executor that runs BPF callbacks", NameLoop))
	return 0
}
