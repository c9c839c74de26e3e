package server

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/toklip/toklip/llm"
)

// metrics are what /metrics exposes, in a registry of the server's own (two servers in one
// process, as in tests, do not collide).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec   // by route and status
	duration    *prometheus.HistogramVec // by route
	tokens      *prometheus.CounterVec   // by kind: prompt, completion, image_input, image_output
	firstToken  prometheus.Histogram
	imageEncode prometheus.Histogram
	imageDecode prometheus.Histogram
	queued      prometheus.Gauge
	running     prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "toklip_requests_total",
			Help: "HTTP requests answered, by route and status."}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "toklip_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its answer.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"route"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "toklip_tokens_total",
			Help: "Tokens read and written: prompt (image tokens included), completion, image_input, image_output."}, []string{"kind"}),
		firstToken: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "toklip_time_to_first_token_seconds",
			Help: "Time from a chat request's arrival to its first text or image out.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		imageEncode: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "toklip_image_encode_seconds",
			Help: "TokLIP encoding of one input image (decode, preprocess, VQ, ViT); cache hits count as near 0.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		imageDecode: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "toklip_image_decode_seconds",
			Help: "VQ decoding of one drawn image.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "toklip_queue_depth",
			Help: "Requests waiting for a free slot."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "toklip_requests_running",
			Help: "Requests being answered."}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.tokens, m.firstToken, m.imageEncode, m.imageDecode, m.queued, m.running,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// observe counts every request by its route pattern (never the raw path: a client's URLs must
// not grow the label set).
func (m *metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// encoded observes the encoding time of a request's images.
func (m *metrics) encoded(times []time.Duration) {
	for _, t := range times {
		m.imageEncode.Observe(t.Seconds())
	}
}

// run observes one request's run of the engine, which arrived at start.
type run struct {
	m     *metrics
	start time.Time
	first bool // the first text or image went out
}

func (m *metrics) run(start time.Time) *run { return &run{m: m, start: start} }

// event observes an engine event: the run's first text or image, each image's decode.
func (r *run) event(ev llm.Event) {
	switch ev := ev.(type) {
	case llm.TextDelta:
		r.firstOut()
	case llm.ImageDone:
		r.firstOut()
		r.m.imageDecode.Observe(ev.Image.Decode.Seconds())
	}
}

func (r *run) firstOut() {
	if !r.first {
		r.first = true
		r.m.firstToken.Observe(time.Since(r.start).Seconds())
	}
}

// chatTokens counts a chat's tokens: the shared prompt once, completions with their image ids.
func (m *metrics) chatTokens(c *gin.Context, u llm.Usage) {
	setUsage(c, u)
	m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues("image_input").Add(float64(u.PromptImageTokens))
	m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
	m.tokens.WithLabelValues("image_output").Add(float64(u.ImageTokens))
}

// imageTokens counts an image generation's tokens: its prompt, the images' ids.
func (m *metrics) imageTokens(c *gin.Context, u llm.Usage) {
	setUsage(c, u)
	m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues("image_output").Add(float64(u.ImageTokens))
}

func (m *metrics) handler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}
