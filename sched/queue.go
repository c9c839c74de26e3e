package sched

import (
	"context"
	"errors"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// ErrBusy is returned by Lease.Enter when every slot of the model and every place in its queue is
// taken.
var ErrBusy = errors.New("the server is busy: every slot and every place in its queue is taken; retry shortly")

// queue admits requests by what they take of a model's engine: the sequences of its KV cache (a
// text answer takes one, an answer that may draw two, its guided pair; n choices n times that).
// Its size is the engine's sequence count, the one limit on what runs at once (`serve
// -parallel`), so an admitted request never waits inside the engine for a sequence. A request
// that needs more than the whole takes all of it, and its choices take turns. Up to max more
// requests wait for room, in arrival order; any beyond get ErrBusy. A request whose context ends
// while it waits gives up its place.
type queue struct {
	sem             *semaphore.Weighted
	size            int64
	waiting         atomic.Int64
	max             int64
	queued, running Gauge
}

func newQueue(size, waiting int, queued, running Gauge) *queue {
	size = max(size, 1)
	if queued == nil {
		queued = nopGauge{}
	}
	if running == nil {
		running = nopGauge{}
	}
	return &queue{sem: semaphore.NewWeighted(int64(size)), size: int64(size), max: int64(waiting), queued: queued, running: running}
}

func (q *queue) enter(ctx context.Context, weight int) (release func(), err error) {
	w := min(max(int64(weight), 1), q.size)
	if !q.sem.TryAcquire(w) {
		if q.waiting.Add(1) > q.max {
			q.waiting.Add(-1)
			return nil, ErrBusy
		}
		q.queued.Inc()
		err := q.sem.Acquire(ctx, w)
		q.waiting.Add(-1)
		q.queued.Dec()
		if err != nil {
			return nil, err
		}
	}
	q.running.Inc()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			q.running.Dec()
			q.sem.Release(w)
		}
	}, nil
}

type nopGauge struct{}

func (nopGauge) Inc() {}
func (nopGauge) Dec() {}
