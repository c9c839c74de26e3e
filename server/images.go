package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/options"
)

// imageRequest is OpenAI's image generation request, with toklip's guidance_scale and
// negative_prompt.
type imageRequest struct {
	Prompt         string   `json:"prompt"`
	Model          string   `json:"model"`
	N              *int     `json:"n"`
	Size           string   `json:"size"`
	ResponseFormat string   `json:"response_format"`
	OutputFormat   string   `json:"output_format"`
	Seed           *int64   `json:"seed"`
	Stream         bool     `json:"stream"`
	PartialImages  *int     `json:"partial_images"`
	GuidanceScale  *float64 `json:"guidance_scale"`
	NegativePrompt string   `json:"negative_prompt"`
	Temperature    *float64 `json:"temperature"`
	TopK           *int     `json:"top_k"`
}

// maxPromptChars is OpenAI's limit for GPT image prompts.
const maxPromptChars = 32000

var sizeRE = regexp.MustCompile(`^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$`)

type imageJob struct {
	llm.DrawRequest        // Options.Partials: partial images streamed before the completed one
	format          string // png or jpeg
	url             bool   // answer with URLs served from the image store, not base64
	stream          bool
}

// checkImages checks an image request and turns it into the engine's, its sampler's fields over
// o (the API's defaults and the model's Modelfile).
func (s *Server) checkImages(m *served, r *imageRequest, o options.Options) (*imageJob, error) {
	if !m.info.Draws {
		return nil, invalid("model", "the model %q does not draw images", r.Model)
	}
	if r.Prompt == "" {
		return nil, invalid("prompt", "prompt is required")
	}
	if n := utf8.RuneCountInString(r.Prompt); n > maxPromptChars {
		return nil, invalid("prompt", "the prompt has %d characters, at most %d", n, maxPromptChars)
	}
	j := &imageJob{DrawRequest: llm.DrawRequest{Prompt: r.Prompt, N: 1}, format: "png"}
	if r.N != nil {
		if *r.N < 1 || *r.N > s.opts.MaxN {
			return nil, invalid("n", "n %d is not in [1, %d]", *r.N, s.opts.MaxN)
		}
		j.N = *r.N
	}
	if r.Size != "" && r.Size != "auto" && !sizeRE.MatchString(r.Size) {
		return nil, invalid("size", "size %q is not auto or WIDTHxHEIGHT", r.Size)
	}
	switch r.ResponseFormat {
	case "", "b64_json":
	case "url":
		j.url = true
	default:
		return nil, invalid("response_format", "response_format %q is not b64_json or url", r.ResponseFormat)
	}
	switch r.OutputFormat {
	case "", "png":
	case "jpeg":
		j.format = "jpeg"
	case "webp":
		return nil, invalid("output_format", "output_format webp has no encoder here: use png or jpeg")
	default:
		return nil, invalid("output_format", "output_format %q is not png, jpeg or webp", r.OutputFormat)
	}
	if r.PartialImages != nil {
		if *r.PartialImages < 0 || *r.PartialImages > 3 {
			return nil, invalid("partial_images", "partial_images %d is not in [0, 3]", *r.PartialImages)
		}
		j.Options.Partials = *r.PartialImages
	}
	if j.stream = r.Stream; j.stream && j.url {
		return nil, invalid("response_format", "a streamed generation sends its images as b64_json")
	}
	if j.stream && j.N != 1 {
		return nil, invalid("n", "a streamed generation draws one image (n 1); its events carry no image index")
	}
	if r.GuidanceScale != nil {
		if *r.GuidanceScale < 1 || *r.GuidanceScale > 20 {
			return nil, invalid("guidance_scale", "guidance_scale %g is not in [1, 20]", *r.GuidanceScale)
		}
		o.Guidance = float32(*r.GuidanceScale)
	}
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 {
			return nil, invalid("temperature", "temperature %g is not in [0, 2]", *r.Temperature)
		}
		o.ImageTemperature = float32(*r.Temperature)
	}
	if r.TopK != nil {
		if *r.TopK < 0 {
			return nil, invalid("top_k", "top_k %d must be >= 0", *r.TopK)
		}
		o.ImageTopK = *r.TopK
	}
	if r.Seed != nil {
		o.Seed = *r.Seed
	}
	if err := o.Check(); err != nil {
		return nil, optionError(err)
	}
	partials := j.Options.Partials
	j.Options = o.Image()
	j.Options.Negative, j.Options.Partials = r.NegativePrompt, partials
	return j, nil
}

type imageResponse struct {
	Created      int64       `json:"created"`
	Data         []imageData `json:"data"`
	Size         string      `json:"size"`
	OutputFormat string      `json:"output_format"`
	Usage        imageUsage  `json:"usage"`
	Seed         uint64      `json:"seed"` // toklip's: the seed image 0 was drawn with (image i: seed + i), as on chatResponse
}

type imageData struct {
	B64JSON string `json:"b64_json,omitempty"`
	URL     string `json:"url,omitempty"`
}

type imageUsage struct {
	InputTokens        int `json:"input_tokens"`
	OutputTokens       int `json:"output_tokens"`
	TotalTokens        int `json:"total_tokens"`
	InputTokensDetails struct {
		TextTokens  int `json:"text_tokens"`
		ImageTokens int `json:"image_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails struct {
		ImageTokens int `json:"image_tokens"`
		TextTokens  int `json:"text_tokens"`
	} `json:"output_tokens_details"`
}

// generateImages draws n images for one prompt. They run at once, so the engine batches their
// guided steps; image i samples with seed + i. The model draws at its own size (the size asked
// for is reported back as the one drawn).
func (s *Server) generateImages(c *gin.Context) {
	var req imageRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	l, ok := s.use(c, req.Model, nil)
	if !ok {
		return
	}
	defer l.Release()
	m := l.Value()
	job, err := s.checkImages(m, &req, options.For(options.OpenAI(), m.defaults))
	if err != nil {
		abort(c, err)
		return
	}
	release, ok := s.enter(c, l, 2*job.N) // each image a guided pair of sequences
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
	if job.stream {
		s.streamImage(c, job, run, start)
		return
	}
	resp := imageResponse{Created: time.Now().Unix(), OutputFormat: job.format, Data: make([]imageData, job.N), Seed: job.Options.Sampler.Seed}
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.ImageDone:
			raw, err := encodeBytes(ev.Image.Image, job.format)
			if err != nil {
				abort(c, err)
				return
			}
			if job.url {
				id := s.images.put(raw, "image/"+job.format)
				resp.Data[ev.Choice] = imageData{URL: baseURL(c) + "/images/" + id}
			} else {
				resp.Data[ev.Choice] = imageData{B64JSON: base64.StdEncoding.EncodeToString(raw)}
			}
			resp.Size = sizeOf(ev.Image.Image)
		case llm.Failed:
			abort(c, ev.Err)
			return
		case llm.Usage:
			resp.Usage = s.imageUsage(c, ev)
		}
	}
	c.JSON(http.StatusOK, resp)
}

// imageUsage is OpenAI's input/output token usage of an image generation, also added to the
// metrics.
func (s *Server) imageUsage(c *gin.Context, u llm.Usage) imageUsage {
	var out imageUsage
	out.InputTokens = u.PromptTokens
	out.InputTokensDetails.TextTokens = u.PromptTokens
	out.OutputTokens = u.ImageTokens
	out.OutputTokensDetails.ImageTokens = u.ImageTokens
	out.TotalTokens = out.InputTokens + out.OutputTokens
	s.metrics.imageTokens(c, u)
	return out
}

// imageEvent is the data of an image_generation.partial_image or .completed event.
type imageEvent struct {
	Type              string       `json:"type"`
	B64JSON           string       `json:"b64_json"`
	CreatedAt         int64        `json:"created_at"`
	Size              string       `json:"size"`
	Quality           string       `json:"quality"`
	Background        string       `json:"background"`
	OutputFormat      string       `json:"output_format"`
	PartialImageIndex *int         `json:"partial_image_index,omitempty"`
	Usage             *imageUsage  `json:"usage,omitempty"`
	Seed              uint64       `json:"seed"`              // toklip's, as on imageResponse
	Timings           *drawTimings `json:"timings,omitempty"` // toklip's, on the completed event
}

// drawTimings is where a drawing's time went, in milliseconds: reading the prompt (its prefill,
// both guided sequences), sampling the image ids, the VQ decoder's render, and all of it.
type drawTimings struct {
	PromptMS float64 `json:"prompt_ms"`
	TokensMS float64 `json:"tokens_ms"`
	DecodeMS float64 `json:"decode_ms"`
	TotalMS  float64 `json:"total_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// streamImage sends a run of one image as events: the partial renders it asked for (the ids
// drawn so far, the rest filled with id 0), evenly spaced, then the completed image with the
// usage.
func (s *Server) streamImage(c *gin.Context, job *imageJob, run *llm.Run, start time.Time) {
	out := newSSE(c)
	created := time.Now().Unix()
	event := func(typ string, img image.Image) (imageEvent, error) {
		b64, err := encodeImage(img, job.format)
		return imageEvent{Type: typ, B64JSON: b64, CreatedAt: created, Size: sizeOf(img), Quality: "auto",
			Background: "opaque", OutputFormat: job.format, Seed: job.Options.Sampler.Seed}, err
	}
	fail := func(err error) {
		if c.Request.Context().Err() == nil {
			out.send("error", gin.H{"type": "error", "error": toAPIError(err)})
		}
	}
	var done *llm.GeneratedImage
	var started, doneAt time.Time
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.ImageStarted:
			started = time.Now()
		case llm.ImageStep:
			if ev.Partial == nil {
				continue
			}
			if p, err := event("image_generation.partial_image", ev.Partial); err == nil { // a courtesy: the completed image still comes
				p.PartialImageIndex = ptr(ev.PartialIndex)
				out.send("image_generation.partial_image", p)
			}
		case llm.ImageDone:
			done, doneAt = ev.Image, time.Now()
		case llm.Failed:
			fail(ev.Err)
			return
		case llm.Usage:
			ev2, err := event("image_generation.completed", done.Image)
			if err != nil {
				fail(err)
				return
			}
			ev2.Usage = ptr(s.imageUsage(c, ev))
			ev2.Timings = &drawTimings{PromptMS: ms(started.Sub(start)), TokensMS: ms(doneAt.Sub(started) - done.Decode),
				DecodeMS: ms(done.Decode), TotalMS: ms(time.Since(start))}
			out.send("image_generation.completed", ev2)
		}
	}
}

func encodeImage(img image.Image, format string) (string, error) {
	b, err := encodeBytes(img, format)
	return base64.StdEncoding.EncodeToString(b), err
}

func encodeBytes(img image.Image, format string) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if format == "jpeg" {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		return nil, fmt.Errorf("encode the image: %w", err)
	}
	return buf.Bytes(), nil
}

func sizeOf(img image.Image) string {
	b := img.Bounds()
	return strconv.Itoa(b.Dx()) + "x" + strconv.Itoa(b.Dy())
}

// baseURL is how the client reached this server, for the URLs of drawn images.
func baseURL(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}
