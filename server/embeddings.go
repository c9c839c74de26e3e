package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/toklip/toklip/llm"
)

// embeddingRequest is OpenAI's embeddings request. Inputs are text, embedded by TokLIP's text
// tower, or images given as data URLs ("data:image/png;base64,..." strings), embedded by TokLIP's
// attention-pooled image head: both land in TokLIP's shared space, so an image's embedding is
// near its caption's. Token-id inputs are not read: the text tower has its own tokenizer.
type embeddingRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// maxEmbeddingInputs is OpenAI's limit on inputs per request.
const maxEmbeddingInputs = 2048

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32s
}

func (s *Server) embeddings(c *gin.Context) {
	var req embeddingRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	name, emb, ok := s.embed(c, &req, nil)
	if !ok {
		return
	}
	data := make([]embedding, len(emb.Vectors))
	for i, v := range emb.Vectors {
		data[i] = embedding{Object: "embedding", Index: i, Embedding: encodeVector(v, req.EncodingFormat)}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data, "model": name,
		"usage": gin.H{"prompt_tokens": emb.Tokens, "total_tokens": emb.Tokens}})
}

// embed embeds a request's inputs with the model it names (OpenAI's route and ollama's), or
// answers the request with why not. It returns the model's name.
func (s *Server) embed(c *gin.Context, req *embeddingRequest, keepAlive *time.Duration) (string, *llm.Embeddings, bool) {
	l, ok := s.use(c, req.Model, keepAlive)
	if !ok {
		return "", nil, false
	}
	defer l.Release()
	m := l.Value()
	inputs, err := s.checkEmbeddings(m, req)
	if err != nil {
		abort(c, err)
		return "", nil, false
	}
	release, ok := s.enter(c, l, 1)
	if !ok {
		return "", nil, false
	}
	defer release()
	emb, err := m.e.Embed(inputs)
	if err != nil {
		abort(c, err)
		return "", nil, false
	}
	s.metrics.encoded(emb.ImageEncodes)
	s.metrics.tokens.WithLabelValues("prompt").Add(float64(emb.Tokens))
	setUsage(c, llm.Usage{PromptTokens: emb.Tokens})
	return m.name, emb, true
}

// checkEmbeddings reads the inputs: text, or images as data URLs.
func (s *Server) checkEmbeddings(m *served, r *embeddingRequest) ([]llm.EmbedInput, error) {
	if !m.info.Embeds {
		return nil, invalid("model", "the model %q has no TokLIP text tower to embed with", m.name)
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(r.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(r.Input, &inputs); err != nil {
		if len(r.Input) == 0 || string(r.Input) == "null" {
			return nil, invalid("input", "input is required")
		}
		return nil, invalid("input", "input must be a string or an array of strings (token ids are not read: the text tower has its own tokenizer)")
	}
	if len(inputs) == 0 || len(inputs) > maxEmbeddingInputs {
		return nil, invalid("input", "input holds %d items, want 1 to %d", len(inputs), maxEmbeddingInputs)
	}
	out := make([]llm.EmbedInput, len(inputs))
	for i, in := range inputs {
		switch {
		case in == "":
			return nil, invalid("input", "input[%d] is empty", i)
		case strings.HasPrefix(in, "data:"):
			img, err := dataURL(in)
			if err != nil {
				return nil, withCode(invalid(fmt.Sprintf("input[%d]", i), "input[%d]: %v", i, err), "invalid_image_url")
			}
			out[i].Image = img
		default:
			out[i].Text = in
		}
	}
	switch r.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, invalid("encoding_format", "encoding_format %q is not float or base64", r.EncodingFormat)
	}
	if d := r.Dimensions; d != nil {
		return nil, invalid("dimensions", "dimensions cannot be chosen: TokLIP's embeddings have the size they were trained with")
	}
	return out, nil
}

func encodeVector(v []float32, format string) any {
	if format != "base64" {
		return v
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}
