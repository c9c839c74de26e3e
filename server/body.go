package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"
)

// A request's body is read whole, within a deadline and the size limit, before the request asks
// for a place in the queue: a client that sends its body slowly (or never ends a chunked one)
// holds a connection until its deadline, never a slot that others wait for. The bodies being read
// or held share a byte budget, so that many large uploads at once are turned away (429) instead
// of filling the memory.

// The budget is taken as a body's buffer grows (doubling from 64 KiB), never more than twice the
// bytes that arrived: a client that announces a large body and sends it slowly holds what it
// sent, not what it announced, so a few of them cannot keep the budget from everyone else for
// the length of the body deadline.
type bodies struct {
	budget  *semaphore.Weighted
	limit   int64         // one body
	timeout time.Duration // to receive it
}

func newBodies(limit, budget int64, timeout time.Duration) *bodies {
	return &bodies{budget: semaphore.NewWeighted(budget), limit: limit, timeout: timeout}
}

var errBodyBudget = errors.New("body budget exhausted")

// read reads r whole; release gives back what it reserved (call it when the body is done with,
// whatever err). length is the announced size, or -1.
func (b *bodies) read(r io.Reader, length int64) (body []byte, release func(), err error) {
	var held int64 // the buffer's capacity, all of it reserved
	release = func() { b.budget.Release(held) }
	if length > b.limit {
		return nil, release, &http.MaxBytesError{Limit: b.limit}
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) { // grow by doubling, to one byte past the limit at most
			n := min(max(int64(cap(buf)), 64<<10), b.limit+1-int64(cap(buf)))
			if n <= 0 {
				return nil, release, &http.MaxBytesError{Limit: b.limit}
			}
			if !b.budget.TryAcquire(n) {
				return nil, release, errBodyBudget
			}
			held += n
			buf = append(make([]byte, 0, int64(cap(buf))+n), buf...)
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if int64(len(buf)) > b.limit {
			return nil, release, &http.MaxBytesError{Limit: b.limit}
		}
		if errors.Is(err, io.EOF) {
			return buf, release, nil
		}
		if err != nil {
			return nil, release, err
		}
	}
}

// readBody is the middleware: the body becomes an in-memory reader for the handler.
func (s *Server) readBody(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	deadline := rc.SetReadDeadline(time.Now().Add(s.bodies.timeout)) == nil
	body, release, err := s.bodies.read(c.Request.Body, c.Request.ContentLength)
	if deadline {
		// Cleared at once: the server reads the connection in the background to notice a client
		// that leaves, and a deadline passing there would cancel the request.
		rc.SetReadDeadline(time.Time{})
	}
	defer release()
	var ne net.Error
	switch {
	case errors.Is(err, errBodyBudget):
		c.Header("Retry-After", "1")
		abort(c, withCode(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error",
			Message: "the server is receiving too many request bodies at once; retry shortly"}, "server_busy"))
		return
	case errors.As(err, &ne) && ne.Timeout():
		c.Header("Connection", "close")
		abort(c, withCode(&apiError{Status: http.StatusRequestTimeout, Type: "invalid_request_error",
			Message: fmt.Sprintf("the request body did not arrive within %s", s.bodies.timeout)}, "request_timeout"))
		return
	case errors.As(err, new(*http.MaxBytesError)):
		abort(c, err)
		return
	case err != nil: // the client went away, or broke its framing
		abort(c, invalid("", "the request body could not be read: %v", err))
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
}
