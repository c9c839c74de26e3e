package server

import (
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"
)

// queue admits requests by what they take of the engine: the sequences of its KV cache (a text
// answer takes one, an answer that may draw two, its guided pair; n choices n times that). Its
// size is the engine's sequence count, the one limit on what runs at once (`serve -parallel`),
// so an admitted request never waits inside the engine for a sequence. A request that needs more
// than the whole takes all of it, and its choices take turns. Up to `waiting` more requests wait
// for room, in arrival order; any beyond are turned away with 429 and Retry-After, which
// OpenAI's clients honour. A request whose client leaves while it waits gives up its place.
type queue struct {
	sem     *semaphore.Weighted
	size    int64
	waiting atomic.Int64
	max     int64
	m       *metrics
}

func newQueue(size, waiting int, m *metrics) *queue {
	return &queue{sem: semaphore.NewWeighted(int64(size)), size: int64(size), max: int64(waiting), m: m}
}

// enter admits a request that needs weight sequences. It returns the function that gives them
// back, or false once it has answered the request (429), or the client has left.
func (q *queue) enter(c *gin.Context, weight int) (release func(), ok bool) {
	w := min(max(int64(weight), 1), q.size)
	if !q.sem.TryAcquire(w) {
		if q.waiting.Add(1) > q.max {
			q.waiting.Add(-1)
			c.Header("Retry-After", "1")
			abort(c, withCode(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error",
				Message: "the server is busy: every slot and every place in its queue is taken; retry shortly"}, "server_busy"))
			return nil, false
		}
		q.m.queued.Inc()
		err := q.sem.Acquire(c.Request.Context(), w)
		q.waiting.Add(-1)
		q.m.queued.Dec()
		if err != nil {
			c.Abort() // nobody is there to read an answer
			return nil, false
		}
	}
	q.m.running.Inc()
	return func() {
		q.m.running.Dec()
		q.sem.Release(w)
	}, true
}

// admit is gin middleware that admits a request needing one sequence's share (embeddings).
func (q *queue) admit(c *gin.Context) {
	release, ok := q.enter(c, 1)
	if !ok {
		return
	}
	defer release()
	c.Next()
}
