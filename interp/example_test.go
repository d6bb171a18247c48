package interp_test

import (
	"fmt"

	"github.com/bpfc/bpfc/interp"
	"github.com/bpfc/bpfc/ir/asm"
)

// Run a program on a memory buffer (r1 = buffer, r2 = length).
func Example() {
	p, err := asm.Assemble(`
ldxw %r0, [%r1+0]
ldxw %r2, [%r1+4]
add %r0, %r2
exit`)
	if err != nil {
		panic(err)
	}
	q, err := interp.Prepare(p, interp.Options{})
	if err != nil {
		panic(err)
	}
	res, err := q.Run(interp.RunOptions{Mem: []byte{1, 0, 0, 0, 2, 0, 0, 0}})
	fmt.Println(res.R0, res.Insns, err)

	// A wild access is an error naming the instruction.
	p, _ = asm.Assemble("ldxdw %r0, [%r1+8]\nexit")
	q, _ = interp.Prepare(p, interp.Options{})
	_, err = q.Run(interp.RunOptions{Mem: make([]byte, 8)})
	fmt.Println(err != nil)
	// Output:
	// 3 4 <nil>
	// true
}
