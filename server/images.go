package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
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
	GuidanceScale  *float64 `json:"guidance_scale"`
	NegativePrompt string   `json:"negative_prompt"`
	Temperature    *float64 `json:"temperature"`
	TopK           *int     `json:"top_k"`
}

// maxPromptChars is OpenAI's limit for GPT image prompts.
const maxPromptChars = 32000

var sizeRE = regexp.MustCompile(`^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$`)

type imageJob struct {
	prompt string
	opts   llm.ImageOptions
	n      int
	format string // png or jpeg
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
		return nil, withCode(invalid("response_format", "response_format url is not offered yet: use b64_json"), "unsupported_response_format")
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
	if r.Stream {
		return nil, withCode(invalid("stream", "streamed image generation is not offered yet"), "unsupported_parameter")
	}
	j.opts.Guidance = 3
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
	B64JSON string `json:"b64_json"`
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
	job, err := s.checkImages(&req)
	if err != nil {
		abort(c, err)
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
		var buf bytes.Buffer
		if job.format == "jpeg" {
			err = jpeg.Encode(&buf, g.Image, &jpeg.Options{Quality: 95})
		} else {
			err = png.Encode(&buf, g.Image)
		}
		if err != nil {
			abort(c, fmt.Errorf("encode the image: %w", err))
			return
		}
		resp.Data = append(resp.Data, imageData{B64JSON: base64.StdEncoding.EncodeToString(buf.Bytes())})
		resp.Usage.OutputTokens += len(g.IDs)
		s.metrics.imageDecode.Observe(g.Decode.Seconds())
		b := g.Image.Bounds()
		resp.Size = strconv.Itoa(b.Dx()) + "x" + strconv.Itoa(b.Dy())
	}
	resp.Usage.InputTokens = prompts[0]
	resp.Usage.InputTokensDetails.TextTokens = prompts[0]
	resp.Usage.OutputTokensDetails.ImageTokens = resp.Usage.OutputTokens
	resp.Usage.TotalTokens = resp.Usage.InputTokens + resp.Usage.OutputTokens
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(resp.Usage.InputTokens))
	s.metrics.tokens.WithLabelValues("image_output").Add(float64(resp.Usage.OutputTokens))
	c.JSON(http.StatusOK, resp)
}
