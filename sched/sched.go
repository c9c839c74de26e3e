// Package sched keeps models loaded while they are wanted, the way ollama's scheduler does: a
// model is loaded on its first request (once, however many requests wait for it), stays loaded
// for its keep-alive after its last request ends, and is unloaded early, least recently used
// first, when a model that does not fit the memory budget beside it is asked for. A model in use
// is never unloaded under its requests. Each loaded model admits requests through its own queue,
// as many at once as its engine has sequences, so requests to different models run concurrently.
//
// The scheduler knows models only by name and by what resolving a name says (Spec): the bytes a
// model takes, its sequences, and how to open it. It is generic in what it holds, so that its
// rules are tested without loading weights.
package sched

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Spec is what the scheduler must know of a model before loading it. Its Size is an estimate:
// a loaded model that has a method Bytes() int64 is counted by that from then on (what it
// allocated, which a file's headers cannot tell exactly).
type Spec[T io.Closer] struct {
	Size  int64                                // bytes once loaded, counted against the budget
	Slots int                                  // sequences decoded at once: the size of its admission queue
	Open  func(ctx context.Context) (T, error) // loads it; called once per load
}

// Options are the scheduler's settings.
type Options struct {
	// Budget is the bytes all loaded models may take together; 0 or less: no limit.
	Budget int64
	// KeepAlive is how long a model stays loaded after its last request when the requests say
	// nothing: 0 unloads it at once, a negative duration never.
	KeepAlive time.Duration
	// MaxQueue is how many requests may wait for each model's slots; more get ErrBusy.
	MaxQueue int
	// Queued and Running, if set, count the requests waiting in and admitted by every queue.
	Queued, Running Gauge
}

// Gauge is a number that goes up and down (a Prometheus gauge is one).
type Gauge interface {
	Inc()
	Dec()
}

// TooBigError is returned for a model that cannot fit the budget even with nothing else loaded.
type TooBigError struct {
	Name         string
	Size, Budget int64
}

func (e *TooBigError) Error() string {
	return fmt.Sprintf("the model %q needs %.2f GB, more than this server's memory budget of %.2f GB even with no other model loaded (the server's -memory flag sets it)",
		e.Name, float64(e.Size)/1e9, float64(e.Budget)/1e9)
}

// ErrClosed is returned by Get once Close has been called.
var ErrClosed = errors.New("the server is shutting down")

// Scheduler holds the loaded models. Its methods are safe for concurrent use.
type Scheduler[T io.Closer] struct {
	resolve func(name string) (Spec[T], error)
	opts    Options

	mu       sync.Mutex
	models   map[string]*entry[T] // by name: loading or loaded
	retiring map[*entry[T]]bool   // unloading once their requests end; their bytes still count
	used     int64                // bytes of every entry in models and retiring
	changed  chan struct{}        // closed (and replaced) when a model goes idle or leaves
	closed   bool
	clock    uint64 // orders uses, for least recently used
}

type entry[T io.Closer] struct {
	name  string
	size  int64
	value T
	ready chan struct{} // closed when loaded or failed
	err   error         // the load's error, set before ready closes
	q     *queue

	refs      int           // leases held: requests that have it or wait for it
	keepAlive time.Duration // after the last lease ends
	timer     *time.Timer   // pending expiry while idle
	expires   time.Time     // zero while in use or kept forever
	used      uint64        // clock at the last lease's end or start
	loadedAt  time.Time
}

// New returns a scheduler that finds models with resolve (its error for an unknown name is
// returned to Get's caller as it is).
func New[T io.Closer](resolve func(name string) (Spec[T], error), opts Options) *Scheduler[T] {
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 64
	}
	return &Scheduler[T]{resolve: resolve, opts: opts, models: map[string]*entry[T]{}, retiring: map[*entry[T]]bool{}, changed: make(chan struct{})}
}

// Lease is one request's hold on a loaded model: while any lease on it is held, the model stays
// loaded. Release it when the request ends.
type Lease[T io.Closer] struct {
	s    *Scheduler[T]
	e    *entry[T]
	once sync.Once
}

// Value is the loaded model.
func (l *Lease[T]) Value() T { return l.e.value }

// Name is the model's name.
func (l *Lease[T]) Name() string { return l.e.name }

// Enter waits for weight of the model's slots (a request that needs more than all takes all).
// It returns the function that gives them back, ErrBusy when the queue is full, or ctx's error.
func (l *Lease[T]) Enter(ctx context.Context, weight int) (release func(), err error) {
	return l.e.q.enter(ctx, weight)
}

// Release ends the lease; the model's keep-alive starts when its last lease ends. Further calls
// do nothing.
func (l *Lease[T]) Release() { l.once.Do(func() { l.s.release(l.e) }) }

// Get returns a lease on the named model, loading it first if it is not loaded: after unloading
// idle models, least recently used first, while it would not fit the budget beside them, and
// after waiting for models in use to go idle when unloading idle ones is not enough. Concurrent
// calls for a model that is loading wait for that one load, and share its error. keepAlive, if
// not nil, becomes the model's keep-alive (the last request's word counts, as in ollama).
func (s *Scheduler[T]) Get(ctx context.Context, name string, keepAlive *time.Duration) (*Lease[T], error) {
	e, err := s.hold(ctx, name, keepAlive)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		s.release(e)
		return nil, ctx.Err()
	}
	if e.err != nil {
		s.release(e)
		return nil, e.err
	}
	return &Lease[T]{s: s, e: e}, nil
}

// hold finds or starts the model's entry and counts a lease on it.
func (s *Scheduler[T]) hold(ctx context.Context, name string, keepAlive *time.Duration) (*entry[T], error) {
	var spec *Spec[T] // resolved once, outside the lock (it reads files)
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if e := s.models[name]; e != nil {
			e.refs++
			s.clock++
			e.used = s.clock
			if keepAlive != nil {
				e.keepAlive = *keepAlive
			}
			e.stopTimer()
			s.mu.Unlock()
			return e, nil
		}
		if spec == nil {
			s.mu.Unlock()
			sp, err := s.resolve(name)
			if err != nil {
				return nil, err
			}
			spec = &sp
			s.mu.Lock()
			continue // another request may have started it meanwhile
		}
		if s.opts.Budget > 0 && spec.Size > s.opts.Budget {
			s.mu.Unlock()
			return nil, &TooBigError{Name: name, Size: spec.Size, Budget: s.opts.Budget}
		}
		if s.opts.Budget <= 0 || s.used+spec.Size <= s.opts.Budget {
			break
		}
		if v := s.idlest(); v != nil {
			s.retire(v)
			continue
		}
		// Every loaded model is in use (or unloading): wait until one goes idle or leaves.
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	ka := s.opts.KeepAlive
	if keepAlive != nil {
		ka = *keepAlive
	}
	s.clock++
	e := &entry[T]{name: name, size: spec.Size, ready: make(chan struct{}), refs: 1, keepAlive: ka, used: s.clock,
		q: newQueue(spec.Slots, s.opts.MaxQueue, s.opts.Queued, s.opts.Running)}
	s.models[name] = e
	s.used += e.size
	s.mu.Unlock()
	// The load is nobody's request's: a first requester that leaves does not cancel it for the
	// others waiting.
	go s.load(e, spec.Open)
	return e, nil
}

func (s *Scheduler[T]) load(e *entry[T], open func(context.Context) (T, error)) {
	v, err := open(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	e.value, e.err, e.loadedAt = v, err, time.Now()
	if err != nil {
		delete(s.models, e.name)
		s.used -= e.size
		s.broadcast()
	} else if b, ok := any(v).(interface{ Bytes() int64 }); ok && b.Bytes() > 0 {
		s.used += b.Bytes() - e.size
		e.size = b.Bytes()
	}
	close(e.ready)
	if err == nil && e.refs == 0 {
		s.idle(e)
	}
}

// idlest is the least recently used loaded model that no request holds, or nil.
func (s *Scheduler[T]) idlest() *entry[T] {
	var best *entry[T]
	for _, e := range s.models {
		if e.refs == 0 && e.loaded() && (best == nil || e.used < best.used) {
			best = e
		}
	}
	return best
}

func (e *entry[T]) loaded() bool {
	select {
	case <-e.ready:
		return e.err == nil
	default:
		return false
	}
}

func (e *entry[T]) stopTimer() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.expires = time.Time{}
}

// retire takes e out of the names served: it unloads now if idle, else when its last lease ends.
// A later Get for its name loads it again.
func (s *Scheduler[T]) retire(e *entry[T]) {
	if s.models[e.name] == e {
		delete(s.models, e.name)
	}
	e.stopTimer()
	s.retiring[e] = true
	if e.refs == 0 {
		s.unload(e)
	}
}

// unload closes an idle retired model and frees its bytes.
func (s *Scheduler[T]) unload(e *entry[T]) {
	delete(s.retiring, e)
	s.used -= e.size
	if e.loaded() {
		e.value.Close()
	}
	s.broadcast()
}

func (s *Scheduler[T]) release(e *entry[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	s.clock++
	e.used = s.clock
	if e.refs == 0 && e.loaded() {
		s.idle(e)
	}
}

// idle starts e's keep-alive now that no request holds it.
func (s *Scheduler[T]) idle(e *entry[T]) {
	switch {
	case s.retiring[e]:
		s.unload(e)
		return
	case e.keepAlive == 0 || s.closed:
		s.retire(e)
		return
	case e.keepAlive > 0:
		e.expires = time.Now().Add(e.keepAlive)
		var t *time.Timer
		t = time.AfterFunc(e.keepAlive, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if e.timer == t && e.refs == 0 { // not taken again since
				s.retire(e)
			}
		})
		e.timer = t
	}
	s.broadcast()
}

func (s *Scheduler[T]) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Unload unloads the named model: now if no request holds it, else when the last one ends. It
// reports whether the model was loaded.
func (s *Scheduler[T]) Unload(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.models[name]
	if e == nil {
		return false
	}
	s.retire(e)
	return true
}

// Status is a loaded model, as /api/ps shows it.
type Status[T any] struct {
	Name      string
	Value     T
	Size      int64
	Slots     int
	InUse     int           // requests holding it
	KeepAlive time.Duration // after its last request; negative: forever
	Expires   time.Time     // when it unloads if no request comes; zero while in use or kept forever
	LoadedAt  time.Time
}

// Loaded lists the loaded models (not those loading), most recently used first.
func (s *Scheduler[T]) Loaded() []Status[T] {
	s.mu.Lock()
	defer s.mu.Unlock()
	type used struct {
		Status[T]
		at uint64
	}
	var out []used
	for _, e := range s.models {
		if e.loaded() {
			out = append(out, used{Status[T]{Name: e.name, Value: e.value, Size: e.size, Slots: int(e.q.size), InUse: e.refs, Expires: e.expires,
				KeepAlive: e.keepAlive, LoadedAt: e.loadedAt}, e.used})
		}
	}
	slices.SortFunc(out, func(a, b used) int { return cmp.Compare(b.at, a.at) })
	st := make([]Status[T], len(out))
	for i, u := range out {
		st[i] = u.Status
	}
	return st
}

// Used is the bytes the loaded, loading and unloading models take.
func (s *Scheduler[T]) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// Close refuses further Gets and unloads every model, each once its requests end.
func (s *Scheduler[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, e := range s.models {
		if e.loaded() {
			s.retire(e)
		}
	}
}
