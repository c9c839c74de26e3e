package server

import (
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"
)

// queue admits at most `running` requests at once; up to `waiting` more wait for a turn, and any
// beyond are turned away with 429 and Retry-After, which OpenAI's clients honour. A request
// whose client leaves while it waits gives up its place.
type queue struct {
	slots   chan struct{}
	waiting atomic.Int64
	max     int64
	m       *metrics
}

func newQueue(running, waiting int, m *metrics) *queue {
	return &queue{slots: make(chan struct{}, running), max: int64(waiting), m: m}
}

func (q *queue) admit(c *gin.Context) {
	select {
	case q.slots <- struct{}{}:
	default:
		if q.waiting.Add(1) > q.max {
			q.waiting.Add(-1)
			c.Header("Retry-After", "1")
			abort(c, withCode(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error",
				Message: "the server is busy: every slot and every place in its queue is taken; retry shortly"}, "server_busy"))
			return
		}
		q.m.queued.Inc()
		select {
		case q.slots <- struct{}{}:
			q.waiting.Add(-1)
			q.m.queued.Dec()
		case <-c.Request.Context().Done():
			q.waiting.Add(-1)
			q.m.queued.Dec()
			c.Abort() // nobody is there to read an answer
			return
		}
	}
	q.m.running.Inc()
	defer func() {
		q.m.running.Dec()
		<-q.slots
	}()
	c.Next()
}
