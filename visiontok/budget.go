package visiontok

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// DefaultDecodeMemory is the memory all image decodes of the process may hold at once.
const DefaultDecodeMemory = 1 << 30

// decodeBudget bounds the memory that image decodes hold at once, across the process: a server
// answers several requests, each with several images, and the limits of one image alone do not
// bound their sum. A decode reserves what its header says it will hold before it allocates, and
// waits while others hold the budget; one that could never fit is refused.
var decodeBudget = newBudget(DefaultDecodeMemory)

type budget struct {
	mu    sync.Mutex
	total int64
	sem   *semaphore.Weighted
}

func newBudget(total int64) *budget {
	return &budget{total: total, sem: semaphore.NewWeighted(total)}
}

// SetDecodeMemory sets the process-wide budget of image decodes (at least 64 MiB); decodes
// already running keep what they reserved from the previous one.
func SetDecodeMemory(total int64) {
	total = max(total, 64<<20)
	decodeBudget.mu.Lock()
	defer decodeBudget.mu.Unlock()
	decodeBudget.total, decodeBudget.sem = total, semaphore.NewWeighted(total)
}

// reserve takes n bytes of the budget, waiting until they are free or ctx ends.
func (b *budget) reserve(ctx context.Context, n int64) (release func(), err error) {
	b.mu.Lock()
	total, sem := b.total, b.sem
	b.mu.Unlock()
	if n > total {
		return nil, fmt.Errorf("%w: decoding it needs %d MiB, over the decode memory limit of %d MiB", ErrImage, n>>20, total>>20)
	}
	n = max(n, 1)
	if err := sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { sem.Release(n) }, nil
}
