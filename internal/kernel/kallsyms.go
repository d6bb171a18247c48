package kernel

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	ksymOnce sync.Once
	ksymMap  map[string]uint64
	ksymErr  error
)

// wantedSyms are the symbols the JIT's output depends on.
var wantedSyms = []string{"__bpf_call_base", "__x86_indirect_thunk_rcx", "__x86_return_thunk", "arch_bpf_timed_may_goto"}

// Kallsyms returns the address of a kernel symbol from /proc/kallsyms (only
// the few symbols the JIT's output depends on are indexed). An address of 0
// (kptr_restrict hides it) is an error.
func Kallsyms(name string) (uint64, error) {
	ksymOnce.Do(func() { ksymMap, ksymErr = readKallsyms("/proc/kallsyms", wantedSyms) })
	if ksymErr != nil {
		return 0, ksymErr
	}
	a, ok := ksymMap[name]
	if !ok {
		return 0, fmt.Errorf("kallsyms: %s not found", name)
	}
	if a == 0 {
		return 0, fmt.Errorf("kallsyms: %s reads as 0 (kptr_restrict hides addresses)", name)
	}
	return a, nil
}

// CallBase returns __bpf_call_base: helper and kfunc call immediates in the
// xlated program are relative to it.
func CallBase() (uint64, error) { return Kallsyms("__bpf_call_base") }

// IndirectThunkRCX returns __x86_indirect_thunk_rcx (retpoline target of
// indirect tail calls).
func IndirectThunkRCX() (uint64, error) { return Kallsyms("__x86_indirect_thunk_rcx") }

func readKallsyms(path string, names []string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() && len(out) < len(want) {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || !want[fields[2]] {
			continue
		}
		if _, seen := out[fields[2]]; seen {
			continue
		}
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms: %s: %w", fields[2], err)
		}
		out[fields[2]] = a
	}
	return out, sc.Err()
}
