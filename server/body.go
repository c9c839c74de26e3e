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

// bodyChunk is how much of a body of unknown length is reserved from the budget at a time.
const bodyChunk = 1 << 20

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
// whatever err).
func (b *bodies) read(r io.Reader, length int64) (body []byte, release func(), err error) {
	var held int64
	release = func() { b.budget.Release(held) }
	take := func(n int64) bool {
		if !b.budget.TryAcquire(n) {
			return false
		}
		held += n
		return true
	}
	if length > b.limit {
		return nil, release, &http.MaxBytesError{Limit: b.limit}
	}
	var buf bytes.Buffer
	if length >= 0 { // Content-Length: reserved at once
		if !take(length + 1) {
			return nil, release, errBodyBudget
		}
		buf.Grow(int(length) + 1)
	}
	chunk := make([]byte, 64<<10)
	for {
		if length < 0 && int64(buf.Len())+int64(len(chunk)) > held && !take(bodyChunk) {
			return nil, release, errBodyBudget
		}
		n, err := r.Read(chunk)
		buf.Write(chunk[:n])
		if int64(buf.Len()) > b.limit {
			return nil, release, &http.MaxBytesError{Limit: b.limit}
		}
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), release, nil
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
