package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
)

// sse writes server-sent events; safe for the concurrent choices of one request.
type sse struct {
	mu sync.Mutex
	c  *gin.Context
}

func newSSE(c *gin.Context) *sse {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	c.Status(http.StatusOK)
	return &sse{c: c}
}

// send writes one "data:" event (and the event name, if any) and flushes it.
func (s *sse) send(event string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(gin.H{"error": toAPIError(err)})
	}
	s.raw(event, b)
}

func (s *sse) raw(event string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.c.Writer
	if event != "" {
		w.WriteString("event: " + event + "\n")
	}
	w.WriteString("data: ")
	w.Write(data)
	w.WriteString("\n\n")
	w.Flush()
}

// ndjson writes newline-delimited JSON objects, each flushed, as ollama's API streams.
type ndjson struct {
	c *gin.Context
}

func newNDJSON(c *gin.Context) *ndjson {
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	return &ndjson{c: c}
}

func (w *ndjson) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(gin.H{"error": err.Error()})
	}
	w.c.Writer.Write(append(b, '\n'))
	w.c.Writer.Flush()
}

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage"`
	Seed    uint64        `json:"seed"` // toklip's, as on chatResponse
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        delta     `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content any    `json:"content,omitempty"` // text, or image parts
	// toklip's: a render of the image being drawn, the ids to come filled in (partial_images).
	PartialImage *partialImage `json:"partial_image,omitempty"`
}

type partialImage struct {
	URL   string `json:"url"` // a PNG data URL
	Index int    `json:"partial_image_index"`
}

// streamChat sends a run's events as chat.completion.chunk events: a role chunk per choice, text
// deltas as they are decoded, renders of an image as it is drawn where partial_images asks
// (toklip's delta.partial_image), each drawn image as a delta holding one image_url part, a last
// chunk per choice with its finish reason when it ends, the usage chunk if asked, then [DONE]. A
// failure after the first byte is sent as an error event, as OpenAI's clients expect.
func (s *Server) streamChat(c *gin.Context, id string, job *chatJob, run *llm.Run, start time.Time) {
	out := newSSE(c)
	created := time.Now().Unix()
	send := func(ch []chunkChoice, u *usage) {
		out.send("", chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: job.model, Choices: ch, Usage: u, Seed: job.Options.Sampler.Seed})
	}
	for i := range job.N {
		send([]chunkChoice{{Index: i, Delta: delta{Role: "assistant", Content: ""}}}, nil)
	}
	observe := s.metrics.run(start)
	for ev := range run.Events() {
		observe.event(ev)
		switch ev := ev.(type) {
		case llm.TextDelta:
			send([]chunkChoice{{Index: ev.Choice, Delta: delta{Content: ev.Text}}}, nil)
		case llm.ImageStep:
			if ev.Partial == nil {
				continue
			}
			if b64, err := encodeImage(ev.Partial, "png"); err == nil { // a courtesy: the image itself still comes
				send([]chunkChoice{{Index: ev.Choice, Delta: delta{PartialImage: &partialImage{URL: "data:image/png;base64," + b64, Index: ev.PartialIndex}}}}, nil)
			}
		case llm.ImageDone:
			part, err := toPart(llm.AnswerPart{Image: ev.Image})
			if err != nil {
				out.send("", gin.H{"error": toAPIError(err)})
				return // the run stops
			}
			send([]chunkChoice{{Index: ev.Choice, Delta: delta{Content: []outPart{part}}}}, nil)
		case llm.ChoiceDone:
			send([]chunkChoice{{Index: ev.Choice, Delta: delta{}, FinishReason: &ev.Answer.FinishReason}}, nil)
		case llm.Failed:
			if c.Request.Context().Err() == nil { // the client is still there to read it
				out.send("", gin.H{"error": toAPIError(ev.Err)})
			}
			return
		case llm.Usage:
			s.metrics.chatTokens(c, ev)
			if job.usage {
				send([]chunkChoice{}, ptr(chatUsage(ev)))
			}
		}
	}
	out.raw("", []byte("[DONE]"))
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
