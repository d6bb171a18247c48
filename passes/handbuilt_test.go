package passes

// Hand-built programs (conformance assembly) for the zext marks and the
// fixups, with the marks worked out by hand from the verifier's rules. Their
// kernel captures (xlated with and without BPF_F_TEST_RND_HI32) live in
// testdata/zext.

type handCase struct {
	name string
	asm  string
	// marked lists the instructions whose ZextDst must be set; every other
	// instruction must have it clear.
	marked []int
}

var handCases = []handCase{
	{"kernel-doc", `
mov32 %r1, 5
mov32 %r2, 7
add32 %r2, %r2
mov %r0, %r1
add32 %r0, %r2
exit`, []int{0, 4}},
	{"one-path", `
call 7
mov32 %r1, 5
mov32 %r2, 6
jgt %r0, 100, +2
mov %r0, %r1
exit
mov32 %r0, %r2
exit`, []int{1, 6}},
	{"one-path-merge", `
call 7
mov32 %r1, 5
jgt %r0, 100, +2
mov32 %r1, %r0
ja +1
mov32 %r1, 9
mov %r0, %r1
exit`, []int{3, 5}},
	{"across-call", `
mov32 %r1, 7
mov32 %r2, 8
call local f
exit
f:
mov %r3, %r1
add32 %r3, %r2
mov32 %r0, %r3
exit`, []int{0, 6}},
	{"call-result-32", `
call local f
mov32 %r0, %r0
exit
f:
mov32 %r0, 3
exit`, []int{1}},
	{"call-result-64", `
call local f
add %r0, 1
exit
f:
mov32 %r0, 3
exit`, []int{3}},
	{"callee-saved-across-call", `
mov32 %r6, 3
mov32 %r7, 4
call local f
mov %r0, %r6
add32 %r0, %r7
exit
f:
mov32 %r0, 1
exit`, []int{0, 4}},
	{"spill-fill", `
mov32 %r1, 5
stxdw [%r10-8], %r1
mov32 %r2, 6
stxw [%r10-16], %r2
ldxw %r3, [%r10-16]
ldxdw %r0, [%r10-8]
add %r0, %r3
exit`, []int{0, 4}},
	{"cmpxchg32", `
stdw [%r10-8], 0
mov32 %r0, 0
mov32 %r1, 2
lock cmpxchg32 [%r10-8], %r1
mov %r2, %r0
mov %r0, %r2
exit`, []int{3}},
	{"cmpxchg32-read32", `
stdw [%r10-8], 0
mov32 %r0, 0
mov32 %r1, 2
lock cmpxchg32 [%r10-8], %r1
mov32 %r0, %r0
exit`, []int{4}},
	{"fetch32", `
stw [%r10-8], 1
mov32 %r1, 2
lock fetch add32 [%r10-8], %r1
mov %r0, %r1
exit`, []int{2}},
	{"alu-forms", `
mov %r1, -1
be16 %r1
mov32 %r2, 3
jeq32 %r2, 3, +0
le64 %r2
mov32 %r3, 4
neg32 %r3
mov %r0, %r1
add %r0, %r2
add %r0, %r3
exit`, []int{1, 2, 6}},
	{"loads", `
stdw [%r10-8], -1
ldxb %r1, [%r10-8]
ldxh %r2, [%r10-8]
ldxw %r3, [%r10-8]
ldxdw %r4, [%r10-8]
add32 %r1, %r2
mov %r0, %r3
add %r0, %r4
add %r0, %r1
exit`, []int{3, 5}},
	{"loop", `
mov32 %r1, 0
mov32 %r2, 0
add32 %r2, %r1
add32 %r1, 1
jlt %r1, 4, -3
mov %r0, %r2
exit`, []int{2, 3}},
	{"helper-args", `
mov %r1, %r10
add %r1, -8
mov32 %r2, 8
mov32 %r3, 0
mov32 %r4, 7
mov32 %r5, 9
call 113
exit`, []int{2, 3}},
	{"helper-no-args", `
mov32 %r1, 5
mov32 %r2, 6
call 7
exit`, nil},
	{"div-mod-64", `
call 7
mov %r1, %r0
mov %r2, %r0
rsh %r2, 3
div %r1, %r2
mov %r3, %r0
mod %r3, %r2
mov %r4, %r0
sdiv %r4, %r2
mov %r5, %r0
smod %r5, %r2
add %r1, %r3
add %r1, %r4
add %r1, %r5
mov %r0, %r1
exit`, nil},
	{"div-mod-32", `
call 7
mov32 %r1, %r0
mov32 %r2, %r0
rsh32 %r2, 3
div32 %r1, %r2
mov32 %r3, %r0
mod32 %r3, %r2
mov32 %r4, %r0
sdiv32 %r4, %r2
mov32 %r5, %r0
smod32 %r5, %r2
add32 %r1, %r3
add32 %r1, %r4
add32 %r1, %r5
mov %r0, %r1
exit`, []int{13}},
	{"div-by-minus-one", `
call 7
mov %r1, %r0
sdiv %r1, -1
mov %r2, %r0
smod %r2, -1
mov32 %r3, %r0
sdiv32 %r3, -1
mov32 %r4, %r0
smod32 %r4, -1
add %r1, %r2
add %r1, %r3
add %r1, %r4
mov %r0, %r1
exit`, []int{6, 8}},
}
