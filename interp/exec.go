package interp

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/bpfc/bpfc/helpers"
	"github.com/bpfc/bpfc/ir"
)

// frame is the saved state of a caller during a bpf-to-bpf call.
type frame struct {
	prog    *Program
	ret     int
	saved   [5]uint64 // r6..r9, r10
	mayGoto uint64
	// bpf_loop: the callee is the callback of iteration loopI of loopN
	// (loopN 0: an ordinary call).
	loopN, loopI, loopCtx uint64
	loopFn                int
}

const stackSize = MaxCallDepth * StackSize

// Negative errno values as helpers return them.
const (
	errEINVAL = 1<<64 - 22
	errE2BIG  = 1<<64 - 7
)

// run is the interpreter loop. Registers live in a local array; the stack
// and the conformance memory have inline fast paths, everything else goes
// through load/store.
func (m *machine) run(p *Program, ro *RunOptions) (Result, error) {
	// Registers are indexed by the uint8 register fields directly: a
	// 256-entry file needs neither masking nor bounds checks.
	r := &m.regs
	*(*[16]uint64)(r[:16]) = [16]uint64{}
	// The accessible stack is [sb, sb+slen): the current frame and its
	// callers' frames, never the free frames below (the verifier's rule).
	// sp points at sb.
	top := uint64(uintptr(unsafe.Pointer(&m.stack[0]))) + stackSize
	sp := unsafe.Pointer(&m.stack[stackSize-StackSize])
	sb := top - StackSize
	slen := uint64(StackSize)
	var mp unsafe.Pointer
	var mb, ms uint64
	if len(ro.Mem) > 0 {
		mp = unsafe.Pointer(&ro.Mem[0])
		mb, ms = uint64(uintptr(mp)), uint64(len(ro.Mem))
		r[1], r[2] = mb, ms
	}
	if len(ro.Ctx) > 0 {
		r[1] = uint64(uintptr(unsafe.Pointer(&ro.Ctx[0])))
	}
	if ro.Args != nil {
		copy(r[1:6], ro.Args[:])
	}
	r[10] = top

	m.prog = p
	m.ro = ro
	m.depth = 0
	m.mayGoto = MayGotoLoops
	m.done, m.chunk = 0, 0
	// base points at the current program's pre-decoded code; pc is always
	// a valid slot (Prepare checked every jump and call target and that
	// control cannot run off the end).
	base := unsafe.Pointer(&p.code[0])
	pc := 0
	left := uint64(0) // instructions until the next budget/context check

	for {
		if left == 0 {
			var err error
			if left, err = m.tick(pc); err != nil {
				return m.result(r[0], left), err
			}
		}
		left--
		in := (*insn)(unsafe.Add(base, uintptr(pc)*unsafe.Sizeof(insn{})))
		pc++
		switch in.op {
		// ALU64, immediate (k is imm sign-extended to 64 bits).
		case 0x07: // dst += imm
			r[in.dst] += in.k
		case 0x17: // dst -= imm
			r[in.dst] -= in.k
		case 0x27: // dst *= imm
			r[in.dst] *= in.k
		case 0x37: // dst /= imm (off 1: signed)
			r[in.dst] = div64(r[in.dst], in.k, in.off != 0)
		case 0x47: // dst |= imm
			r[in.dst] |= in.k
		case 0x57: // dst &= imm
			r[in.dst] &= in.k
		case 0x67: // dst <<= imm & 63
			r[in.dst] <<= in.k & 63
		case 0x77: // dst >>= imm & 63
			r[in.dst] >>= in.k & 63
		case 0x87: // dst = -dst
			r[in.dst] = -r[in.dst]
		case 0x97: // dst %= imm (off 1: signed)
			r[in.dst] = mod64(r[in.dst], in.k, in.off != 0)
		case 0xa7: // dst ^= imm
			r[in.dst] ^= in.k
		case 0xb7: // dst = imm
			r[in.dst] = in.k
		case 0xc7: // dst s>>= imm & 63
			r[in.dst] = uint64(int64(r[in.dst]) >> (in.k & 63))
		case 0xd7: // bswap16/32/64 dst
			r[in.dst] = bswap(r[in.dst], int32(in.k))

		// ALU64, register.
		case 0x0f:
			r[in.dst] += r[in.src]
		case 0x1f:
			r[in.dst] -= r[in.src]
		case 0x2f:
			r[in.dst] *= r[in.src]
		case 0x3f:
			r[in.dst] = div64(r[in.dst], r[in.src], in.off != 0)
		case 0x4f:
			r[in.dst] |= r[in.src]
		case 0x5f:
			r[in.dst] &= r[in.src]
		case 0x6f:
			r[in.dst] <<= r[in.src] & 63
		case 0x7f:
			r[in.dst] >>= r[in.src] & 63
		case 0x9f:
			r[in.dst] = mod64(r[in.dst], r[in.src], in.off != 0)
		case 0xaf:
			r[in.dst] ^= r[in.src]
		case 0xbf: // dst = src (also the per-cpu address move)
			r[in.dst] = r[in.src]
		case 0xcf:
			r[in.dst] = uint64(int64(r[in.dst]) >> (r[in.src] & 63))
		case opMovsx64: // dst = (s8/s16/s32) src
			r[in.dst] = sext(r[in.src], in.off)
		case opCastKern: // addr_space_cast(dst, src, 0, 1): lo32
			r[in.dst] = uint64(uint32(r[in.src]))
		case opCastUser: // addr_space_cast(dst, src, 1, 0)
			r[in.dst] = m.layout.CastToUser(r[in.src])

		// ALU (32-bit), immediate: results are zero-extended.
		case 0x04:
			r[in.dst] = uint64(uint32(r[in.dst]) + uint32(in.k))
		case 0x14:
			r[in.dst] = uint64(uint32(r[in.dst]) - uint32(in.k))
		case 0x24:
			r[in.dst] = uint64(uint32(r[in.dst]) * uint32(in.k))
		case 0x34:
			r[in.dst] = div32(r[in.dst], in.k, in.off != 0)
		case 0x44:
			r[in.dst] = uint64(uint32(r[in.dst]) | uint32(in.k))
		case 0x54:
			r[in.dst] = uint64(uint32(r[in.dst]) & uint32(in.k))
		case 0x64:
			r[in.dst] = uint64(uint32(r[in.dst]) << (in.k & 31))
		case 0x74:
			r[in.dst] = uint64(uint32(r[in.dst]) >> (in.k & 31))
		case 0x84:
			r[in.dst] = uint64(-uint32(r[in.dst]))
		case 0x94:
			r[in.dst] = mod32(r[in.dst], in.k, in.off != 0)
		case 0xa4:
			r[in.dst] = uint64(uint32(r[in.dst]) ^ uint32(in.k))
		case 0xb4:
			r[in.dst] = uint64(uint32(in.k))
		case 0xc4:
			r[in.dst] = uint64(uint32(int32(r[in.dst]) >> (in.k & 31)))
		case 0xd4: // le16/32/64: truncate
			r[in.dst] = toLE(r[in.dst], int32(in.k))
		case 0xdc: // be16/32/64: byte swap
			r[in.dst] = bswap(r[in.dst], int32(in.k))

		// ALU (32-bit), register.
		case 0x0c:
			r[in.dst] = uint64(uint32(r[in.dst]) + uint32(r[in.src]))
		case 0x1c:
			r[in.dst] = uint64(uint32(r[in.dst]) - uint32(r[in.src]))
		case 0x2c:
			r[in.dst] = uint64(uint32(r[in.dst]) * uint32(r[in.src]))
		case 0x3c:
			r[in.dst] = div32(r[in.dst], r[in.src], in.off != 0)
		case 0x4c:
			r[in.dst] = uint64(uint32(r[in.dst]) | uint32(r[in.src]))
		case 0x5c:
			r[in.dst] = uint64(uint32(r[in.dst]) & uint32(r[in.src]))
		case 0x6c:
			r[in.dst] = uint64(uint32(r[in.dst]) << (r[in.src] & 31))
		case 0x7c:
			r[in.dst] = uint64(uint32(r[in.dst]) >> (r[in.src] & 31))
		case 0x9c:
			r[in.dst] = mod32(r[in.dst], r[in.src], in.off != 0)
		case 0xac:
			r[in.dst] = uint64(uint32(r[in.dst]) ^ uint32(r[in.src]))
		case 0xbc: // mov32 (also the verifier's zext)
			r[in.dst] = uint64(uint32(r[in.src]))
		case 0xcc:
			r[in.dst] = uint64(uint32(int32(r[in.dst]) >> (r[in.src] & 31)))
		case opMovsx32: // dst = (u32)(s8/s16) src
			r[in.dst] = uint64(uint32(sext(r[in.src], in.off)))

		// JMP: off is relative to the next slot.
		case 0x05: // ja
			pc += int(in.off)
		case 0x06: // gotol: k is the 32-bit offset
			pc += int(int64(in.k))
		case 0x15:
			if r[in.dst] == in.k {
				pc += int(in.off)
			}
		case 0x1d:
			if r[in.dst] == r[in.src] {
				pc += int(in.off)
			}
		case 0x25:
			if r[in.dst] > in.k {
				pc += int(in.off)
			}
		case 0x2d:
			if r[in.dst] > r[in.src] {
				pc += int(in.off)
			}
		case 0x35:
			if r[in.dst] >= in.k {
				pc += int(in.off)
			}
		case 0x3d:
			if r[in.dst] >= r[in.src] {
				pc += int(in.off)
			}
		case 0x45:
			if r[in.dst]&in.k != 0 {
				pc += int(in.off)
			}
		case 0x4d:
			if r[in.dst]&r[in.src] != 0 {
				pc += int(in.off)
			}
		case 0x55:
			if r[in.dst] != in.k {
				pc += int(in.off)
			}
		case 0x5d:
			if r[in.dst] != r[in.src] {
				pc += int(in.off)
			}
		case 0x65:
			if int64(r[in.dst]) > int64(in.k) {
				pc += int(in.off)
			}
		case 0x6d:
			if int64(r[in.dst]) > int64(r[in.src]) {
				pc += int(in.off)
			}
		case 0x75:
			if int64(r[in.dst]) >= int64(in.k) {
				pc += int(in.off)
			}
		case 0x7d:
			if int64(r[in.dst]) >= int64(r[in.src]) {
				pc += int(in.off)
			}
		case 0xa5:
			if r[in.dst] < in.k {
				pc += int(in.off)
			}
		case 0xad:
			if r[in.dst] < r[in.src] {
				pc += int(in.off)
			}
		case 0xb5:
			if r[in.dst] <= in.k {
				pc += int(in.off)
			}
		case 0xbd:
			if r[in.dst] <= r[in.src] {
				pc += int(in.off)
			}
		case 0xc5:
			if int64(r[in.dst]) < int64(in.k) {
				pc += int(in.off)
			}
		case 0xcd:
			if int64(r[in.dst]) < int64(r[in.src]) {
				pc += int(in.off)
			}
		case 0xd5:
			if int64(r[in.dst]) <= int64(in.k) {
				pc += int(in.off)
			}
		case 0xdd:
			if int64(r[in.dst]) <= int64(r[in.src]) {
				pc += int(in.off)
			}

		// JMP32: compare the low halves (k holds uint32(imm)).
		case 0x16:
			if uint32(r[in.dst]) == uint32(in.k) {
				pc += int(in.off)
			}
		case 0x1e:
			if uint32(r[in.dst]) == uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0x26:
			if uint32(r[in.dst]) > uint32(in.k) {
				pc += int(in.off)
			}
		case 0x2e:
			if uint32(r[in.dst]) > uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0x36:
			if uint32(r[in.dst]) >= uint32(in.k) {
				pc += int(in.off)
			}
		case 0x3e:
			if uint32(r[in.dst]) >= uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0x46:
			if uint32(r[in.dst])&uint32(in.k) != 0 {
				pc += int(in.off)
			}
		case 0x4e:
			if uint32(r[in.dst])&uint32(r[in.src]) != 0 {
				pc += int(in.off)
			}
		case 0x56:
			if uint32(r[in.dst]) != uint32(in.k) {
				pc += int(in.off)
			}
		case 0x5e:
			if uint32(r[in.dst]) != uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0x66:
			if int32(r[in.dst]) > int32(in.k) {
				pc += int(in.off)
			}
		case 0x6e:
			if int32(r[in.dst]) > int32(r[in.src]) {
				pc += int(in.off)
			}
		case 0x76:
			if int32(r[in.dst]) >= int32(in.k) {
				pc += int(in.off)
			}
		case 0x7e:
			if int32(r[in.dst]) >= int32(r[in.src]) {
				pc += int(in.off)
			}
		case 0xa6:
			if uint32(r[in.dst]) < uint32(in.k) {
				pc += int(in.off)
			}
		case 0xae:
			if uint32(r[in.dst]) < uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0xb6:
			if uint32(r[in.dst]) <= uint32(in.k) {
				pc += int(in.off)
			}
		case 0xbe:
			if uint32(r[in.dst]) <= uint32(r[in.src]) {
				pc += int(in.off)
			}
		case 0xc6:
			if int32(r[in.dst]) < int32(in.k) {
				pc += int(in.off)
			}
		case 0xce:
			if int32(r[in.dst]) < int32(r[in.src]) {
				pc += int(in.off)
			}
		case 0xd6:
			if int32(r[in.dst]) <= int32(in.k) {
				pc += int(in.off)
			}
		case 0xde:
			if int32(r[in.dst]) <= int32(r[in.src]) {
				pc += int(in.off)
			}

		case 0x18: // ld_imm64 (pseudo forms resolved by Prepare)
			r[in.dst] = in.k
			pc++

			// Memory with the stack / mem fast paths.
		case 0x61: // ldxw dst = *(uint32 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-4 {
				r[in.dst] = uint64(*(*uint32)(unsafe.Add(sp, d)))
			} else if d := a - mb; d < ms && ms-d >= 4 {
				r[in.dst] = uint64(*(*uint32)(unsafe.Add(mp, d)))
			} else {
				v, err := m.load(a, 4, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = v
			}
		case 0x69: // ldxh dst = *(uint16 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-2 {
				r[in.dst] = uint64(*(*uint16)(unsafe.Add(sp, d)))
			} else if d := a - mb; d < ms && ms-d >= 2 {
				r[in.dst] = uint64(*(*uint16)(unsafe.Add(mp, d)))
			} else {
				v, err := m.load(a, 2, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = v
			}
		case 0x71: // ldxb dst = *(uint8 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-1 {
				r[in.dst] = uint64(*(*uint8)(unsafe.Add(sp, d)))
			} else if d := a - mb; d < ms && ms-d >= 1 {
				r[in.dst] = uint64(*(*uint8)(unsafe.Add(mp, d)))
			} else {
				v, err := m.load(a, 1, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = v
			}
		case 0x79: // ldxdw dst = *(uint64 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-8 {
				r[in.dst] = uint64(*(*uint64)(unsafe.Add(sp, d)))
			} else if d := a - mb; d < ms && ms-d >= 8 {
				r[in.dst] = uint64(*(*uint64)(unsafe.Add(mp, d)))
			} else {
				v, err := m.load(a, 8, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = v
			}
		case 0x81: // ldxsw dst = *(int32 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-4 {
				r[in.dst] = uint64(int64(*(*int32)(unsafe.Add(sp, d))))
			} else if d := a - mb; d < ms && ms-d >= 4 {
				r[in.dst] = uint64(int64(*(*int32)(unsafe.Add(mp, d))))
			} else {
				v, err := m.load(a, 4, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = uint64(int64(int32(v)))
			}
		case 0x89: // ldxsh dst = *(int16 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-2 {
				r[in.dst] = uint64(int64(*(*int16)(unsafe.Add(sp, d))))
			} else if d := a - mb; d < ms && ms-d >= 2 {
				r[in.dst] = uint64(int64(*(*int16)(unsafe.Add(mp, d))))
			} else {
				v, err := m.load(a, 2, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = uint64(int64(int16(v)))
			}
		case 0x91: // ldxsb dst = *(int8 *)(src + off)
			a := r[in.src] + uint64(int64(in.off))
			if d := a - sb; d <= slen-1 {
				r[in.dst] = uint64(int64(*(*int8)(unsafe.Add(sp, d))))
			} else if d := a - mb; d < ms && ms-d >= 1 {
				r[in.dst] = uint64(int64(*(*int8)(unsafe.Add(mp, d))))
			} else {
				v, err := m.load(a, 1, false, m.prog, pc-1, in)
				if err != nil {
					return m.result(r[0], left), err
				}
				r[in.dst] = uint64(int64(int8(v)))
			}
		case 0x63: // stxw *(uint32 *)(dst + off) = src
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-4 {
				*(*uint32)(unsafe.Add(sp, d)) = uint32(r[in.src])
			} else if d := a - mb; d < ms && ms-d >= 4 {
				*(*uint32)(unsafe.Add(mp, d)) = uint32(r[in.src])
			} else if err := m.store(a, 4, r[in.src], m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x62: // stw *(uint32 *)(dst + off) = imm
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-4 {
				*(*uint32)(unsafe.Add(sp, d)) = uint32(in.k)
			} else if d := a - mb; d < ms && ms-d >= 4 {
				*(*uint32)(unsafe.Add(mp, d)) = uint32(in.k)
			} else if err := m.store(a, 4, in.k, m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x6b: // stxh *(uint16 *)(dst + off) = src
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-2 {
				*(*uint16)(unsafe.Add(sp, d)) = uint16(r[in.src])
			} else if d := a - mb; d < ms && ms-d >= 2 {
				*(*uint16)(unsafe.Add(mp, d)) = uint16(r[in.src])
			} else if err := m.store(a, 2, r[in.src], m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x6a: // sth *(uint16 *)(dst + off) = imm
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-2 {
				*(*uint16)(unsafe.Add(sp, d)) = uint16(in.k)
			} else if d := a - mb; d < ms && ms-d >= 2 {
				*(*uint16)(unsafe.Add(mp, d)) = uint16(in.k)
			} else if err := m.store(a, 2, in.k, m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x73: // stxb *(uint8 *)(dst + off) = src
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-1 {
				*(*uint8)(unsafe.Add(sp, d)) = uint8(r[in.src])
			} else if d := a - mb; d < ms && ms-d >= 1 {
				*(*uint8)(unsafe.Add(mp, d)) = uint8(r[in.src])
			} else if err := m.store(a, 1, r[in.src], m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x72: // stb *(uint8 *)(dst + off) = imm
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-1 {
				*(*uint8)(unsafe.Add(sp, d)) = uint8(in.k)
			} else if d := a - mb; d < ms && ms-d >= 1 {
				*(*uint8)(unsafe.Add(mp, d)) = uint8(in.k)
			} else if err := m.store(a, 1, in.k, m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x7b: // stxdw *(uint64 *)(dst + off) = src
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-8 {
				*(*uint64)(unsafe.Add(sp, d)) = uint64(r[in.src])
			} else if d := a - mb; d < ms && ms-d >= 8 {
				*(*uint64)(unsafe.Add(mp, d)) = uint64(r[in.src])
			} else if err := m.store(a, 8, r[in.src], m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}
		case 0x7a: // stdw *(uint64 *)(dst + off) = imm
			a := r[in.dst] + uint64(int64(in.off))
			if d := a - sb; d <= slen-8 {
				*(*uint64)(unsafe.Add(sp, d)) = uint64(in.k)
			} else if d := a - mb; d < ms && ms-d >= 8 {
				*(*uint64)(unsafe.Add(mp, d)) = uint64(in.k)
			} else if err := m.store(a, 8, in.k, m.prog, pc-1, in); err != nil {
				return m.result(r[0], left), err
			}

		// Kernel-internal and rarer memory forms.
		case 0x21, 0x29, 0x31, 0x39, 0x41, 0x49, 0x51: // PROBE_MEM(SX) load: a fault reads 0
			n := sizeBytes(in.op)
			v, err := m.load(r[in.src]+uint64(int64(in.off)), n, true, m.prog, pc-1, in)
			if err != nil {
				return m.result(r[0], left), err
			}
			if in.op&0xe0 == 0x40 {
				v = sextN(v, n)
			}
			r[in.dst] = v
		case 0xa1, 0xa9, 0xb1, 0xb9, 0xc1, 0xc9, 0xd1: // PROBE_MEM32(SX) load [src + kern_vm_start + off]
			n := sizeBytes(in.op)
			v, err := m.arenaLoad(r[in.src], in.off, n, m.prog, pc-1)
			if err != nil {
				return m.result(r[0], left), err
			}
			if in.op&0xe0 == 0xc0 {
				v = sextN(v, n)
			}
			r[in.dst] = v
		case 0xa3, 0xab, 0xb3, 0xbb: // PROBE_MEM32 stx
			if err := m.arenaStore(r[in.dst], in.off, sizeBytes(in.op), r[in.src], m.prog, pc-1); err != nil {
				return m.result(r[0], left), err
			}
		case 0xa2, 0xaa, 0xb2, 0xba: // PROBE_MEM32 st
			if err := m.arenaStore(r[in.dst], in.off, sizeBytes(in.op), in.k, m.prog, pc-1); err != nil {
				return m.result(r[0], left), err
			}
		case 0xc3, 0xcb, 0xd3, 0xdb, 0xe3, 0xeb, 0xf3, 0xfb: // atomics, PROBE_ATOMIC
			if err := m.atomic(r, in, m.prog, pc-1); err != nil {
				return m.result(r[0], left), err
			}
		case 0x20, 0x28, 0x30, 0x40, 0x48, 0x50: // legacy LD_ABS / LD_IND
			v, ok := m.ldPacket(in, r[in.src])
			if !ok {
				return m.result(0, left), nil // out of bounds: the program returns 0
			}
			r[0] = v
		case opNop:

		// Calls and exits.
		case opCallFn:
			m.hctx.Reset()
			r[0] = m.prog.fns[in.k](&m.hctx, r[1], r[2], r[3], r[4], r[5])
			if m.hctx.Interrupted() {
				if err := m.hctx.Err(); err != nil {
					return m.result(r[0], left), m.errAt(m.prog, pc-1, err, "%s failed: %v", m.prog.fnNames[in.k], err)
				}
				ret, _ := m.hctx.Stopped()
				res := m.result(ret, left)
				res.Stopped = true
				return res, nil
			}
		case opCallLocal:
			if m.depth+1 >= MaxCallDepth {
				return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "call depth exceeds %d frames", MaxCallDepth)
			}
			f := &m.frames[m.depth]
			f.prog, f.ret, f.mayGoto, f.loopN = m.prog, pc, m.mayGoto, 0
			f.saved = [5]uint64{r[6], r[7], r[8], r[9], r[10]}
			m.depth++
			r[10] -= StackSize
			sp, sb, slen = m.enterFrame()
			m.mayGoto = MayGotoLoops
			pc = int(in.k)
		case 0x8d: // callx: a function reference or a helper id
			v := r[in.dst]
			if v&^0xffffffff == FuncTag {
				t := int(uint32(v))
				if t >= len(m.prog.code) {
					return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "callx to slot %d outside the program", t)
				}
				if m.depth+1 >= MaxCallDepth {
					return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "call depth exceeds %d frames", MaxCallDepth)
				}
				f := &m.frames[m.depth]
				f.prog, f.ret, f.mayGoto, f.loopN = m.prog, pc, m.mayGoto, 0
				f.saved = [5]uint64{r[6], r[7], r[8], r[9], r[10]}
				m.depth++
				r[10] -= StackSize
				sp, sb, slen = m.enterFrame()
				m.mayGoto = MayGotoLoops
				pc = t
				break
			}
			fn := m.prog.opts.Helpers.Func(int32(v))
			if fn == nil || v > math.MaxInt32 {
				return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "callx of %#x: no such helper", v)
			}
			m.hctx.Reset()
			r[0] = fn(&m.hctx, r[1], r[2], r[3], r[4], r[5])
			if m.hctx.Interrupted() {
				if err := m.hctx.Err(); err != nil {
					return m.result(r[0], left), m.errAt(m.prog, pc-1, err, "helper %d failed: %v", v, err)
				}
				ret, _ := m.hctx.Stopped()
				res := m.result(ret, left)
				res.Stopped = true
				return res, nil
			}
		case opTailCall: // bpf_tail_call(ctx, prog_array, index)
			idx := uint32(r[3])
			tc := m.prog.opts.TailCalls
			if m.tailCalls < MaxTailCalls && uint64(idx) < uint64(len(tc)) && tc[idx] != nil {
				m.tailCalls++
				m.prog = tc[idx]
				base = unsafe.Pointer(&m.prog.code[0])
				pc = 0
			}
		case 0x95: // exit
			if m.depth == 0 {
				return m.result(r[0], left), nil
			}
			m.depth--
			f := &m.frames[m.depth]
			if f.loopN != 0 {
				// A bpf_loop callback returned: 0 continues with the next
				// index, anything else stops; bpf_loop returns the number
				// of callbacks made.
				if r[0] == 0 && f.loopI+1 < f.loopN {
					f.loopI++
					m.depth++
					r[1], r[2], r[10] = f.loopI, f.loopCtx, f.saved[4]-StackSize
					m.mayGoto = MayGotoLoops
					pc = f.loopFn
					break
				}
				r[0] = f.loopI + 1
				f.loopN = 0
			}
			m.prog, pc, m.mayGoto = f.prog, f.ret, f.mayGoto
			base = unsafe.Pointer(&m.prog.code[0])
			r[6], r[7], r[8], r[9], r[10] = f.saved[0], f.saved[1], f.saved[2], f.saved[3], f.saved[4]
			f.prog = nil
			sp, sb, slen = m.enterFrame()
		case 0xe5: // may_goto: taken when the frame's loop budget is used up
			if m.mayGoto == 0 {
				pc += int(in.off)
			} else {
				m.mayGoto--
			}
		case opLoop: // bpf_loop(nr_loops, callback_fn, callback_ctx, flags)
			switch {
			case r[4] != 0:
				r[0] = errEINVAL
			case uint32(r[1]) > MayGotoLoops:
				r[0] = errE2BIG
			case uint32(r[1]) == 0:
				r[0] = 0
			case r[2]&^0xffffffff != FuncTag || int(uint32(r[2])) >= len(m.prog.code):
				return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "bpf_loop callback %#x is not a function of the program", r[2])
			case m.depth+1 >= MaxCallDepth:
				return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "call depth exceeds %d frames", MaxCallDepth)
			default:
				f := &m.frames[m.depth]
				f.prog, f.ret, f.mayGoto = m.prog, pc, m.mayGoto
				f.saved = [5]uint64{r[6], r[7], r[8], r[9], r[10]}
				f.loopN, f.loopI, f.loopCtx, f.loopFn = uint64(uint32(r[1])), 0, r[3], int(uint32(r[2]))
				m.depth++
				r[1], r[2] = 0, f.loopCtx
				r[10] -= StackSize
				sp, sb, slen = m.enterFrame()
				m.mayGoto = MayGotoLoops
				pc = f.loopFn
			}
		case opTimedMay:
			// The verifier's timed may_goto: AX holds the r10-relative
			// offset of {count, timestamp}; AX gets the refreshed count and
			// every other register is preserved.
			b := m.Bytes(r[10]+r[11], 16, true)
			if b == nil {
				return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "timed may_goto state at r10%+d is not on the stack", int64(r[11]))
			}
			r[11] = helpers.CheckTimedMayGoto(b, helpers.KtimeGetNs(&m.hctx, 0, 0, 0, 0, 0))
		case opGotox:
			return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "gotox (indirect jump) is not supported")
		default:
			return m.result(r[0], left), m.errAt(m.prog, pc-1, nil, "unsupported opcode %#02x", in.op)
		}
	}
}

// enterFrame makes frames 0..depth accessible after a call or return and
// returns the stack window. Frames are zero when a machine is pooled, so a
// frame reached for the first time reads zero; the deepest frame reached is
// cleared again on release.
func (m *machine) enterFrame() (unsafe.Pointer, uint64, uint64) {
	if m.depth > m.maxDepth {
		m.maxDepth = m.depth
	}
	n := uint64(m.depth+1) * StackSize
	off := stackSize - n
	rg := &m.regions[0]
	rg.base, rg.size, rg.ptr = m.stackBase+off, n, unsafe.Pointer(&m.stack[off])
	return rg.ptr, rg.base, n
}

// result builds the Result; left is the local countdown of run.
func (m *machine) result(r0, left uint64) Result {
	return Result{R0: r0, Insns: m.done + m.chunk - left}
}

func (m *machine) errAt(p *Program, pc int, cause error, format string, args ...any) error {
	return &Error{Program: p.name, Index: pc, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// tick runs when the countdown of the current chunk reaches zero: it checks
// the budget and the context and returns the next chunk's length.
func (m *machine) tick(pc int) (uint64, error) {
	ro := m.ro
	m.done += m.chunk
	m.chunk = 0
	if ro.Budget != 0 && m.done >= ro.Budget {
		return 0, m.errAt(m.prog, pc, ErrBudget, "%v after %d instructions", ErrBudget, m.done)
	}
	if ro.Context != nil {
		if err := ro.Context.Err(); err != nil {
			return 0, m.errAt(m.prog, pc, err, "stopped after %d instructions: %v", m.done, context.Cause(ro.Context))
		}
	}
	chunk := uint64(math.MaxUint64)
	if ro.Context != nil && ro.Context.Done() != nil {
		chunk = 1 << 16
	}
	if ro.Step != nil {
		chunk = 1 // tick before every instruction
		ro.Step(m.prog, pc, m.regs[:12])
	}
	if ro.Budget != 0 && ro.Budget-m.done < chunk {
		chunk = ro.Budget - m.done
	}
	m.chunk = chunk
	return chunk, nil
}

func div64(a, b uint64, signed bool) uint64 {
	if b == 0 {
		return 0
	}
	if signed {
		return uint64(int64(a) / int64(b)) // MinInt64 / -1 == MinInt64 in Go
	}
	return a / b
}

func mod64(a, b uint64, signed bool) uint64 {
	if b == 0 {
		return a
	}
	if signed {
		return uint64(int64(a) % int64(b)) // MinInt64 % -1 == 0
	}
	return a % b
}

func div32(a, b uint64, signed bool) uint64 {
	x, y := uint32(a), uint32(b)
	if y == 0 {
		return 0
	}
	if signed {
		return uint64(uint32(int32(x) / int32(y)))
	}
	return uint64(x / y)
}

func mod32(a, b uint64, signed bool) uint64 {
	x, y := uint32(a), uint32(b)
	if y == 0 {
		return uint64(x)
	}
	if signed {
		return uint64(uint32(int32(x) % int32(y)))
	}
	return uint64(x % y)
}

func bswap(v uint64, width int32) uint64 {
	switch width {
	case 16:
		return uint64(bits.ReverseBytes16(uint16(v)))
	case 32:
		return uint64(bits.ReverseBytes32(uint32(v)))
	}
	return bits.ReverseBytes64(v)
}

func toLE(v uint64, width int32) uint64 {
	switch width {
	case 16:
		return uint64(uint16(v))
	case 32:
		return uint64(uint32(v))
	}
	return v
}

// sext sign-extends the low off (8, 16, 32) bits of v.
func sext(v uint64, off int16) uint64 {
	switch off {
	case 8:
		return uint64(int64(int8(v)))
	case 16:
		return uint64(int64(int16(v)))
	case 32:
		return uint64(int64(int32(v)))
	}
	return v
}

// sextN sign-extends the low n bytes of v.
func sextN(v uint64, n int) uint64 { return sext(v, int16(n*8)) }

// sizeBytes is the access size of a load/store opcode.
func sizeBytes(op uint8) int { return ir.Size(op & 0x18).Bytes() }
