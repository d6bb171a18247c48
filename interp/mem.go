package interp

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"github.com/bpfc/bpfc/arena"
	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
)

// region is accessible memory: [base, base+size) backed at ptr.
type region struct {
	base, size uint64
	ptr        unsafe.Pointer
	write      bool
	name       string
}

// machine is the per-run state; machines are pooled.
type machine struct {
	regs      [256]uint64
	stack     [stackSize]byte
	regions   []region
	frames    [MaxCallDepth]frame
	hctx      helpers.Context
	arena     *arena.Arena
	layout    arena.Layout
	arenaOps  bool
	packet    []byte
	tailCalls int

	// run state that the hot loop keeps out of registers
	prog        *Program
	ro          *RunOptions
	runOpts     RunOptions
	depth       int
	mayGoto     uint64
	done, chunk uint64 // instructions before the current chunk, its length
	maxDepth    int    // deepest frame this run reached
	arenaPC     int    // instruction of the last arena access (for faults)
	stackBase   uint64 // address of stack[0]
}

func (m *machine) setup(p *Program, ro *RunOptions) {
	m.regions = m.regions[:0]
	m.stackBase = uint64(uintptr(unsafe.Pointer(&m.stack[0])))
	m.addRegion("stack", m.stack[stackSize-StackSize:], false) // frame 0; see enterFrame
	m.maxDepth = 0
	m.addRegion("mem", ro.Mem, false)
	m.addRegion("ctx", ro.Ctx, false)
	for _, rg := range ro.Regions {
		m.addRegion(rg.Name, rg.Data, rg.ReadOnly)
	}
	for _, mp := range p.maps {
		m.addRegion(mp.Name, mp.Values(), mp.ReadOnly)
	}
	m.arena = p.opts.Arena
	m.layout = p.layout
	m.arenaOps = p.arenaOps
	m.packet = ro.Packet
	if m.packet == nil {
		m.packet = ro.Mem
	}
	m.tailCalls = 0
	m.hctx = helpers.Context{Mem: m, Arena: p.opts.Arena, Trace: ro.Trace, Rand: ro.Rand, Maps: p.mapSet, Clock: ro.Clock}
}

func (m *machine) addRegion(name string, b []byte, readOnly bool) {
	if len(b) == 0 {
		return
	}
	p := unsafe.Pointer(&b[0])
	m.regions = append(m.regions, region{base: uint64(uintptr(p)), size: uint64(len(b)), ptr: p, write: !readOnly, name: name})
}

// release drops references to the caller's memory before pooling.
func (m *machine) release() {
	for i := range m.regions {
		m.regions[i] = region{}
	}
	m.regions = m.regions[:0]
	m.frames = [MaxCallDepth]frame{} // drops program references and bpf_loop state
	// Restore the invariant that a pooled machine's stack is all zero:
	// only frames 0..maxDepth were accessible in this run.
	clear(m.stack[stackSize-(m.maxDepth+1)*StackSize:])
	m.arena, m.packet, m.prog, m.ro = nil, nil, nil, nil
	m.runOpts = RunOptions{}
	m.hctx = helpers.Context{}
}

// access classes of an address.
const (
	accOK    = iota
	accFault // arena memory the kernel would fault on: load 0, store skipped
	accWild  // no memory: an error
	accRO    // read-only region written
)

// ptr finds n bytes at a. Arena addresses (either view, and 32-bit arena
// pointers in unconverted programs) that are not allocated give accFault.
func (m *machine) ptr(a uint64, n int, write bool) (unsafe.Pointer, int) {
	for i := range m.regions {
		rg := &m.regions[i]
		if d := a - rg.base; d < rg.size && rg.size-d >= uint64(n) {
			if write && !rg.write {
				return nil, accRO
			}
			return unsafe.Add(rg.ptr, d), accOK
		}
	}
	if m.arena != nil {
		l := &m.layout
		switch {
		case l.InUserView(a):
			if p := m.arena.LookupUser(a, n); p != nil {
				return p, accOK
			}
			return nil, accFault
		case l.InReservation(a):
			if p := m.arena.Lookup(a, n); p != nil {
				return p, accOK
			}
			return nil, accFault
		case m.arenaOps && a+arena.GuardSize/2 < arena.Size4G+arena.GuardSize:
			// A 32-bit arena pointer (after a cast to kernel) with its
			// offset: what PROBE_MEM32 would access.
			if p := m.arena.Lookup(l.KernVMStart+a, n); p != nil {
				return p, accOK
			}
			return nil, accFault
		}
	}
	return nil, accWild
}

func (m *machine) wild(p *Program, pc int, in *insn, what string, a uint64, n int, acc int) error {
	reg := in.src
	if what != "load" {
		reg = in.dst
	}
	if acc == accRO {
		return m.errAt(p, pc, nil, "%s of %d bytes at %#x (r%d%+d) writes read-only memory", what, n, a, reg, in.off)
	}
	return m.errAt(p, pc, nil, "invalid %s of %d bytes at %#x (r%d%+d): outside the stack, memory, context, regions and arena", what, n, a, reg, in.off)
}

// load reads n bytes at a (zero-extended). With probe set (PROBE_MEM) any
// inaccessible address reads 0, like the kernel's exception table.
func (m *machine) load(a uint64, n int, probe bool, p *Program, pc int, in *insn) (uint64, error) {
	m.arenaPC = pc
	ptr, acc := m.ptr(a, n, false)
	switch acc {
	case accOK:
		return rd(ptr, n), nil
	case accFault:
		return 0, nil
	}
	if probe {
		return 0, nil
	}
	return 0, m.wild(p, pc, in, "load", a, n, acc)
}

// store writes the low n bytes of v at a; arena faults skip it.
func (m *machine) store(a uint64, n int, v uint64, p *Program, pc int, in *insn) error {
	m.arenaPC = pc
	ptr, acc := m.ptr(a, n, true)
	switch acc {
	case accOK:
		wr(ptr, n, v)
		return nil
	case accFault:
		return nil
	}
	return m.wild(p, pc, in, "store", a, n, acc)
}

// arenaAddr is the address a PROBE_MEM32 access touches:
// reg + kern_vm_start + off, as the JIT's [reg + r12 + off].
func (m *machine) arenaAddr(reg uint64, off int16) uint64 {
	return reg + m.layout.KernVMStart + uint64(int64(off))
}

func (m *machine) arenaPtr(reg uint64, off int16, n int, p *Program, pc int, what string) (unsafe.Pointer, error) {
	m.arenaPC = pc
	a := m.arenaAddr(reg, off)
	if m.arena == nil {
		return nil, nil // no arena mapped: everything faults
	}
	if !m.layout.InReservation(a) || !m.layout.InReservation(a+uint64(n)-1) {
		return nil, m.errAt(p, pc, nil, "arena %s of %d bytes at %#x is outside the arena reservation (register %#x)", what, n, a, reg)
	}
	return m.arena.Lookup(a, n), nil
}

func (m *machine) arenaLoad(reg uint64, off int16, n int, p *Program, pc int) (uint64, error) {
	ptr, err := m.arenaPtr(reg, off, n, p, pc, "load")
	if ptr == nil {
		return 0, err
	}
	return rd(ptr, n), nil
}

func (m *machine) arenaStore(reg uint64, off int16, n int, v uint64, p *Program, pc int) error {
	ptr, err := m.arenaPtr(reg, off, n, p, pc, "store")
	if ptr != nil {
		wr(ptr, n, v)
	}
	return err
}

func rd(p unsafe.Pointer, n int) uint64 {
	switch n {
	case 1:
		return uint64(*(*uint8)(p))
	case 2:
		return uint64(*(*uint16)(p))
	case 4:
		return uint64(*(*uint32)(p))
	}
	return *(*uint64)(p)
}

func wr(p unsafe.Pointer, n int, v uint64) {
	switch n {
	case 1:
		*(*uint8)(p) = uint8(v)
	case 2:
		*(*uint16)(p) = uint16(v)
	case 4:
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
}

// atomic executes STX ATOMIC / PROBE_ATOMIC. On an arena fault nothing
// happens and no register changes (the JIT's DONT_CLEAR fixup).
func (m *machine) atomic(r *[256]uint64, in *insn, p *Program, pc int) error {
	m.arenaPC = pc
	n := sizeBytes(in.op)
	imm := int32(in.k)
	var ptr unsafe.Pointer
	var err error
	what := "atomic"
	if imm == ir.AtomicLoadAcq {
		what = "load-acquire"
	}
	if ir.Mode(in.op&0xe0) == ir.ModeProbeAtomic {
		// Load-acquire reads [src+off], everything else writes [dst+off].
		base := r[in.dst]
		if imm == ir.AtomicLoadAcq {
			base = r[in.src]
		}
		ptr, err = m.arenaPtr(base, in.off, n, p, pc, what)
		if ptr == nil {
			return err
		}
	} else {
		base := r[in.dst]
		if imm == ir.AtomicLoadAcq {
			base = r[in.src]
		}
		a := base + uint64(int64(in.off))
		var acc int
		ptr, acc = m.ptr(a, n, imm != ir.AtomicLoadAcq)
		switch acc {
		case accFault:
			return nil
		case accWild, accRO:
			return m.wild(p, pc, in, what, a, n, acc)
		}
	}
	if uintptr(ptr)%uintptr(n) != 0 {
		return m.errAt(p, pc, nil, "misaligned %s of %d bytes at %p", what, n, ptr)
	}
	src := r[in.src]
	switch imm {
	case ir.AtomicLoadAcq: // dst = load_acquire(src + off)
		switch n {
		case 4:
			r[in.dst] = uint64(atomic.LoadUint32((*uint32)(ptr)))
		case 8:
			r[in.dst] = atomic.LoadUint64((*uint64)(ptr))
		default:
			r[in.dst] = rd(ptr, n)
		}
		return nil
	case ir.AtomicStoreRel: // store_release(dst + off, src)
		switch n {
		case 4:
			atomic.StoreUint32((*uint32)(ptr), uint32(src))
		case 8:
			atomic.StoreUint64((*uint64)(ptr), src)
		default:
			wr(ptr, n, src)
		}
		return nil
	}
	if n == 8 {
		p64 := (*uint64)(ptr)
		var old uint64
		switch imm &^ ir.AtomicFetch {
		case ir.AtomicAdd:
			old = atomic.AddUint64(p64, src) - src
		case ir.AtomicOr:
			old = atomic.OrUint64(p64, src)
		case ir.AtomicAnd:
			old = atomic.AndUint64(p64, src)
		case ir.AtomicXor:
			for {
				old = atomic.LoadUint64(p64)
				if atomic.CompareAndSwapUint64(p64, old, old^src) {
					break
				}
			}
		case ir.AtomicXchg &^ ir.AtomicFetch:
			old = atomic.SwapUint64(p64, src)
		case ir.AtomicCmpXchg &^ ir.AtomicFetch:
			for {
				old = atomic.LoadUint64(p64)
				if old != r[0] || atomic.CompareAndSwapUint64(p64, old, src) {
					break
				}
			}
			r[0] = old
			return nil
		}
		if imm&ir.AtomicFetch != 0 {
			r[in.src] = old
		}
		return nil
	}
	p32 := (*uint32)(ptr)
	s32 := uint32(src)
	var old uint32
	switch imm &^ ir.AtomicFetch {
	case ir.AtomicAdd:
		old = atomic.AddUint32(p32, s32) - s32
	case ir.AtomicOr:
		old = atomic.OrUint32(p32, s32)
	case ir.AtomicAnd:
		old = atomic.AndUint32(p32, s32)
	case ir.AtomicXor:
		for {
			old = atomic.LoadUint32(p32)
			if atomic.CompareAndSwapUint32(p32, old, old^s32) {
				break
			}
		}
	case ir.AtomicXchg &^ ir.AtomicFetch:
		old = atomic.SwapUint32(p32, s32)
	case ir.AtomicCmpXchg &^ ir.AtomicFetch:
		for {
			old = atomic.LoadUint32(p32)
			if old != uint32(r[0]) || atomic.CompareAndSwapUint32(p32, old, s32) {
				break
			}
		}
		r[0] = uint64(old) // zero-extended
		return nil
	}
	if imm&ir.AtomicFetch != 0 {
		r[in.src] = uint64(old)
	}
	return nil
}

// ldPacket is a legacy LD_ABS / LD_IND: r0 = big-endian load from the
// packet at imm (+ src for IND); false when out of bounds.
func (m *machine) ldPacket(in *insn, src uint64) (uint64, bool) {
	off := int64(int32(in.k))
	if ir.Mode(in.op&0xe0) == ir.ModeIND {
		off += int64(int32(uint32(src)))
	}
	n := int64(sizeBytes(in.op))
	if off < 0 || off+n > int64(len(m.packet)) {
		return 0, false
	}
	b := m.packet[off : off+n]
	switch n {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	}
	return uint64(binary.BigEndian.Uint32(b)), true
}

// Bytes implements helpers.Memory for helpers called by the program.
func (m *machine) Bytes(addr uint64, n int, write bool) []byte {
	if n <= 0 {
		return nil
	}
	for i := range m.regions {
		rg := &m.regions[i]
		if d := addr - rg.base; d < rg.size && rg.size-d >= uint64(n) {
			if write && !rg.write {
				return nil
			}
			return unsafe.Slice((*byte)(unsafe.Add(rg.ptr, d)), n)
		}
	}
	if m.arena != nil {
		if b := m.arena.Bytes(addr, n); b != nil {
			return b
		}
		if b := m.arena.KernBytes(addr, n); b != nil {
			return b
		}
	}
	return nil
}
