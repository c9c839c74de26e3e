package visiontok

import (
	"errors"
	"fmt"
	"math"

	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/ggml"
)

// ErrNoFreeStream is returned by NewStream when every KV-cache sequence is in use.
var ErrNoFreeStream = errors.New("all incremental encoder slots are in use")

// Stream computes the semantic features of an image's ids as they are generated, one or a few at
// a time, through the causal ViT's KV cache: feature i depends on ids 0..i only, so it is final
// as soon as id i is known, and equals the whole-image feature.
type Stream struct {
	v   *Vision
	seq int
	pos int
}

// NewStream starts the features of a new image.
func (v *Vision) NewStream() (*Stream, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, used := range v.streams {
		if !used {
			v.streams[i] = true
			return &Stream{v: v, seq: i}, nil
		}
	}
	return nil, ErrNoFreeStream
}

// Len is the number of ids added so far.
func (s *Stream) Len() int { return s.pos }

// Add appends ids and returns their features, one row of Width per id.
func (s *Stream) Add(ids []int32) (feats [][]float32, err error) {
	v := s.v
	if s.pos+len(ids) > v.cfg.Tokens {
		return nil, fmt.Errorf("stream: %d ids would pass the %d of an image", s.pos+len(ids), v.cfg.Tokens)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= v.cfg.CodebookSize {
			return nil, fmt.Errorf("stream: id %d is outside the codebook of %d", id, v.cfg.CodebookSize)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.model == nil || s.seq < 0 {
		return nil, errors.New("stream: closed")
	}
	defer func() {
		if err != nil { // forget what this pass put in the cache
			v.model.Cache.Remove(s.seq, int32(s.pos), math.MaxInt32)
		}
	}()
	defer recoverInto(&err)

	ctx := v.model.Backend().NewContext()
	defer ctx.Close()
	n := len(ids)
	batch := input.Batch{Positions: make([]int32, n), Sequences: make([]int, n)}
	outputs := make([]int32, n)
	for i := range ids {
		batch.Positions[i] = int32(s.pos + i)
		batch.Sequences[i] = s.seq
		outputs[i] = int32(i)
	}
	batch.Inputs = ctx.Input().FromInts(ids, n)
	batch.Outputs = ctx.Input().FromInts(outputs, n)
	t, err := model.Forward(ctx, v.model, batch)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	out := ggml.Compute(ctx, t)
	s.pos += n
	return rows(out, v.cfg.Width), nil
}

// Close frees the stream's cache slot.
func (s *Stream) Close() {
	v := s.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if s.seq >= 0 && v.model != nil {
		v.model.Cache.Remove(s.seq, 0, math.MaxInt32)
		v.streams[s.seq] = false
	}
	s.seq = -1
}
