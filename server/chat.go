package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
)

// chatRequest is the part of OpenAI's chat request toklip reads. Unknown fields are ignored, as
// OpenAI's own clients send fields a server may not know.
type chatRequest struct {
	Model               string             `json:"model"`
	Messages            []chatMessage      `json:"messages"`
	MaxTokens           *int               `json:"max_tokens"`
	MaxCompletionTokens *int               `json:"max_completion_tokens"`
	N                   *int               `json:"n"`
	Stop                json.RawMessage    `json:"stop"`
	Temperature         *float64           `json:"temperature"`
	TopP                *float64           `json:"top_p"`
	FrequencyPenalty    *float64           `json:"frequency_penalty"`
	PresencePenalty     *float64           `json:"presence_penalty"`
	LogitBias           map[string]float64 `json:"logit_bias"`
	Seed                *int64             `json:"seed"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Modalities []string `json:"modalities"`
	// toklip's extensions for the images an answer draws.
	GuidanceScale *float64 `json:"guidance_scale"`
}

// chatJob is a checked request: the engine's inputs and how to answer.
type chatJob struct {
	msgs  []llm.Message
	opts  llm.ChatOptions
	n     int
	usage bool // stream the usage chunk
}

func (s *Server) checkChat(ctx context.Context, r *chatRequest) (*chatJob, error) {
	if err := s.checkModel(r.Model); err != nil {
		return nil, err
	}
	j := &chatJob{n: 1}
	var err error
	if r.N != nil {
		if *r.N < 1 || *r.N > s.opts.MaxN {
			return nil, invalid("n", "n %d is not in [1, %d]", *r.N, s.opts.MaxN)
		}
		j.n = *r.N
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", r.MaxTokens}, {"max_completion_tokens", r.MaxCompletionTokens}} {
		if mt.v != nil {
			if *mt.v < 1 {
				return nil, invalid(mt.name, "%s %d must be at least 1", mt.name, *mt.v)
			}
			j.opts.MaxTokens = *mt.v
		}
	}
	if j.opts.Stop, err = stops(r.Stop); err != nil {
		return nil, err
	}
	cfg := s.e.Backbone().Config()
	if j.opts.Sampler, err = samplerParams(r.Temperature, r.TopP, r.FrequencyPenalty, r.PresencePenalty, r.LogitBias, r.Seed, cfg.Vocab); err != nil {
		return nil, err
	}
	if d := s.opts.Defaults; d != nil { // what OpenAI's request cannot say
		if v, ok := d.Float("top_k"); ok {
			j.opts.Sampler.TopK = int(v)
		}
		if v, ok := d.Float("min_p"); ok {
			j.opts.Sampler.MinP = float32(v)
		}
		if v, ok := d.Float("repeat_penalty"); ok {
			j.opts.Sampler.RepeatPenalty = float32(v)
		}
		if v, ok := d.Float("repeat_last_n"); ok {
			j.opts.Sampler.RepeatLastN = int(v)
		}
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "", "text":
		case "json_object":
			j.opts.JSON = true
		default:
			return nil, withCode(invalid("response_format", "response_format %q is not supported (text, json_object)", f.Type), "unsupported_response_format")
		}
	}
	for _, m := range r.Modalities {
		switch m {
		case "text":
		case "image":
			if s.e.Vision() == nil || !cfg.Images.Enabled() {
				return nil, invalid("modalities", "this model does not draw images")
			}
			j.opts.Images = true
		default:
			return nil, invalid("modalities", "modality %q is not supported (text, image)", m)
		}
	}
	j.opts.Image.Guidance = llm.DefaultGuidance
	if r.GuidanceScale != nil {
		if *r.GuidanceScale < 1 || *r.GuidanceScale > 20 {
			return nil, invalid("guidance_scale", "guidance_scale %g is not in [1, 20]", *r.GuidanceScale)
		}
		j.opts.Image.Guidance = float32(*r.GuidanceScale)
	}
	j.opts.Image.Sampler.Seed = j.opts.Sampler.Seed
	j.usage = r.StreamOptions != nil && r.StreamOptions.IncludeUsage
	if err := s.e.Answerable(j.opts); err != nil { // a request that can never be answered
		return nil, err
	}
	// Last: the images are encoded here, the costly part, only for a request that is otherwise fine.
	if j.msgs, err = s.messages(ctx, r.Messages); err != nil {
		return nil, err
	}
	return j, nil
}

func (s *Server) chat(c *gin.Context) {
	var req chatRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	s.chatDefaults(&req)
	job, err := s.checkChat(c.Request.Context(), &req)
	if err != nil {
		abort(c, err)
		return
	}
	id := "chatcmpl-" + randomID()
	if req.Stream {
		s.streamChat(c, id, job)
		return
	}
	answers, err := s.runChoices(c.Request.Context(), job, nil)
	if err != nil {
		abort(c, err)
		return
	}
	resp := chatResponse{ID: id, Object: "chat.completion", Created: time.Now().Unix(), Model: s.opts.Model}
	for i, a := range answers {
		msg := assistantMessage{Role: "assistant"}
		if msg.Content, err = answerContent(a); err != nil {
			abort(c, err)
			return
		}
		resp.Choices = append(resp.Choices, chatChoice{Index: i, Message: msg, FinishReason: a.FinishReason})
		resp.Usage.add(a, i == 0)
	}
	c.JSON(http.StatusOK, resp)
}

// runChoices answers the n choices at once: the engine batches their forward passes. Each choice
// samples with its own seed (seed + index), so the choices differ. With hooks, hooks(i) gives
// choice i's streaming callbacks.
func (s *Server) runChoices(ctx context.Context, job *chatJob, hooks func(i int) (func(string), func(*llm.GeneratedImage))) ([]*llm.Answer, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var first sync.Once
	firstOut := func() { first.Do(func() { s.metrics.firstToken.Observe(time.Since(start).Seconds()) }) }
	answers := make([]*llm.Answer, job.n)
	errs := make([]error, job.n)
	var wg sync.WaitGroup
	for i := range job.n {
		opts := job.opts
		opts.Sampler.Seed += uint64(i)
		opts.Image.Sampler.Seed += uint64(i)
		var onText func(string)
		var onImage func(*llm.GeneratedImage)
		if hooks != nil {
			onText, onImage = hooks(i)
		}
		opts.OnText = func(t string) {
			firstOut()
			if onText != nil {
				onText(t)
			}
		}
		opts.OnImage = func(g *llm.GeneratedImage) {
			firstOut()
			s.metrics.imageDecode.Observe(g.Decode.Seconds())
			if onImage != nil {
				onImage(g)
			}
		}
		wg.Go(func() {
			answers[i], errs[i] = s.e.Chat(ctx, job.msgs, opts)
			if errs[i] != nil {
				cancel() // one choice failed: the others stop at their next step
			}
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	s.countChat(answers)
	return answers, nil
}

// countChat adds the answers' tokens to the metrics: the shared prompt once.
func (s *Server) countChat(answers []*llm.Answer) {
	t := s.metrics.tokens
	t.WithLabelValues("prompt").Add(float64(answers[0].PromptTokens))
	t.WithLabelValues("image_input").Add(float64(answers[0].PromptImages))
	for _, a := range answers {
		t.WithLabelValues("completion").Add(float64(a.CompletionTokens))
		for _, p := range a.Parts {
			if p.Image != nil {
				t.WithLabelValues("image_output").Add(float64(len(p.Image.IDs)))
			}
		}
	}
}

// firstError is the error that stopped parallel work: the first that is not a cancellation (which
// the others got when it canceled them), else a cancellation (the client left), else nil.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *struct{}        `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type assistantMessage struct {
	Role    string  `json:"role"`
	Content any     `json:"content"` // a string, or parts when the answer holds images
	Refusal *string `json:"refusal"`
}

type outPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
		ImageTokens  int `json:"image_tokens"`
	} `json:"prompt_tokens_details"`
}

// add counts an answer: the prompt once (the choices share it), every choice's completion.
func (u *usage) add(a *llm.Answer, first bool) {
	if first {
		u.PromptTokens = a.PromptTokens
		u.PromptTokensDetails.ImageTokens = a.PromptImages
	}
	u.CompletionTokens += a.CompletionTokens
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
}

// answerContent is the answer as OpenAI content: its text, or, when it drew, text and image parts.
func answerContent(a *llm.Answer) (any, error) {
	if !slices.ContainsFunc(a.Parts, func(p llm.AnswerPart) bool { return p.Image != nil }) {
		return a.Text(), nil
	}
	var parts []outPart
	for _, p := range a.Parts {
		part, err := toPart(p)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
	}
	return parts, nil
}

func toPart(p llm.AnswerPart) (outPart, error) {
	if p.Image == nil {
		return outPart{Type: "text", Text: p.Text}, nil
	}
	u, err := pngDataURL(p.Image)
	if err != nil {
		return outPart{}, err
	}
	return outPart{Type: "image_url", ImageURL: &imageURL{URL: u}}, nil
}

func pngDataURL(g *llm.GeneratedImage) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, g.Image); err != nil {
		return "", fmt.Errorf("encode the drawn image: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
