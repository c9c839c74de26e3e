// Package server is toklip's OpenAI-style and ollama HTTP APIs over the models of a store: chat
// completions with images in and out, image generation, embeddings, the model lists, health and
// metrics. One request's path: the route in Handler (the body read whole, body.go); its handler
// in chat.go, images.go, embeddings.go or ollama.go decodes the JSON, takes a lease on the model
// it names (models.go: loaded by the scheduler, package sched, if it is not), fills what the
// request leaves out from the model's Modelfile (request.go), checks it, is admitted to the
// model's queue for the engine's sequences it takes, and hands the engine a request
// (llm.Engine.Chat, Draw or Embed); the handler then ranges over the run's events and writes them
// as OpenAI's JSON or server-sent events (stream.go), or as ollama's newline-delimited JSON.
package server

import (
	"context"
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/sched"
	"github.com/toklip/toklip/visiontok"
)

// Options are the server's limits and settings.
type Options struct {
	// Model names the engine given to New (nil: none), and Defaults is its Modelfile: its
	// parameters, SYSTEM and MESSAGEs fill what a request leaves out (nil: OpenAI's defaults).
	Model    string
	Defaults *modelfiles.Modelfile
	// Store, if set, holds the other models requests may name (the embedded demo model is one
	// of them); each loads on its first request, opened by Open (default llm.Open) with Engine,
	// which Configure, if set, adjusts for one model by its Modelfile (its num_gpu).
	Store     *modelfiles.Store
	Engine    llm.EngineOptions
	Configure func(o *llm.EngineOptions, mf *modelfiles.Modelfile)
	Open      func(ctx context.Context, lmPath, visionPath string, opts llm.EngineOptions) (*llm.Engine, error)
	// Memory is the bytes all loaded models may take (before a model loads, its weights and KV
	// cache as llm.Inspect estimates them; once loaded, what ggml allocated); a model that does
	// not fit beside the others unloads the idle ones, least recently used first. 0: no limit.
	Memory int64
	// KeepAlive is how long a model stays loaded after its last request when the request does
	// not say (ollama's keep_alive): nil is 5 minutes, 0 unloads it at once, negative never.
	// The engine given to New stays listed as loaded unless a request says otherwise.
	KeepAlive *time.Duration

	// Log, if set, gets one line per request: when, its status, time, method and route, and
	// its tokens.
	Log io.Writer

	APIKey       string // if set, every /v1 and /api request must carry "Authorization: Bearer <key>"
	MaxBodyBytes int64  // request body limit; default 32 MiB
	// BodyTimeout is how long a client may take to send its body (default 60 s); the bodies being
	// read or held take at most MaxBodyMemory bytes together (default 8 x MaxBodyBytes), and
	// requests beyond it get 429.
	BodyTimeout   time.Duration
	MaxBodyMemory int64
	MaxImages     int // images per request; default 8
	MaxN          int // choices or images per request; default 8
	// Requests to a model run at once as far as its engine's sequences go (its one limit: see
	// sched's queue); MaxQueue more may wait for each model (default 64), and beyond that they
	// get 429.
	MaxQueue int
	// ImageHosts are the hosts image_url may name over http(s) ("*.example.com": its
	// subdomains); none by default. Fetches get FetchTimeout (default 10 s) and TokLIP's byte
	// limit, and never reach internal addresses.
	ImageHosts   []string
	FetchTimeout time.Duration
}

// DefaultKeepAlive is how long a model stays loaded after its last request, as in ollama.
const DefaultKeepAlive = 5 * time.Minute

// Server serves the models of a store, and an engine given to it.
type Server struct {
	opts    Options
	fixed   *served // the engine given to New, or nil
	models  *sched.Scheduler[*served]
	loading atomic.Int32 // preloads under way: /health answers 503 while there are any
	created int64
	metrics *metrics
	bodies  *bodies     // request bodies: read whole before admission, within a byte budget
	images  *imageStore // drawn images served by URL
	fetch   *fetcher    // nil: image URLs are not fetched
	infoCache
}

// New serves e (nil: none) under opts.Model, and the models of opts.Store.
func New(e *llm.Engine, opts Options) *Server {
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
	if opts.Open == nil {
		opts.Open = llm.Open
	}
	keepAlive := DefaultKeepAlive
	if opts.KeepAlive != nil {
		keepAlive = *opts.KeepAlive
	}
	m := newMetrics()
	s := &Server{opts: opts, created: time.Now().Unix(), metrics: m, infoCache: infoCache{infos: map[string]llm.Info{}},
		bodies: newBodies(opts.MaxBodyBytes, opts.MaxBodyMemory, opts.BodyTimeout), images: newImageStore(time.Hour, 256<<20)}
	if e != nil {
		s.fixed = &served{name: opts.Model, e: e, info: e.Info(), mf: opts.Defaults, defaults: opts.Defaults.Options()}
	}
	s.models = sched.New(s.resolve, sched.Options{Budget: opts.Memory, KeepAlive: keepAlive, MaxQueue: opts.MaxQueue,
		Queued: m.queued, Running: m.running})
	if len(opts.ImageHosts) > 0 {
		s.fetch = newFetcher(opts.ImageHosts, opts.FetchTimeout, visiontok.DefaultLimits.MaxBytes)
	}
	if s.fixed != nil { // loaded already, by the caller, who closes it: listed from the start, kept
		if l, err := s.models.Get(context.Background(), s.fixed.name, ptr(time.Duration(-1))); err == nil {
			l.Release()
		}
	}
	return s
}

// Preload loads a model before any request names it, with the default keep-alive; /health
// answers 503 (loading) until it is in.
func (s *Server) Preload(ctx context.Context, name string) error {
	s.loading.Add(1)
	defer s.loading.Add(-1)
	l, err := s.models.Get(ctx, canonical(name), nil)
	if err != nil {
		return err
	}
	l.Release()
	return nil
}

// Close unloads every model once its requests end.
func (s *Server) Close() { s.models.Close() }

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(s.logRequests, s.metrics.observe, gin.CustomRecovery(func(c *gin.Context, v any) { // a bug answers 500, never a dropped connection
		abort(c, &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error"})
	}))
	r.NoRoute(func(c *gin.Context) {
		abort(c, withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "no route " + c.Request.Method + " " + c.Request.URL.Path}, "unknown_url"))
	})
	r.GET("/health", func(c *gin.Context) {
		if s.loading.Load() > 0 {
			c.Header("Retry-After", "5")
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "loading"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET("/metrics", s.metrics.handler())
	s.ollamaRoutes(r)
	s.playgroundRoutes(r)
	r.GET("/images/:id", s.serveImage)
	v1 := r.Group("/v1", s.authorize)
	v1.GET("/models", s.listModels)
	v1.GET("/models/:model", s.getModel)
	v1.POST("/chat/completions", s.readBody, s.chat)             // admitted once its size is known
	v1.POST("/images/generations", s.readBody, s.generateImages) // likewise
	v1.POST("/embeddings", s.readBody, s.embeddings)
	v1.POST("/images/tokens", s.readBody, s.imageTokens) // toklip's: what TokLIP reads of an image
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

func ptr[T any](v T) *T { return &v }

func quote(s string) string { return "\"" + s + "\"" }
