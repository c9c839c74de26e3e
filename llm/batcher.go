package llm

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// batcher runs the forward passes of concurrent requests together: continuous batching. Each
// generation loop joins, then calls step with its inputs for one step (a prompt, one token, or a
// guided image's conditional and unconditional tokens), and leaves when it is done. A pass
// starts when every joined loop has its next step queued, so loops that step in lockstep share
// every pass; without that wait, two loops alternate (one's step computes while the other
// samples) and never meet. A loop that is slow between steps (a client that reads its stream
// slowly) holds the others back by at most maxGatherWait a pass. A loop's TokLIP work between
// its steps (the ViT step of an id under semantic fusion) delays the pass by as much: TokLIP
// computes on a CPU backend of its own (ggml's lanes), so the pass could run beside it, but on
// cores the ViT step keeps busy a shared pass, which reads the weights once for both loops, is
// the cheaper. A loop leaves before a VQ decode, which takes seconds.
type batcher struct {
	lm      *Backbone
	queue   chan *stepCall
	quit    chan struct{}
	left    chan struct{} // a loop left: the pass being gathered may be complete
	stopped chan struct{} // closed when loop returns
	active  atomic.Int64  // joined loops

	passes, calls atomic.Int64 // for BatchStats
}

// maxGatherWait bounds how long a queued step waits for the other joined loops' steps. It
// covers a few TokLIP-S ViT steps (about 50 ms each on 2 CPU cores) between passes.
const maxGatherWait = 200 * time.Millisecond

// BatchStats counts the forward passes the engine ran and the step calls they served: calls
// above passes are steps that shared a pass with another request's.
type BatchStats struct {
	Passes, Calls int64
}

type stepCall struct {
	ctx    context.Context
	inputs []Input
	logits [][]float32
	err    error
	done   chan struct{}
}

func newBatcher(lm *Backbone) *batcher {
	b := &batcher{lm: lm, queue: make(chan *stepCall, 64), quit: make(chan struct{}), left: make(chan struct{}, 1), stopped: make(chan struct{})}
	go b.loop()
	return b
}

var errClosed = errors.New("the model is closed")

// member is one generation loop's place in the batcher. It is used by that loop only.
type member struct {
	b  *batcher
	in bool
}

// join counts a generation loop in: passes wait for its steps until it leaves.
func (b *batcher) join() *member {
	m := &member{b: b}
	m.rejoin()
	return m
}

// leave takes the loop out, for good or while it waits for something other than compute (a
// free sequence): the others' passes must not wait for it meanwhile.
func (m *member) leave() {
	if !m.in {
		return
	}
	m.in = false
	m.b.active.Add(-1)
	select {
	case m.b.left <- struct{}{}:
	default:
	}
}

func (m *member) rejoin() {
	if !m.in {
		m.in = true
		m.b.active.Add(1)
	}
}

// step runs inputs in the next pass and returns the logits they ask for, in order.
func (b *batcher) step(ctx context.Context, inputs []Input) ([][]float32, error) {
	c := &stepCall{ctx: ctx, inputs: inputs, done: make(chan struct{})}
	select {
	case b.queue <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		return nil, errClosed
	}
	// Once queued, the pass may already hold the inputs: wait for it, or for the batcher to stop
	// (a step queued as it closed is never taken).
	select {
	case <-c.done:
	case <-b.stopped:
		select {
		case <-c.done:
		default:
			return nil, errClosed
		}
	}
	return c.logits, c.err
}

// close stops the batcher after the pass in progress, if any; steps queued or yet to come fail.
func (b *batcher) close() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.stopped
}

func (b *batcher) loop() {
	defer close(b.stopped)
	for {
		var calls []*stepCall
		select {
		case c := <-b.queue:
			calls = append(calls, c)
		case <-b.quit:
			b.drain()
			return
		}
		n := len(calls[0].inputs)
		deadline := time.NewTimer(maxGatherWait)
	gather:
		for n < b.lm.Options().BatchSize {
			if int64(len(calls)) >= b.active.Load() { // every joined loop is in; take stragglers that are queued anyway
				select {
				case c := <-b.queue:
					calls = append(calls, c)
					n += len(c.inputs)
					continue
				default:
					break gather
				}
			}
			select {
			case c := <-b.queue:
				calls = append(calls, c)
				n += len(c.inputs)
			case <-b.left:
			case <-deadline.C:
				break gather
			case <-b.quit:
				for _, c := range calls {
					c.err = errClosed
					close(c.done)
				}
				b.drain()
				return
			}
		}
		deadline.Stop()
		b.run(calls)
	}
}

// drain fails the calls still queued when the batcher closes.
func (b *batcher) drain() {
	for {
		select {
		case c := <-b.queue:
			c.err = errClosed
			close(c.done)
		default:
			return
		}
	}
}

func (b *batcher) run(calls []*stepCall) {
	live := calls[:0]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil { // the client left: its sequence gets no more steps
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	b.passes.Add(1)
	b.calls.Add(int64(len(live)))
	var merged []Input
	for _, c := range live {
		merged = append(merged, c.inputs...)
	}
	logits, err := b.lm.Forward(context.Background(), merged)
	if err != nil && len(live) > 1 {
		// One request's bad input must not fail the others: run each alone.
		for _, c := range live {
			c.logits, c.err = b.lm.Forward(context.Background(), c.inputs)
			close(c.done)
		}
		return
	}
	for _, c := range live {
		want := 0
		for _, in := range c.inputs {
			if in.Logits {
				want++
			}
		}
		if err != nil {
			c.err = err
		} else {
			c.logits, logits = logits[:want], logits[want:]
		}
		close(c.done)
	}
}
