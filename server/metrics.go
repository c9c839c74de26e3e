package server

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

func (m *metrics) handler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}
