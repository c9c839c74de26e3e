package llm

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// EmbedInput is one thing to embed: text, or an image's file bytes.
type EmbedInput struct {
	Text  string
	Image []byte
}

// Embeddings are inputs in TokLIP's shared space: an image by its attention-pooled head, text by
// the text tower, so that an image lies near its caption.
type Embeddings struct {
	Vectors      [][]float32     // unit length, in input order: a dot product is the cosine
	Tokens       int             // text tokens (padding left out) and image ids embedded
	ImageEncodes []time.Duration // each image's decode and encode (a cached image: to find)
}

// ErrNoTextTower is returned by Embed for a model whose TokLIP file has no text tower.
var ErrNoTextTower = errors.New("this model has no TokLIP text tower to embed with")

// InputError is a failure of one input of Embed (an image that does not decode).
type InputError struct {
	Index int
	Err   error
}

func (e *InputError) Error() string { return fmt.Sprintf("input[%d]: %v", e.Index, e.Err) }

func (e *InputError) Unwrap() error { return e.Err }

// Embed embeds inputs in order.
func (e *Engine) Embed(inputs []EmbedInput) (*Embeddings, error) {
	if !e.Info().Embeds {
		return nil, ErrNoTextTower
	}
	out := &Embeddings{Vectors: make([][]float32, len(inputs))}
	for i, in := range inputs {
		var vec []float32
		if in.Image != nil {
			start := time.Now()
			enc, err := e.EncodeImage(in.Image)
			if err != nil {
				return nil, &InputError{Index: i, Err: err}
			}
			out.ImageEncodes = append(out.ImageEncodes, time.Since(start))
			vec = enc.Pooled
			out.Tokens += len(enc.IDs)
		} else {
			ids, err := e.vision.TextIDs(in.Text)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if id != 0 { // padding
					out.Tokens++
				}
			}
			if vec, err = e.vision.TextEmbeddingIDs(ids); err != nil {
				return nil, err
			}
		}
		out.Vectors[i] = normalize(vec)
	}
	return out, nil
}

// normalize scales v to unit length, as OpenAI's embeddings are, in a copy (v may be the cached
// encoding).
func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}
