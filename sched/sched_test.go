package sched

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// model stands for a loaded engine: it counts its closes, and may say what it takes.
type model struct {
	name   string
	closed atomic.Int32
	bytes  int64
}

func (m *model) Bytes() int64 { return m.bytes }

func (m *model) Close() error {
	if m.closed.Add(1) > 1 {
		panic("closed twice: " + m.name)
	}
	return nil
}

// world resolves names to fixed sizes and counts loads; gate, if set, holds every load until it
// is closed.
type world struct {
	mu     sync.Mutex
	sizes  map[string]int64
	loads  map[string]int
	fail   map[string]error
	gate   chan struct{}
	opened []*model
}

func newWorld(sizes map[string]int64) *world {
	return &world{sizes: sizes, loads: map[string]int{}, fail: map[string]error{}}
}

var errUnknown = errors.New("unknown model")

func (w *world) resolve(name string) (Spec[*model], error) {
	w.mu.Lock()
	size, ok := w.sizes[name]
	gate := w.gate
	w.mu.Unlock()
	if !ok {
		return Spec[*model]{}, fmt.Errorf("%w %q", errUnknown, name)
	}
	return Spec[*model]{Size: size, Slots: 2, Open: func(context.Context) (*model, error) {
		if gate != nil {
			<-gate
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.loads[name]++
		if err := w.fail[name]; err != nil {
			return nil, err
		}
		m := &model{name: name}
		w.opened = append(w.opened, m)
		return m, nil
	}}, nil
}

func (w *world) loadsOf(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loads[name]
}

func names(st []Status[*model]) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Name)
	}
	return out
}

func get(t *testing.T, s *Scheduler[*model], name string) *Lease[*model] {
	t.Helper()
	l, err := s.Get(context.Background(), name, nil)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return l
}

func TestBurstLoadsOnce(t *testing.T) {
	w := newWorld(map[string]int64{"a": 1})
	w.gate = make(chan struct{})
	s := New(w.resolve, Options{KeepAlive: time.Minute})
	var wg sync.WaitGroup
	got := make([]*model, 10)
	for i := range got {
		wg.Go(func() {
			l, err := s.Get(context.Background(), "a", nil)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = l.Value()
			l.Release()
		})
	}
	time.Sleep(20 * time.Millisecond) // let them all wait on the one load
	close(w.gate)
	wg.Wait()
	if n := w.loadsOf("a"); n != 1 {
		t.Fatalf("10 requests for a cold model loaded it %d times, want 1", n)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("request %d got another model value", i)
		}
	}
}

func TestFailedLoadAnswersEveryWaiterAndIsRetried(t *testing.T) {
	w := newWorld(map[string]int64{"a": 1})
	boom := errors.New("the file is damaged")
	w.fail["a"] = boom
	w.gate = make(chan struct{})
	s := New(w.resolve, Options{KeepAlive: time.Minute, Budget: 10})
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := s.Get(context.Background(), "a", nil)
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(w.gate)
	for range 5 {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("a waiter got %v, want the load's error", err)
		}
	}
	if w.loadsOf("a") != 1 {
		t.Fatalf("loads = %d, want 1", w.loadsOf("a"))
	}
	if s.Used() != 0 || len(s.Loaded()) != 0 {
		t.Fatalf("a failed load left %d bytes, %v loaded", s.Used(), s.Loaded())
	}
	w.mu.Lock()
	delete(w.fail, "a")
	w.mu.Unlock()
	get(t, s, "a").Release()
	if w.loadsOf("a") != 2 {
		t.Fatalf("the next request did not load again")
	}
}

func TestUnknownName(t *testing.T) {
	s := New(newWorld(nil).resolve, Options{})
	if _, err := s.Get(context.Background(), "nope", nil); !errors.Is(err, errUnknown) {
		t.Fatalf("got %v, want the resolver's error", err)
	}
}

func TestBudgetEvictsLeastRecentlyUsedIdle(t *testing.T) {
	w := newWorld(map[string]int64{"a": 4, "b": 4, "c": 4, "huge": 11})
	s := New(w.resolve, Options{KeepAlive: -1, Budget: 10})
	get(t, s, "a").Release()
	get(t, s, "b").Release()
	get(t, s, "a").Release() // a is now more recent than b
	if got := names(s.Loaded()); len(got) != 2 {
		t.Fatalf("loaded %v, want a and b together", got)
	}
	c := get(t, s, "c")
	if got := names(s.Loaded()); fmt.Sprint(got) != "[c a]" {
		t.Fatalf("loaded %v after c, want [c a]: b was the least recently used", got)
	}
	if w.opened[1].name != "b" || w.opened[1].closed.Load() != 1 {
		t.Fatalf("b was not closed")
	}
	c.Release()

	var tooBig *TooBigError
	if _, err := s.Get(context.Background(), "huge", nil); !errors.As(err, &tooBig) || tooBig.Size != 11 || tooBig.Budget != 10 {
		t.Fatalf("a model over the whole budget: %v, want a TooBigError", err)
	}
	if got := names(s.Loaded()); len(got) != 2 {
		t.Fatalf("refusing a model too big unloaded others: %v", got)
	}
}

// A loaded model that says what it takes is counted by that, not by its estimate.
func TestMeasuredSize(t *testing.T) {
	w := newWorld(map[string]int64{"a": 3, "b": 3})
	s := New(func(name string) (Spec[*model], error) {
		sp, err := w.resolve(name)
		open := sp.Open
		sp.Open = func(ctx context.Context) (*model, error) {
			m, err := open(ctx)
			if m != nil {
				m.bytes = 6 // twice the estimate
			}
			return m, err
		}
		return sp, err
	}, Options{KeepAlive: -1, Budget: 10})
	get(t, s, "a").Release()
	if s.Used() != 6 {
		t.Fatalf("used %d, want a's measured 6", s.Used())
	}
	get(t, s, "b").Release() // 6 + 3 fits the estimate; measured, 12 does not: a goes next time
	if got := names(s.Loaded()); len(got) != 2 || s.Used() != 12 {
		t.Fatalf("loaded %v, used %d", got, s.Used())
	}
	get(t, s, "a").Release() // loaded: no eviction needed
	w.sizes["c"] = 1
	get(t, s, "c").Release() // 12 + 1 > 10: b, the least recently used, goes
	if got := names(s.Loaded()); fmt.Sprint(got) != "[c a]" {
		t.Fatalf("loaded %v, want [c a]", got)
	}
}

func TestModelInUseIsNeverUnloaded(t *testing.T) {
	w := newWorld(map[string]int64{"a": 6, "b": 6})
	s := New(w.resolve, Options{KeepAlive: -1, Budget: 10})
	a := get(t, s, "a")
	got := make(chan *Lease[*model])
	go func() {
		l, err := s.Get(context.Background(), "b", nil)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("b was loaded while a, in use, filled the budget")
	case <-time.After(50 * time.Millisecond):
	}
	if a.Value().closed.Load() != 0 {
		t.Fatal("a was closed under its request")
	}
	a.Release()
	b := <-got
	if b == nil || a.Value().closed.Load() != 1 {
		t.Fatalf("after a's request ended: b %v, a closed %d times", b, a.Value().closed.Load())
	}
	b.Release()

	// A request that gives up while waiting for room leaves nothing behind.
	b = get(t, s, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, "a", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for room past the deadline: %v", err)
	}
	b.Release()
	if s.Used() != 6 {
		t.Fatalf("used %d bytes, want b's 6", s.Used())
	}
}

func TestKeepAlive(t *testing.T) {
	w := newWorld(map[string]int64{"a": 1, "b": 1, "c": 1})
	s := New(w.resolve, Options{KeepAlive: 30 * time.Millisecond})
	zero, forever := time.Duration(0), time.Duration(-1)

	l, _ := s.Get(context.Background(), "a", &zero)
	if len(s.Loaded()) != 1 || !s.Loaded()[0].Expires.IsZero() {
		t.Fatalf("in use: %+v, want loaded with no expiry", s.Loaded())
	}
	l.Release()
	if len(s.Loaded()) != 0 || w.opened[0].closed.Load() != 1 {
		t.Fatalf("keep_alive 0 left %v loaded", names(s.Loaded()))
	}

	l, _ = s.Get(context.Background(), "b", &forever)
	l.Release()
	get(t, s, "c").Release() // the default: 30 ms
	st := s.Loaded()
	if len(st) != 2 || st[0].Name != "c" || st[0].Expires.IsZero() || st[1].KeepAlive >= 0 {
		t.Fatalf("loaded %+v, want c expiring and b kept forever", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Loaded()) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := names(s.Loaded()); fmt.Sprint(got) != "[b]" {
		t.Fatalf("after c's keep-alive: %v, want [b]", got)
	}
}

func TestUnloadWaitsForRequests(t *testing.T) {
	w := newWorld(map[string]int64{"a": 1})
	s := New(w.resolve, Options{KeepAlive: -1})
	l := get(t, s, "a")
	if !s.Unload("a") || s.Unload("a") {
		t.Fatal("Unload should report a loaded model once")
	}
	if l.Value().closed.Load() != 0 {
		t.Fatal("closed under its request")
	}
	if s.Used() != 1 {
		t.Fatal("an unloading model's bytes must count until it is closed")
	}
	l2 := get(t, s, "a") // a new request loads it again
	if l2.Value() == l.Value() || w.loadsOf("a") != 2 {
		t.Fatal("a request after Unload got the unloading model")
	}
	l.Release()
	if l.Value().closed.Load() != 1 || s.Used() != 1 {
		t.Fatalf("after its request: closed %d, used %d", l.Value().closed.Load(), s.Used())
	}
	l2.Release()
	l2.Release() // twice does nothing
	s.Close()
	if l2.Value().closed.Load() != 1 || s.Used() != 0 {
		t.Fatal("Close did not unload")
	}
	if _, err := s.Get(context.Background(), "a", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestQueue(t *testing.T) {
	q := newQueue(2, 1, nil, nil)
	r1, err := q.enter(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error)
	go func() {
		r, err := q.enter(context.Background(), 5) // more than the whole: takes all of it
		if r != nil {
			r()
		}
		waited <- err
	}()
	for q.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := q.enter(context.Background(), 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("beyond the queue: %v, want ErrBusy", err)
	}
	r1()
	r1() // twice does nothing
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r2, _ := q.enter(context.Background(), 2)
	go cancel()
	if _, err := q.enter(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request whose client left: %v", err)
	}
	r2()
}
