package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/options"
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
	// toklip's extensions for the images an answer draws: the guidance scale, and renders of
	// each image as it is drawn, sent in a stream as delta.partial_image (0 to 3, as on OpenAI's
	// image generation).
	GuidanceScale *float64 `json:"guidance_scale"`
	PartialImages *int     `json:"partial_images"`
}

// chatJob is a checked request: the engine's request and how to answer.
type chatJob struct {
	llm.ChatRequest
	usage bool   // stream the usage chunk
	model string // its name, as the answer reports it
}

// sequences is what the request takes of the engine: a sequence per choice, two for a choice
// that may draw (its guided pair).
func (j *chatJob) sequences(in llm.Info) int {
	if j.Options.Images && in.Draws && !j.Options.JSON {
		return 2 * j.N
	}
	return j.N
}

// checkChat checks what the server reads of a request and turns it into the engine's request:
// the request's fields over o (OpenAI's defaults and the model's Modelfile).
func (s *Server) checkChat(m *served, r *chatRequest, o options.Options) (*chatJob, error) {
	j := &chatJob{ChatRequest: llm.ChatRequest{N: 1}, model: m.name}
	if r.N != nil {
		if *r.N < 1 || *r.N > s.opts.MaxN {
			return nil, invalid("n", "n %d is not in [1, %d]", *r.N, s.opts.MaxN)
		}
		j.N = *r.N
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", r.MaxTokens}, {"max_completion_tokens", r.MaxCompletionTokens}} {
		if mt.v != nil {
			if *mt.v < 1 {
				return nil, invalid(mt.name, "%s %d must be at least 1", mt.name, *mt.v)
			}
			o.NumPredict = *mt.v
		}
	}
	stop, err := stops(r.Stop)
	if err != nil {
		return nil, err
	}
	if stop != nil {
		o.Stop = stop
	}
	for _, f := range []struct {
		name     string
		v        *float64
		min, max float64
		dst      *float32
	}{
		{"temperature", r.Temperature, 0, 2, &o.Temperature},
		{"top_p", r.TopP, 0, 1, &o.TopP},
		{"frequency_penalty", r.FrequencyPenalty, -2, 2, &o.FrequencyPenalty},
		{"presence_penalty", r.PresencePenalty, -2, 2, &o.PresencePenalty},
		{"guidance_scale", r.GuidanceScale, 1, 20, &o.Guidance},
	} {
		if f.v == nil {
			continue
		}
		if !(*f.v >= f.min && *f.v <= f.max) {
			return nil, invalid(f.name, "%s %g is not in [%g, %g]", f.name, *f.v, f.min, f.max)
		}
		*f.dst = float32(*f.v)
	}
	if r.Seed != nil {
		o.Seed = *r.Seed
	}
	if err := o.Check(); err != nil {
		return nil, optionError(err)
	}
	info := m.info
	for _, m := range r.Modalities {
		switch m {
		case "text":
		case "image":
			if !info.Draws {
				return nil, invalid("modalities", "this model does not draw images")
			}
			j.Options.Images = true
		default:
			return nil, invalid("modalities", "modality %q is not supported (text, image)", m)
		}
	}
	j.Options = o.Chat(j.Options.Images)
	if j.Options.Sampler.LogitBias, err = logitBias(r.LogitBias, info.Vocab); err != nil {
		return nil, err
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "", "text":
		case "json_object":
			j.Options.JSON = true
		default:
			return nil, withCode(invalid("response_format", "response_format %q is not supported (text, json_object)", f.Type), "unsupported_response_format")
		}
	}
	if r.PartialImages != nil {
		if *r.PartialImages < 0 || *r.PartialImages > 3 {
			return nil, invalid("partial_images", "partial_images %d is not in [0, 3]", *r.PartialImages)
		}
		if *r.PartialImages > 0 && !r.Stream {
			return nil, invalid("partial_images", "partial images are sent in a stream: set stream true")
		}
		j.Options.Image.Partials = *r.PartialImages
	}
	j.usage = r.StreamOptions != nil && r.StreamOptions.IncludeUsage
	return j, nil
}

// logitBias reads OpenAI's logit_bias: token ids (as strings) to biases in [-100, 100].
func logitBias(bias map[string]float64, vocab int) (map[int32]float32, error) {
	if len(bias) == 0 {
		return nil, nil
	}
	out := make(map[int32]float32, len(bias))
	for k, v := range bias {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || id >= vocab {
			return nil, invalid("logit_bias", "logit_bias key %q is not a token id of this model (0 to %d)", k, vocab-1)
		}
		if v < -100 || v > 100 || math.IsNaN(v) {
			return nil, invalid("logit_bias", "logit_bias value %g for token %s is not in [-100, 100]", v, k)
		}
		out[int32(id)] = float32(v)
	}
	return out, nil
}

// chat answers a chat completion: the engine checks the request and builds its prompt (a
// request it can never answer is refused here, before any answer begins), then its Run's events
// become OpenAI's response, or its chunks when streaming (stream.go).
func (s *Server) chat(c *gin.Context) {
	var req chatRequest
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
	job, err := s.checkChat(m, &req, options.For(options.OpenAI(), m.defaults))
	if err != nil {
		abort(c, err)
		return
	}
	release, ok := s.enter(c, l, job.sequences(m.info))
	if !ok {
		return
	}
	defer release()
	if job.Messages, err = s.messages(c.Request.Context(), req.Messages); err != nil {
		abort(c, err)
		return
	}
	job.Messages = options.Messages(m.mf, job.Messages)
	start := time.Now()
	run, err := m.e.Chat(c.Request.Context(), job.ChatRequest)
	if err != nil {
		abort(c, err)
		return
	}
	s.metrics.encoded(run.Prompt.ImageEncodes)
	id := "chatcmpl-" + randomID()
	if req.Stream {
		s.streamChat(c, id, job, run, start)
		return
	}
	resp := chatResponse{ID: id, Object: "chat.completion", Created: time.Now().Unix(), Model: m.name, Seed: job.Options.Sampler.Seed,
		Choices: make([]chatChoice, job.N)}
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.ChoiceDone:
			msg := assistantMessage{Role: "assistant"}
			if msg.Content, err = answerContent(ev.Answer); err != nil {
				abort(c, err)
				return // the run stops: its context is the request's
			}
			resp.Choices[ev.Choice] = chatChoice{Index: ev.Choice, Message: msg, FinishReason: ev.Answer.FinishReason}
		case llm.Failed:
			abort(c, ev.Err)
			return
		case llm.Usage:
			resp.Usage = chatUsage(ev)
			s.metrics.chatTokens(c, ev)
		}
	}
	c.JSON(http.StatusOK, resp)
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
	// toklip's extension: the seed the answer was sampled with (choice i with seed + i), chosen
	// at random when neither the request nor the Modelfile gave one; sent back as seed, with
	// the same request, it gives the same answer.
	Seed uint64 `json:"seed"`
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

// chatUsage is OpenAI's usage of a run.
func chatUsage(u llm.Usage) usage {
	var out usage
	out.PromptTokens = u.PromptTokens
	out.PromptTokensDetails.ImageTokens = u.PromptImageTokens
	out.CompletionTokens = u.CompletionTokens
	out.TotalTokens = u.PromptTokens + u.CompletionTokens
	return out
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
