package server

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/options"
)

// ollama's native API, beside OpenAI's: the routes its clients (the CLI, its Go and JS
// libraries, Open WebUI) call, with the JSON shapes of its Go client package
// github.com/ollama/ollama/api, streamed as newline-delimited JSON, errors as {"error": "..."}.
// A request's options take ollama's names and defaults (api.DefaultOptions), under the
// Modelfile's PARAMETERs, under the request's own.

// OllamaAPIVersion is the ollama release whose API these routes follow; /api/version reports it,
// since ollama's clients read it to decide what a server understands.
const OllamaAPIVersion = "0.17.4"

func (s *Server) ollamaRoutes(r *gin.Engine) {
	r.GET("/api/version", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"version": OllamaAPIVersion}) })
	a := r.Group("/api", s.authorize)
	a.GET("/tags", s.ollamaTags)
	a.GET("/ps", s.ollamaPS)
	a.POST("/show", s.readBody, s.ollamaShow)
	a.POST("/create", s.readBody, s.ollamaCreate)
	a.POST("/copy", s.readBody, s.ollamaCopy)
	a.DELETE("/delete", s.readBody, s.ollamaDelete)
	a.POST("/chat", s.readBody, s.ollamaChat)
	a.POST("/generate", s.readBody, s.ollamaGenerate)
	a.POST("/embed", s.readBody, s.ollamaEmbed)
}

// ollamaOptions are a request's options as the engine's: ollama's defaults, the Modelfile's
// PARAMETERs over them, the request's options over those (options.FromMap: ollama's names and
// types, and toklip's), and toklip's draw (answers may hold images, as OpenAI's modalities
// ["text", "image"]).
func ollamaOptions(m *served, reqOpts map[string]any, format json.RawMessage) (llm.ChatOptions, error) {
	reqOpts = maps.Clone(reqOpts)
	draw := false
	if v, ok := reqOpts["draw"]; ok {
		b, ok := v.(bool)
		if !ok {
			return llm.ChatOptions{}, invalid("options", "options.draw must be true or false")
		}
		if b && !m.info.Draws {
			return llm.ChatOptions{}, invalid("options", "this model does not draw images")
		}
		draw = b
		delete(reqOpts, "draw")
	}
	o := options.For(options.Ollama(), m.defaults)
	if err := o.FromMap(reqOpts); err != nil {
		return llm.ChatOptions{}, invalid("options", "options: %v", err)
	}
	opts := o.Chat(draw)
	switch f := string(bytes.TrimSpace(format)); f {
	case "", `""`, "null":
	case `"json"`:
		opts.JSON = true
	default:
		return opts, invalid("format", `format %s is not supported: use "json" (JSON schemas are not read)`, f)
	}
	return opts, nil
}

// ollamaMessages turns ollama's messages into the engine's: each message's images (raw bytes)
// before its text, as LLaVA-style models read them. The images of one request are limited as
// on OpenAI's route (MaxImages), counted before any is decoded.
func (s *Server) ollamaMessages(in []api.Message) ([]llm.Message, error) {
	if len(in) == 0 {
		return nil, invalid("messages", "messages must hold at least one message")
	}
	images := 0
	for _, m := range in {
		images += len(m.Images)
	}
	if images > s.opts.MaxImages {
		return nil, invalid("images", "%d images in one request, at most %d", images, s.opts.MaxImages)
	}
	out := make([]llm.Message, 0, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return nil, invalid("messages", "messages[%d].role %q is not one of system, user, assistant", i, m.Role)
		}
		msg := llm.Message{Role: m.Role}
		for _, img := range m.Images {
			msg.Content = append(msg.Content, llm.Part{Image: img})
		}
		msg.Content = append(msg.Content, llm.Part{Text: m.Content})
		out = append(out, msg)
	}
	return out, nil
}

func (s *Server) ollamaChat(c *gin.Context) {
	var req api.ChatRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	if len(req.Messages) == 0 { // ollama's way to load or unload a model
		s.loadOrUnload(c, req.Model, req.KeepAlive, func(reason string) any {
			return api.ChatResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Message: api.Message{Role: "assistant"}, Done: true, DoneReason: reason}
		})
		return
	}
	l, ok := s.use(c, req.Model, keepAlive(req.KeepAlive))
	if !ok {
		return
	}
	defer l.Release()
	s.answerOllama(c, l, req.Messages, false, req.Options, req.Format, req.Stream, func(p ollamaPiece) any {
		return api.ChatResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Message: api.Message{Role: "assistant", Content: p.text, Images: p.images},
			Done: p.done, DoneReason: p.reason, Metrics: p.metrics}
	})
}

// ollamaFailed answers a run that failed: with ollama's error object, or, once a stream has begun
// (line is its writer, nil when not streaming), as its last line, if the client is still there.
func ollamaFailed(c *gin.Context, line func(any), err error) {
	if line == nil {
		abort(c, err)
	} else if c.Request.Context().Err() == nil {
		line(gin.H{"error": toAPIError(err).Message})
	}
}

// keepAlive is a request's keep_alive as the scheduler's (ollama's client sends a negative one
// as the longest duration there is: forever).
func keepAlive(d *api.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v := d.Duration
	if v == math.MaxInt64 {
		v = -1
	}
	return &v
}

// loadOrUnload answers a chat or generate request with nothing to answer, as ollama does: with
// keep_alive 0 it unloads the model (once its requests end; `ollama stop` sends this), otherwise
// it loads it and keeps it for its keep_alive.
func (s *Server) loadOrUnload(c *gin.Context, name string, ka *api.Duration, done func(reason string) any) {
	if d := keepAlive(ka); d != nil && *d == 0 {
		if !s.models.Unload(canonical(name)) { // not loaded: still, a name the server has
			if _, err := s.lookup(name); err != nil {
				abort(c, err)
				return
			}
		}
		c.JSON(http.StatusOK, done("unload"))
		return
	}
	l, ok := s.use(c, name, keepAlive(ka))
	if !ok {
		return
	}
	l.Release()
	c.JSON(http.StatusOK, done("load"))
}

func (s *Server) ollamaGenerate(c *gin.Context) {
	var req api.GenerateRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Prompt == "" && len(req.Images) == 0 { // ollama's way to load or unload a model
		s.loadOrUnload(c, req.Model, req.KeepAlive, func(reason string) any {
			return api.GenerateResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Done: true, DoneReason: reason}
		})
		return
	}
	l, ok := s.use(c, req.Model, keepAlive(req.KeepAlive))
	if !ok {
		return
	}
	defer l.Release()
	if req.Width > 0 || req.Height > 0 { // ollama's (experimental) image generation
		s.ollamaDraw(c, l, &req)
		return
	}
	if req.Template != "" || req.Suffix != "" || len(req.Context) > 0 {
		abort(c, invalid("", "template, suffix and context are not supported: send the prompt (and system), or a raw prompt in the model's own format"))
		return
	}
	msgs := []api.Message{{Role: "user", Content: req.Prompt, Images: req.Images}}
	if req.System != "" && !req.Raw { // raw: the prompt is the whole input, as in ollama
		msgs = append([]api.Message{{Role: "system", Content: req.System}}, msgs...)
	}
	if _, draws := req.Options["draw"]; draws {
		abort(c, invalid("options", "options.draw is read by /api/chat; /api/generate draws with width and height"))
		return
	}
	s.answerOllama(c, l, msgs, req.Raw, req.Options, req.Format, req.Stream, func(p ollamaPiece) any {
		return api.GenerateResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Response: p.text, Done: p.done, DoneReason: p.reason, Metrics: p.metrics}
	})
}

// ollamaDraw draws the prompt as ollama's image generation answers: with streaming, an object
// per drawn id (completed of total), then the image, base64 PNG, in the last (done) object. The
// model draws at its own size, whatever width and height ask. Options: temperature, top_k, seed
// (the ids' sampler, over the Modelfile's image_temperature, image_top_k and seed), and toklip's
// guidance_scale.
func (s *Server) ollamaDraw(c *gin.Context, l *lease, req *api.GenerateRequest) {
	m := l.Value()
	if !m.info.Draws {
		abort(c, invalid("model", "the model %q does not draw images", req.Model))
		return
	}
	// The ids' sampler is what temperature and top_k set here (image_temperature and
	// image_top_k in a chat's options and a Modelfile).
	opts := maps.Clone(req.Options)
	for from, to := range map[string]string{"temperature": "image_temperature", "top_k": "image_top_k"} {
		if v, ok := opts[from]; ok {
			opts[to] = v
			delete(opts, from)
		}
	}
	o := options.For(options.Ollama(), m.defaults)
	if err := o.FromMap(opts); err != nil {
		abort(c, invalid("options", "options: %v", err))
		return
	}
	r := imageRequest{Model: strings.TrimSuffix(req.Model, ":latest"), Prompt: req.Prompt}
	job, err := s.checkImages(m, &r, o)
	if err != nil {
		abort(c, err)
		return
	}
	release, ok := s.enter(c, l, 2) // a guided pair of sequences
	if !ok {
		return
	}
	defer release()
	start := time.Now()
	run, err := m.e.Draw(c.Request.Context(), job.DrawRequest)
	if err != nil {
		abort(c, err)
		return
	}
	streaming := req.Stream == nil || *req.Stream
	var line func(any)
	if streaming {
		line = newNDJSON(c).send
	}
	var drawn *llm.GeneratedImage
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.ImageStep:
			if streaming {
				line(api.GenerateResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Completed: int64(ev.Step), Total: int64(ev.Total)})
			}
		case llm.ImageDone:
			drawn = ev.Image
		case llm.Failed:
			ollamaFailed(c, line, ev.Err)
			return
		case llm.Usage:
			s.imageUsage(c, ev) // the metrics and the log
			b64, err := encodeImage(drawn.Image, "png")
			if err != nil {
				abort(c, err)
				return
			}
			final := api.GenerateResponse{Model: req.Model, CreatedAt: time.Now().UTC(), Image: b64, Done: true, DoneReason: "stop",
				Metrics: api.Metrics{TotalDuration: time.Since(start), PromptEvalCount: ev.PromptTokens, EvalCount: ev.ImageTokens}}
			if streaming {
				line(final)
			} else {
				c.JSON(http.StatusOK, final)
			}
		}
	}
}

// ollamaPiece is one object of an answer: text, or images drawn (a chat's), or the end.
type ollamaPiece struct {
	text    string
	images  []api.ImageData // PNG
	done    bool
	reason  string
	metrics api.Metrics
}

// answerOllama checks ollama's messages and options, runs the chat (raw: with no template) and
// writes it as ollama does: newline-delimited JSON objects of text or drawn images (reply builds
// each one), the last with done, its reason and the counts and durations; or, with stream false,
// that last object holding the whole text and every image.
func (s *Server) answerOllama(c *gin.Context, l *lease, messages []api.Message, raw bool, reqOpts map[string]any, format json.RawMessage, stream *bool, reply func(ollamaPiece) any) {
	md := l.Value()
	opts, err := ollamaOptions(md, reqOpts, format)
	if err != nil {
		abort(c, err)
		return
	}
	msgs, err := s.ollamaMessages(messages)
	if err != nil {
		abort(c, err)
		return
	}
	if !raw {
		msgs = options.Messages(md.mf, msgs)
	}
	weight := 1
	if opts.Images {
		weight = 2 // a guided pair of sequences
	}
	release, ok := s.enter(c, l, weight)
	if !ok {
		return
	}
	defer release()
	start := time.Now()
	run, err := md.e.Chat(c.Request.Context(), llm.ChatRequest{Messages: msgs, Options: opts, Raw: raw})
	if err != nil {
		abort(c, err)
		return
	}
	s.metrics.encoded(run.Prompt.ImageEncodes)
	streaming := stream == nil || *stream // ollama streams unless told not to
	var line func(any)
	if streaming {
		line = newNDJSON(c).send
	}
	var text strings.Builder
	var images []api.ImageData
	var firstOut time.Time
	reason := "stop"
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.TextDelta:
			if firstOut.IsZero() {
				firstOut = time.Now()
			}
			text.WriteString(ev.Text)
			if streaming {
				line(reply(ollamaPiece{text: ev.Text}))
			}
		case llm.ImageDone:
			png, err := encodeBytes(ev.Image.Image, "png")
			if err != nil {
				abort(c, err)
				return
			}
			images = append(images, png)
			if streaming {
				line(reply(ollamaPiece{images: []api.ImageData{png}}))
			}
		case llm.ChoiceDone:
			reason = ev.Answer.FinishReason
		case llm.Failed:
			ollamaFailed(c, line, ev.Err)
			return
		case llm.Usage:
			s.metrics.chatTokens(c, ev)
			if firstOut.IsZero() {
				firstOut = time.Now()
			}
			m := api.Metrics{TotalDuration: time.Since(start), PromptEvalCount: ev.PromptTokens, PromptEvalDuration: firstOut.Sub(start),
				EvalCount: ev.CompletionTokens, EvalDuration: time.Since(firstOut)}
			if streaming {
				line(reply(ollamaPiece{done: true, reason: reason, metrics: m}))
			} else {
				c.JSON(http.StatusOK, reply(ollamaPiece{text: text.String(), images: images, done: true, reason: reason, metrics: m}))
			}
		}
	}
}

func (s *Server) ollamaEmbed(c *gin.Context) {
	var req api.EmbedRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	raw, err := json.Marshal(req.Input)
	if err != nil {
		abort(c, err)
		return
	}
	start := time.Now()
	_, emb, ok := s.embed(c, &embeddingRequest{Input: raw, Model: req.Model}, keepAlive(req.KeepAlive))
	if !ok {
		return
	}
	c.JSON(http.StatusOK, api.EmbedResponse{Model: req.Model, Embeddings: emb.Vectors, TotalDuration: time.Since(start), PromptEvalCount: emb.Tokens})
}
