package ggml

import "testing"

// A graph takes the cores no other graph holds, at least one and at most what it asks for; the
// cores it held are free again when it ends.
func TestGraphsShareTheCores(t *testing.T) {
	n := DefaultThreads()
	first := takeCores(n)
	second := takeCores(n) // beside a graph holding every core: one thread, never a wait
	giveCores(second)
	small := takeCores(1)
	third := takeCores(n) // beside a one-thread graph: the rest
	giveCores(third)
	giveCores(small)
	giveCores(first)
	if first != n || second != 1 || small != 1 || third != max(1, n-1) {
		t.Fatalf("with %d cores: threads %d, %d, %d, %d; want %d, 1, 1, %d", n, first, second, small, third, n, max(1, n-1))
	}
	if again := takeCores(n); again != n {
		t.Fatalf("after all graphs ended a graph got %d threads, want %d", again, n)
	} else {
		giveCores(again)
	}
	if cores.busy != 0 {
		t.Fatalf("%d cores still counted busy", cores.busy)
	}
}
