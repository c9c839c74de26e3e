// Package llm runs a unified TokLIP model: the backbone (a decoder architecture of models/, its
// sequences in one KV cache, the batched forward passes of every request at once) and the Engine
// over a backbone and its TokLIP file. The Engine is the one door the server and the command line
// use: what a model can do (Info), chats with images in and out and image generation as Runs of
// n choices whose progress comes back as typed Events, and embeddings.
//
// One chat's path: Chat checks the request and builds its prompt (prompt.go: the template, each
// image decoded and encoded once), Run.Events starts its choices (run.go), each choice's answer
// loop samples text and, when the model opens an image, draws it with guidance (generate.go),
// every step going through the batcher (batcher.go) into one forward pass of the backbone
// (backbone.go).
package llm

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/ollama/ollama/ml"
	"github.com/toklip/toklip/tokenizer"
	"github.com/toklip/toklip/visiontok"
)

// EngineOptions size an Engine.
type EngineOptions struct {
	Backbone     Options           // Sequences defaults to 4 here: requests at once, a guided image taking 2
	Vision       visiontok.Options // Streams defaults to half the sequences: one per guided image at once
	CachedImages int               // images whose TokLIP features are kept for reuse; default 32
}

// Engine is a unified TokLIP model: the LLM backbone (with its image tokens and projector) and
// the TokLIP vision tokenizer. It answers chats with images and draws images. Its methods are
// safe for concurrent use; the forward passes of concurrent requests share batches.
type Engine struct {
	lm     *Backbone
	vision *visiontok.Vision // nil for a text-only model
	tok    *tokenizer.Tokenizer
	tmpl   Template
	steps  *batcher
	cache  *featureCache

	fileBytes int64 // the model files' size
	memory    int64 // what ggml allocated for both models
	gpuMemory int64 // of it, on GPUs

	piecesOnce sync.Once
	pieces     [][]byte // every token's bytes, for JSON answers (tokenBytes)
}

// ErrNoVision is returned for image input or output on a model without a vision tokenizer.
var ErrNoVision = errors.New("this model has no vision tokenizer: it neither reads nor draws images")

// Open loads a backbone and, unless visionPath is "", its TokLIP vision tokenizer, and checks
// that they fit: the image-token count is the codebook's size, the grids agree, and the
// projector takes TokLIP's feature width.
func Open(ctx context.Context, lmPath, visionPath string, opts EngineOptions) (*Engine, error) {
	if opts.Backbone.Sequences <= 0 {
		opts.Backbone.Sequences = 4
	}
	if opts.Vision.Streams <= 0 {
		opts.Vision.Streams = max(1, opts.Backbone.Sequences/2)
	}
	lm, err := Load(ctx, lmPath, opts.Backbone)
	if err != nil {
		return nil, err
	}
	e := &Engine{lm: lm, tok: lm.Tokenizer()}
	e.tmpl = templateFor(e.tok, e.tok.ChatTemplate)
	if in, err := Inspect(lmPath, visionPath, opts); err == nil { // what it fails on, the loads below name
		e.fileBytes = in.FileBytes
	}
	if visionPath != "" {
		if e.vision, err = visiontok.Load(ctx, visionPath, opts.Vision); err != nil {
			lm.Close()
			return nil, err
		}
		if err := e.checkPair(); err != nil {
			e.Close()
			return nil, fmt.Errorf("%s with %s: %w", lmPath, visionPath, err)
		}
	}
	if opts.CachedImages <= 0 {
		opts.CachedImages = 32
	}
	e.cache = newFeatureCache(opts.CachedImages)
	e.steps = newBatcher(lm)
	mems := []ml.BackendMemory{lm.Memory()}
	if e.vision != nil {
		mems = append(mems, e.vision.Memory())
	}
	for _, m := range mems {
		e.memory += int64(m.InputWeights + m.CPU.Size())
		for _, g := range m.GPUs {
			e.memory += int64(g.Size())
			e.gpuMemory += int64(g.Size())
		}
	}
	return e, nil
}

func (e *Engine) checkPair() error {
	c, v := e.lm.Config(), e.vision.Config()
	switch {
	case !c.Images.Enabled():
		return errors.New("the backbone has no image tokens")
	case c.Images.Count != v.CodebookSize:
		return fmt.Errorf("the backbone has %d image tokens, the TokLIP codebook %d codes", c.Images.Count, v.CodebookSize)
	case c.Images.Grid != v.Grid:
		return fmt.Errorf("the backbone draws %dx%d images, TokLIP encodes %dx%d", c.Images.Grid, c.Images.Grid, v.Grid, v.Grid)
	case c.Projector.Depth == 0:
		return errors.New("the backbone has no projector (mm.*) to read TokLIP features")
	case c.Projector.InputWidth != v.Width:
		return fmt.Errorf("the projector takes %d-wide features, TokLIP gives %d", c.Projector.InputWidth, v.Width)
	}
	return nil
}

// Close frees both models.
func (e *Engine) Close() {
	if e.steps != nil {
		e.steps.close()
	}
	if e.vision != nil {
		e.vision.Close()
	}
	e.lm.Close()
}

// BatchStats reports how many passes the engine ran and how many step calls they served.
func (e *Engine) BatchStats() BatchStats {
	return BatchStats{Passes: e.steps.passes.Load(), Calls: e.steps.calls.Load()}
}

// Backbone is the language model, for tests and benchmarks that drive its passes directly;
// callers of the engine ask Info.
func (e *Engine) Backbone() *Backbone { return e.lm }

// Vision is the TokLIP vision tokenizer, nil for a text-only model (for tests and benchmarks).
func (e *Engine) Vision() *visiontok.Vision { return e.vision }

// Info is what a loaded model can do and its limits.
type Info struct {
	ReadsImages   bool  // prompts may hold images: the model has a TokLIP vision tokenizer
	Draws         bool  // answers and Draw may make images: its backbone has image tokens too
	Embeds        bool  // Embed works: TokLIP has its text tower, so text and images share one space
	Vocab         int   // the backbone's token ids are 0 to Vocab-1
	Sequences     int   // sequences decoded at once: a choice takes 1, one that draws 2
	ContextLength int   // positions per sequence
	FileBytes     int64 // the model's GGUF files: its weights' size
	// Memory is the bytes the model takes: once loaded, what ggml allocated (weights, KV cache,
	// compute graphs; GPUMemory of it on GPUs); from Inspect, its weights and KV cache.
	Memory, GPUMemory int64
	ImageLimits       visiontok.Limits // what an image may be (bytes, pixels, aspect)
}

// Info says what the model can do.
func (e *Engine) Info() Info {
	in := Info{Vocab: e.lm.Config().Vocab, Sequences: e.lm.Options().Sequences, FileBytes: e.fileBytes, Memory: e.memory, GPUMemory: e.gpuMemory, ContextLength: e.lm.Options().ContextLength, ImageLimits: visiontok.DefaultLimits}
	if e.vision != nil {
		in.ReadsImages = true
		in.Draws = e.lm.Config().Images.Enabled()
		in.Embeds = e.vision.Config().Text.Depth > 0
		in.ImageLimits = e.vision.Limits()
	}
	return in
}

// EncodeImage returns an image's TokLIP encoding (ids, features, pooled embedding), from the
// cache when the same bytes were seen.
func (e *Engine) EncodeImage(data []byte) (*visiontok.Encoded, error) {
	if e.vision == nil {
		return nil, ErrNoVision
	}
	key := sha256.Sum256(data)
	if enc, ok := e.cache.get(key); ok {
		return enc, nil
	}
	pixels, err := e.vision.Image(data)
	if err != nil {
		return nil, err
	}
	enc, err := e.vision.Encode(pixels)
	if err != nil {
		return nil, err
	}
	e.cache.put(key, enc)
	return enc, nil
}

// ImageTokens is what TokLIP makes of an image: the square crop its encoder reads, the VQ ids it
// writes for it (Grid x Grid, raster order: id k covers the crop's cell k/Grid, k%Grid), and the
// image the VQ decoder draws back from those ids alone.
type ImageTokens struct {
	Crop           *image.RGBA
	Grid           int
	IDs            []int32
	Reconstruction *image.RGBA
}

// Tokenize returns an image file's TokLIP tokens and their reconstruction: the ids an
// understanding prompt is built from, and the round trip of the discrete path alone.
func (e *Engine) Tokenize(data []byte) (*ImageTokens, error) {
	if e.vision == nil {
		return nil, ErrNoVision
	}
	crop, err := e.vision.Crop(data)
	if err != nil {
		return nil, err
	}
	ids, err := e.vision.EncodeIDs(visiontok.Planes(crop))
	if err != nil {
		return nil, err
	}
	rec, err := e.vision.Decode(ids)
	if err != nil {
		return nil, err
	}
	return &ImageTokens{Crop: crop, Grid: e.vision.Config().Grid, IDs: ids, Reconstruction: rec}, nil
}

// featureCache keeps the TokLIP encodings of recent images, least recently used out first.
type featureCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of [32]byte keys, most recent first
	items map[[32]byte]*cacheEntry
}

type cacheEntry struct {
	enc  *visiontok.Encoded
	elem *list.Element
}

func newFeatureCache(max int) *featureCache {
	return &featureCache{max: max, order: list.New(), items: map[[32]byte]*cacheEntry{}}
}

func (c *featureCache) get(k [32]byte) (*visiontok.Encoded, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e.elem)
	return e.enc, true
}

func (c *featureCache) put(k [32]byte, enc *visiontok.Encoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = &cacheEntry{enc: enc, elem: c.order.PushFront(k)}
	for c.order.Len() > c.max {
		last := c.order.Back()
		delete(c.items, last.Value.([32]byte))
		c.order.Remove(last)
	}
}
