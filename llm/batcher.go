package llm

import (
	"context"
	"errors"
)

// batcher runs the forward passes of concurrent requests together: continuous batching. Each
// generation loop calls step with its inputs for one step (a prompt, one token, or a guided
// image's conditional and unconditional tokens); while a pass computes, the steps that arrive
// queue, and the next pass takes all of them at once. No step waits for others to arrive.
type batcher struct {
	lm    *Backbone
	queue chan *stepCall
	quit  chan struct{}
}

type stepCall struct {
	ctx    context.Context
	inputs []Input
	logits [][]float32
	err    error
	done   chan struct{}
}

func newBatcher(lm *Backbone) *batcher {
	b := &batcher{lm: lm, queue: make(chan *stepCall, 64), quit: make(chan struct{})}
	go b.loop()
	return b
}

var errClosed = errors.New("the model is closed")

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
	<-c.done // once queued, the pass may already hold the inputs: wait for it either way
	return c.logits, c.err
}

func (b *batcher) close() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
}

func (b *batcher) loop() {
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
	gather:
		for n < b.lm.Options().BatchSize {
			select {
			case c := <-b.queue:
				calls = append(calls, c)
				n += len(c.inputs)
			default:
				break gather
			}
		}
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
