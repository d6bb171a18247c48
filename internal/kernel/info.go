package kernel

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"
)

// LineInfo is one bpf_line_info record as the kernel reports it after
// verification: Insn is the xlated instruction index the record now points
// at (the verifier shifts records when it patches instructions), Addr is the
// address in the JIT image where that instruction's code starts (the first
// record of each function reports the function's start).
type LineInfo struct {
	Insn int
	Addr uint64
	// Line is the record's line number; Load numbers them source index + 1.
	Line int
}

// Info is what BPF_OBJ_GET_INFO_BY_FD tells about a loaded program.
type Info struct {
	ID     uint32
	Tag    [8]byte
	Xlated []byte   // the xlated program, raw bytes as the kernel dumps them
	Jited  []byte   // all functions' machine code, concatenated
	Lens   []uint32 // byte length of each function
	Ksyms  []uint64 // address each function runs at
	MapIDs []uint32
	Lines  []LineInfo
	// VerifiedInsns is the number of instructions the verifier processed.
	VerifiedInsns uint32
}

// ProgInfo reads back a loaded program: two BPF_OBJ_GET_INFO_BY_FD calls,
// one for the counts and one with buffers.
func ProgInfo(fd int) (*Info, error) {
	var first progInfo
	if err := objInfo(fd, unsafe.Pointer(&first), unsafe.Sizeof(first)); err != nil {
		return nil, err
	}
	out := &Info{ID: first.id, Tag: first.tag, VerifiedInsns: first.verifiedInsns}
	out.Xlated = make([]byte, first.xlatedProgLen)
	out.Jited = make([]byte, first.jitedProgLen)
	out.Lens = make([]uint32, first.nrJitedFuncLens)
	out.Ksyms = make([]uint64, first.nrJitedKsyms)
	out.MapIDs = make([]uint32, first.nrMapIDs)
	lineRec := first.lineInfoRecSize
	jlineRec := first.jitedLineInfoRecSize
	lines := make([]byte, int(first.nrLineInfo)*int(lineRec))
	jlines := make([]byte, int(first.nrJitedLineInfo)*int(jlineRec))

	var second progInfo
	second.xlatedProgLen = uint32(len(out.Xlated))
	second.xlatedProgInsns = ptr(out.Xlated)
	second.jitedProgLen = uint32(len(out.Jited))
	second.jitedProgInsns = ptr(out.Jited)
	second.nrJitedFuncLens = uint32(len(out.Lens))
	second.jitedFuncLens = ptr(out.Lens)
	second.nrJitedKsyms = uint32(len(out.Ksyms))
	second.jitedKsyms = ptr(out.Ksyms)
	second.nrMapIDs = uint32(len(out.MapIDs))
	second.mapIDs = ptr(out.MapIDs)
	if len(lines) > 0 {
		second.nrLineInfo = first.nrLineInfo
		second.lineInfoRecSize = lineRec
		second.lineInfo = ptr(lines)
	}
	if len(jlines) > 0 {
		second.nrJitedLineInfo = first.nrJitedLineInfo
		second.jitedLineInfoRecSize = jlineRec
		second.jitedLineInfo = ptr(jlines)
	}
	err := objInfo(fd, unsafe.Pointer(&second), unsafe.Sizeof(second))
	runtime.KeepAlive(out)
	runtime.KeepAlive(lines)
	runtime.KeepAlive(jlines)
	if err != nil {
		return nil, err
	}
	if second.xlatedProgLen != uint32(len(out.Xlated)) || second.jitedProgLen != uint32(len(out.Jited)) {
		return nil, fmt.Errorf("program info changed between calls")
	}
	if len(lines) > 0 && len(jlines) > 0 {
		n := min(int(first.nrLineInfo), int(first.nrJitedLineInfo))
		for k := 0; k < n; k++ {
			rec := lines[k*int(lineRec):]
			insn := binary.LittleEndian.Uint32(rec)
			lineCol := binary.LittleEndian.Uint32(rec[12:])
			addr := binary.LittleEndian.Uint64(jlines[k*int(jlineRec):])
			out.Lines = append(out.Lines, LineInfo{Insn: int(insn), Addr: addr, Line: int(lineCol >> 10)})
		}
	}
	return out, nil
}
