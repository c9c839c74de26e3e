package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// Requests take what they need of the engine's sequences: with two, a request needing one runs,
// one needing two waits for both (in arrival order: a later small request does not pass it, so
// large requests are never starved, and with the one place in the queue taken it is turned
// away), and a request needing more than there are takes them all.
func TestQueueWeights(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	q := newQueue(2, 1, newMetrics())
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{})}
	started := make(chan string, 4)
	r := gin.New()
	r.GET("/work/:name/:weight", func(c *gin.Context) {
		w, _ := strconv.Atoi(c.Param("weight"))
		done, ok := q.enter(c, w)
		if !ok {
			return
		}
		defer done()
		started <- c.Param("name")
		<-release[c.Param("name")]
		c.String(200, "done")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(path string) chan int {
		out := make(chan int, 1)
		go func() {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				out <- 0
				return
			}
			resp.Body.Close()
			out <- resp.StatusCode
		}()
		return out
	}
	a := get("/work/a/1")
	if got := <-started; got != "a" {
		t.Fatalf("%s started first", got)
	}
	b := get("/work/b/2")
	for deadline := time.Now().Add(5 * time.Second); q.waiting.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request needing two sequences did not wait")
		}
	}
	if status := <-get("/work/x/1"); status != 429 {
		t.Fatalf("a small request behind a waiting large one, with the queue full: %d, want 429", status)
	}
	close(release["a"])
	if got := <-started; got != "b" {
		t.Fatalf("%s started when a ended, want b", got)
	}
	c := get("/work/c/9") // more than there are: all of them, once b is done
	close(release["b"])
	if got := <-started; got != "c" {
		t.Fatalf("%s started, want c", got)
	}
	close(release["c"])
	for _, ch := range []chan int{a, b, c} {
		if status := <-ch; status != 200 {
			t.Fatalf("an admitted request: %d", status)
		}
	}
}
