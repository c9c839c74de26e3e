package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
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
	prompt   string
	opts     llm.ImageOptions
	n        int
	format   string // png or jpeg
	url      bool   // answer with URLs served from the image store, not base64
	stream   bool
	partials int // partial images streamed before the completed one
}

func (s *Server) checkImages(r *imageRequest) (*imageJob, error) {
	if err := s.checkModel(r.Model); err != nil {
		return nil, err
	}
	if s.e.Vision() == nil || !s.e.Backbone().Config().Images.Enabled() {
		return nil, invalid("model", "the model %q does not draw images", r.Model)
	}
	if r.Prompt == "" {
		return nil, invalid("prompt", "prompt is required")
	}
	if n := utf8.RuneCountInString(r.Prompt); n > maxPromptChars {
		return nil, invalid("prompt", "the prompt has %d characters, at most %d", n, maxPromptChars)
	}
	j := &imageJob{prompt: r.Prompt, n: 1, format: "png"}
	if r.N != nil {
		if *r.N < 1 || *r.N > s.opts.MaxN {
			return nil, invalid("n", "n %d is not in [1, %d]", *r.N, s.opts.MaxN)
		}
		j.n = *r.N
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
		j.partials = *r.PartialImages
	}
	if j.stream = r.Stream; j.stream && j.url {
		return nil, invalid("response_format", "a streamed generation sends its images as b64_json")
	}
	if j.stream && j.n != 1 {
		return nil, invalid("n", "a streamed generation draws one image (n 1); its events carry no image index")
	}
	j.opts.Guidance = llm.DefaultGuidance
	if r.GuidanceScale != nil {
		if *r.GuidanceScale < 1 || *r.GuidanceScale > 20 {
			return nil, invalid("guidance_scale", "guidance_scale %g is not in [1, 20]", *r.GuidanceScale)
		}
		j.opts.Guidance = float32(*r.GuidanceScale)
	}
	j.opts.Negative = r.NegativePrompt
	j.opts.Sampler.Temperature = 1
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 {
			return nil, invalid("temperature", "temperature %g is not in [0, 2]", *r.Temperature)
		}
		j.opts.Sampler.Temperature = float32(*r.Temperature)
	}
	if r.TopK != nil {
		if *r.TopK < 0 {
			return nil, invalid("top_k", "top_k %d must be >= 0", *r.TopK)
		}
		j.opts.Sampler.TopK = *r.TopK
	}
	if r.Seed != nil {
		j.opts.Sampler.Seed = uint64(*r.Seed)
	}
	return j, nil
}

type imageResponse struct {
	Created      int64       `json:"created"`
	Data         []imageData `json:"data"`
	Size         string      `json:"size"`
	OutputFormat string      `json:"output_format"`
	Usage        imageUsage  `json:"usage"`
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
	s.imageDefaults(&req)
	job, err := s.checkImages(&req)
	if err != nil {
		abort(c, err)
		return
	}
	if job.stream {
		s.streamImage(c, job)
		return
	}
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	imgs := make([]*llm.GeneratedImage, job.n)
	prompts := make([]int, job.n)
	errs := make([]error, job.n)
	var wg sync.WaitGroup
	for i := range job.n {
		opts := job.opts
		opts.Sampler.Seed += uint64(i)
		wg.Go(func() {
			if imgs[i], prompts[i], errs[i] = s.e.GenerateImage(ctx, job.prompt, opts); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		abort(c, err)
		return
	}
	resp := imageResponse{Created: time.Now().Unix(), OutputFormat: job.format}
	for _, g := range imgs {
		raw, err := encodeBytes(g.Image, job.format)
		if err != nil {
			abort(c, err)
			return
		}
		if job.url {
			id := s.images.put(raw, "image/"+job.format)
			resp.Data = append(resp.Data, imageData{URL: baseURL(c) + "/images/" + id})
		} else {
			resp.Data = append(resp.Data, imageData{B64JSON: base64.StdEncoding.EncodeToString(raw)})
		}
		resp.Size = sizeOf(g.Image)
		s.metrics.imageDecode.Observe(g.Decode.Seconds())
	}
	resp.Usage = s.imageUsage(prompts[0], imgs)
	c.JSON(http.StatusOK, resp)
}

// imageUsage is OpenAI's input/output token usage of drawing imgs from a prompt of promptTokens,
// also added to the metrics.
func (s *Server) imageUsage(promptTokens int, imgs []*llm.GeneratedImage) imageUsage {
	var u imageUsage
	u.InputTokens = promptTokens
	u.InputTokensDetails.TextTokens = promptTokens
	for _, g := range imgs {
		u.OutputTokens += len(g.IDs)
	}
	u.OutputTokensDetails.ImageTokens = u.OutputTokens
	u.TotalTokens = u.InputTokens + u.OutputTokens
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(u.InputTokens))
	s.metrics.tokens.WithLabelValues("image_output").Add(float64(u.OutputTokens))
	return u
}

// imageEvent is the data of an image_generation.partial_image or .completed event.
type imageEvent struct {
	Type              string      `json:"type"`
	B64JSON           string      `json:"b64_json"`
	CreatedAt         int64       `json:"created_at"`
	Size              string      `json:"size"`
	Quality           string      `json:"quality"`
	Background        string      `json:"background"`
	OutputFormat      string      `json:"output_format"`
	PartialImageIndex *int        `json:"partial_image_index,omitempty"`
	Usage             *imageUsage `json:"usage,omitempty"`
}

// streamImage draws one image and sends partial_images renders of it on the way (the ids drawn
// so far, the rest filled with id 0), evenly spaced, then the completed image.
func (s *Server) streamImage(c *gin.Context, job *imageJob) {
	out := newSSE(c)
	created := time.Now().Unix()
	event := func(typ string, img image.Image) (imageEvent, error) {
		b64, err := encodeImage(img, job.format)
		return imageEvent{Type: typ, B64JSON: b64, CreatedAt: created, Size: sizeOf(img), Quality: "auto",
			Background: "opaque", OutputFormat: job.format}, err
	}
	sent := 0
	opts := job.opts
	opts.OnStep = func(step, total int, ids []int32) {
		if sent >= job.partials || step < (sent+1)*total/(job.partials+1) {
			return
		}
		img, err := s.e.RenderPartial(ids)
		if err != nil {
			return // a partial render is a courtesy; the completed image still comes
		}
		ev, err := event("image_generation.partial_image", img)
		if err != nil {
			return
		}
		ev.PartialImageIndex = ptr(sent)
		out.send("image_generation.partial_image", ev)
		sent++
	}
	g, promptTokens, err := s.e.GenerateImage(c.Request.Context(), job.prompt, opts)
	if err == nil {
		var ev imageEvent
		if ev, err = event("image_generation.completed", g.Image); err == nil {
			s.metrics.imageDecode.Observe(g.Decode.Seconds())
			ev.Usage = ptr(s.imageUsage(promptTokens, []*llm.GeneratedImage{g}))
			out.send("image_generation.completed", ev)
			return
		}
	}
	if c.Request.Context().Err() == nil {
		out.send("error", gin.H{"type": "error", "error": toAPIError(err)})
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
