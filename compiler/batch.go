package compiler

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// CompileBatch compiles every input with the same options concurrently, on
// up to workers goroutines (runtime.GOMAXPROCS(0) when workers <= 0).
// results[i] and errs[i] belong to ins[i], whatever the order the work was
// done in, so output built from them is deterministic.
//
// Each input is compiled exactly as Compile would compile it. With a custom
// o.Pipeline, its passes run on several programs at once and must not keep
// per-run state; o.DumpAfter is applied to it once, before the workers
// start.
func CompileBatch(ins []*Input, o Options, workers int) (results []*Result, errs []error) {
	results = make([]*Result, len(ins))
	errs = make([]error, len(ins))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(ins))
	if o.Pipeline != nil && o.DumpAfter != nil {
		o.Pipeline.DumpAfter = o.DumpAfter // set once, not by every worker
		o.DumpAfter = nil
	}
	if workers <= 1 {
		for i, in := range ins {
			results[i], errs[i] = Compile(in, o)
		}
		return results, errs
	}
	// Work is handed out one input at a time from a shared counter, so that
	// a few large programs do not leave a worker idle.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ins) {
					return
				}
				results[i], errs[i] = Compile(ins[i], o)
			}
		}()
	}
	wg.Wait()
	return results, errs
}
