package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// One request runs, one waits, the third is turned away with 429 and Retry-After; a waiting
// client that leaves frees its place; when the running one ends, the waiting one runs.
func TestQueue(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	m := newMetrics()
	q := newQueue(1, 1, m)
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	r := gin.New()
	r.GET("/work", q.admit, func(c *gin.Context) {
		started <- struct{}{}
		<-release
		c.String(200, "done")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func(ctx context.Context) chan *http.Response {
		out := make(chan *http.Response, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/work", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out <- nil
				return
			}
			resp.Body.Close()
			out <- resp
		}()
		return out
	}
	waitFor := func(what string, cond func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	first := get(context.Background())
	<-started
	ctx, leave := context.WithCancel(context.Background())
	leaver := get(ctx)
	waitFor("a waiting request", func() bool { return q.waiting.Load() == 1 })
	if resp := <-get(context.Background()); resp == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the third request: %+v, want 429 with Retry-After", resp)
	}
	leave()
	<-leaver
	waitFor("the leaver's place to free", func() bool { return q.waiting.Load() == 0 })
	second := get(context.Background())
	waitFor("the second to wait", func() bool { return q.waiting.Load() == 1 })
	close(release)
	for _, ch := range []chan *http.Response{first, second} {
		if resp := <-ch; resp == nil || resp.StatusCode != 200 {
			t.Fatalf("a queued request: %+v", resp)
		}
	}
}
