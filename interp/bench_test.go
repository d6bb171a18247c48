package interp

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfc/bpfc/helpers"
)

// The programs of ../shared/reference/peers.md: loop (ALU + stack store and
// load, 12 instructions per iteration), memsum (sum of 64 KiB as u64) and
// bpf-to-bpf calls.
const (
	benchLoop = `
mov %r0, 0
mov %r1, 0
loop:
stxdw [%r10-8], %r1
ldxdw %r2, [%r10-8]
add %r0, %r2
xor %r0, 3
mul %r2, 3
add %r0, %r2
stxdw [%r10-16], %r0
ldxdw %r0, [%r10-16]
rsh %r2, 1
sub %r0, %r2
add %r1, 1
jlt %r1, 100000, loop
exit`
	benchMemsum = `
mov %r0, 0
mov %r3, %r1
add %r3, %r2
loop:
ldxdw %r4, [%r1+0]
add %r0, %r4
add %r1, 8
jlt %r1, %r3, loop
exit`
	benchCalls = `
mov %r6, 0
mov %r0, 0
loop:
mov %r1, %r6
call local f
add %r6, 1
jlt %r6, 100000, loop
exit
f:
mov %r0, %r1
add %r0, 1
exit`
	benchHelper = `
mov %r6, 0
loop:
mov %r1, 1
call 5
add %r6, 1
jlt %r6, 100000, loop
mov %r0, %r6
exit`
)

func benchProgram(b *testing.B, text string, mem []byte) {
	q := prepare(b, assemble(b, text), Options{Helpers: helpers.Conformance()})
	res, err := q.Run(RunOptions{Mem: mem})
	if err != nil {
		b.Fatal(err)
	}
	// The machine is shared with other work: besides wall-clock ns/insn,
	// report the thread's CPU time per instruction, which steal does not
	// inflate.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), threadCPU()
	for i := 0; i < b.N; i++ {
		if _, err := q.Run(RunOptions{Mem: mem}); err != nil {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(start), threadCPU()-cpu0
	n := float64(res.Insns) * float64(b.N)
	b.ReportMetric(float64(el.Nanoseconds())/n, "ns/insn")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/insn")
	b.ReportMetric(float64(res.Insns), "insns/run")
}

func BenchmarkLoop(b *testing.B)   { benchProgram(b, benchLoop, nil) }
func BenchmarkMemsum(b *testing.B) { benchProgram(b, benchMemsum, make([]byte, 64<<10)) }
func BenchmarkCalls(b *testing.B)  { benchProgram(b, benchCalls, nil) }
func BenchmarkHelper(b *testing.B) { benchProgram(b, benchHelper, nil) }

// BenchmarkTrivial is the fixed cost of a run (pooling, setup, stack clear).
func BenchmarkTrivial(b *testing.B) { benchProgram(b, "mov %r0, 1\nexit", nil) }

func BenchmarkPrepare(b *testing.B) {
	p := assemble(b, benchLoop)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Prepare(p, Options{Helpers: helpers.Conformance()}); err != nil {
			b.Fatal(err)
		}
	}
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
