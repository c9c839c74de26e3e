// Package server is toklip's OpenAI-style HTTP API over one loaded model: chat completions with
// images in and out, image generation, embeddings, the model list, health and metrics. One
// request's path: the route in Handler (the body read whole, body.go); its handler in chat.go,
// images.go or embeddings.go decodes and checks the JSON and fills what it leaves out from the
// Modelfile (request.go), is admitted for the engine's sequences it takes (queue.go), and hands
// the engine a request (llm.Engine.Chat, Draw or Embed); the handler then ranges over the run's
// events and writes them as OpenAI's JSON, or as server-sent events (stream.go).
package server

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
)

// Options are the server's limits and settings.
type Options struct {
	Model string // the name clients use for the loaded model
	// Defaults is the model's Modelfile: its parameters, SYSTEM and MESSAGEs fill what a request
	// leaves out (nil: OpenAI's defaults).
	Defaults     *modelfiles.Modelfile
	APIKey       string // if set, every /v1 request must carry "Authorization: Bearer <key>"
	MaxBodyBytes int64  // request body limit; default 32 MiB
	// BodyTimeout is how long a client may take to send its body (default 60 s); the bodies being
	// read or held take at most MaxBodyMemory bytes together (default 8 x MaxBodyBytes), and
	// requests beyond it get 429.
	BodyTimeout   time.Duration
	MaxBodyMemory int64
	MaxImages     int // images per request; default 8
	MaxN          int // choices or images per request; default 8
	// Requests run at once as far as the engine's sequences go (its one limit: see queue);
	// MaxQueue more may wait (default 64), and beyond that they get 429.
	MaxQueue int
	// ImageHosts are the hosts image_url may name over http(s) ("*.example.com": its
	// subdomains); none by default. Fetches get FetchTimeout (default 10 s) and TokLIP's byte
	// limit, and never reach internal addresses.
	ImageHosts   []string
	FetchTimeout time.Duration
}

// Server serves one engine.
type Server struct {
	e        *llm.Engine // set once, before ready
	ready    atomic.Bool // false while the model loads: /health and /v1 answer 503
	opts     Options
	defaults modelfiles.Options // opts.Defaults' parameters
	created  int64
	metrics  *metrics
	queue    *queue
	bodies   *bodies     // request bodies: read whole before admission, within a byte budget
	images   *imageStore // drawn images served by URL
	fetch    *fetcher    // nil: image URLs are not fetched
}

// New serves e under opts.Model.
func New(e *llm.Engine, opts Options) *Server {
	s := NewLoading(opts)
	s.Ready(e)
	return s
}

// NewLoading returns a server that answers 503 (with Retry-After) until Ready gives it its
// engine, so that it can listen while a large model loads.
func NewLoading(opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxImages <= 0 {
		opts.MaxImages = 8
	}
	if opts.MaxN <= 0 {
		opts.MaxN = 8
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 64
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 10 * time.Second
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 60 * time.Second
	}
	if opts.MaxBodyMemory <= 0 {
		opts.MaxBodyMemory = 8 * opts.MaxBodyBytes
	}
	m := newMetrics()
	return &Server{opts: opts, defaults: opts.Defaults.Options(), created: time.Now().Unix(), metrics: m,
		bodies: newBodies(opts.MaxBodyBytes, opts.MaxBodyMemory, opts.BodyTimeout), images: newImageStore(time.Hour, 256<<20)}
}

// Ready starts serving e. Call it once.
func (s *Server) Ready(e *llm.Engine) {
	s.e = e
	s.queue = newQueue(e.Info().Sequences, s.opts.MaxQueue, s.metrics)
	if len(s.opts.ImageHosts) > 0 {
		s.fetch = newFetcher(s.opts.ImageHosts, s.opts.FetchTimeout, e.Info().ImageLimits.MaxBytes)
	}
	s.ready.Store(true) // publishes s.e, s.queue and s.fetch to the handlers, which load ready first
}

// whenReady answers 503 while the model loads.
func (s *Server) whenReady(c *gin.Context) {
	if !s.ready.Load() {
		c.Header("Retry-After", "5")
		abort(c, withCode(&apiError{Status: http.StatusServiceUnavailable, Type: "server_error",
			Message: "the model " + quote(s.opts.Model) + " is loading; retry shortly"}, "model_loading"))
	}
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(s.metrics.observe, gin.CustomRecovery(func(c *gin.Context, v any) { // a bug answers 500, never a dropped connection
		abort(c, &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error"})
	}))
	r.NoRoute(func(c *gin.Context) {
		abort(c, withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "no route " + c.Request.Method + " " + c.Request.URL.Path}, "unknown_url"))
	})
	r.GET("/health", func(c *gin.Context) {
		if !s.ready.Load() {
			c.Header("Retry-After", "5")
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "loading"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET("/metrics", s.metrics.handler())
	s.ollamaRoutes(r)
	r.GET("/images/:id", s.serveImage)
	v1 := r.Group("/v1", s.authorize, s.whenReady)
	v1.GET("/models", s.listModels)
	v1.GET("/models/:model", s.getModel)
	v1.POST("/chat/completions", s.readBody, s.chat)             // admitted once its size is known
	v1.POST("/images/generations", s.readBody, s.generateImages) // likewise
	v1.POST("/embeddings", s.readBody, func(c *gin.Context) { s.queue.admit(c) }, s.embeddings)
	return r
}

// HTTPServer is the http.Server to serve Handler with: headers within 10 s, idle connections
// closed after 2 minutes, 64 KiB of headers at most. Bodies get their own deadline (readBody);
// there is no whole-request or write timeout, since an answer may stream for minutes.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
}

func (s *Server) authorize(c *gin.Context) {
	if s.opts.APIKey == "" {
		return
	}
	key, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) != 1 {
		abort(c, withCode(&apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error",
			Message: "a valid API key is required: send it as Authorization: Bearer <key>"}, "invalid_api_key"))
	}
}

// checkModel refuses a request for another model than the one loaded.
func (s *Server) checkModel(name string) error {
	if name == "" {
		return invalid("model", "model is required")
	}
	if name != s.opts.Model {
		return withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: ptr("model"),
			Message: "the model " + quote(name) + " does not exist; this server runs " + quote(s.opts.Model)}, "model_not_found")
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func quote(s string) string { return "\"" + s + "\"" }
