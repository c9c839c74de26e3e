// Package alloc measures what a piece of code allocates, for the fuzz targets that bound a
// parser's allocation by the size of its input (a header may not make toklip allocate more than a
// small multiple of what the file holds).
package alloc

import "runtime"

// Bytes runs fn and returns the bytes the runtime allocated meanwhile (TotalAlloc, garbage
// included). A fuzz worker runs one input at a time, and other workers are other processes, so
// little else allocates in between.
func Bytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
