// Package alloc measures what a piece of code allocates, for the fuzz targets that bound a
// parser's allocation by the size of its input (a header may not make toklip allocate more than a
// small multiple of what the file holds).
package alloc

import "runtime"

// Bytes runs fn three times and returns the fewest bytes the runtime allocated during one run
// (TotalAlloc, garbage included), so fn must be repeatable (a parser reading the same bytes).
// The runtime's counter is the process's: while a fuzz worker runs an input, the fuzzing engine's
// own goroutines may allocate too, and one run then counts their bytes as well (seen once: a
// 16-byte read charged 5,656 bytes); the least of three runs is the code's own.
func Bytes(fn func()) uint64 {
	var least uint64
	for i := range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; i == 0 || n < least {
			least = n
		}
	}
	return least
}
