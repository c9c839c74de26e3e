package llm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/ollama/ollama/kvcache"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/models"
	_ "github.com/toklip/toklip/models/qwen2llama" // the architectures a backbone may have
	"github.com/toklip/toklip/tokenizer"
)

// CacheType is the element type of the KV cache.
type CacheType string

const (
	CacheF16 CacheType = "f16" // llama.cpp's default: half the memory, logits within ~1e-3
	CacheF32 CacheType = "f32" // exact, for parity tests
)

// Options size a loaded backbone.
type Options struct {
	ggml.Options
	Sequences     int       // KV-cache slots, one per sequence decoded at once (default 1)
	ContextLength int       // positions per sequence (default: the model's, at most 4096)
	BatchSize     int       // most inputs in one forward pass; longer calls are split (default 512)
	CacheType     CacheType // default CacheF16
}

// Errors of Forward and Acquire that callers handle.
var (
	ErrNoFreeSequence = errors.New("all sequence slots are in use")
	ErrContextFull    = errors.New("sequence is at the context length")
)

// Seq names one sequence slot of a backbone's KV cache.
type Seq int

// Input is one position of a forward pass: a token of a sequence, or in its place an input
// embedding of Hidden values (Embedding), or a TokLIP feature (Feature, the projector's input
// width) whose projection takes the token embedding's place (an image token of a prompt) or,
// with Fuse, is added to the token's embedding (a generated image id under semantic fusion).
// Logits asks for this position's logits: all of them, or, with ImageLogits, those of the image
// tokens only (index i is image id i), which is all that drawing an image needs.
type Input struct {
	Seq         Seq
	Token       int32
	Embedding   []float32
	Feature     []float32
	Fuse        bool
	Logits      bool
	ImageLogits bool
}

// Backbone is a loaded language model with its KV cache. Its methods are safe for concurrent use;
// forward passes run one at a time, each over a batch that may mix sequences.
type Backbone struct {
	model models.Decoder
	cfg   models.Config
	tok   *tokenizer.Tokenizer
	cache kvcache.Cache
	opts  Options
	// packed holds the weights ggml.Repack moved (nil: none); freed after the model.
	packed *ggml.Repacked

	mu    sync.Mutex
	slots []slot
	freed chan struct{} // closed (and replaced) whenever a slot is released
}

type slot struct {
	used   bool
	length int32 // positions filled
}

// Load opens, checks and loads the backbone at path.
func Load(ctx context.Context, path string, opts Options) (*Backbone, error) {
	dtype := ml.DTypeF16
	switch opts.CacheType {
	case "", CacheF16:
	case CacheF32:
		dtype = ml.DTypeF32
	default:
		return nil, fmt.Errorf("load %s: unknown KV cache type %q (want f16 or f32)", path, opts.CacheType)
	}
	if opts.GPULayers != 0 { // the placement counts each block's KV cache
		if f, err := gguf.Open(path); err == nil {
			opts.CachePerBlock = cachePerBlock(f, opts)
		}
	}
	m, f, err := ggml.LoadModel(ctx, path, opts.Options)
	if err != nil {
		return nil, err
	}
	lm, ok := m.(models.Decoder)
	if !ok {
		ggml.Close(m)
		return nil, fmt.Errorf("load %s: architecture %q is not a language-model backbone", path, f.Architecture())
	}
	cfg, err := lm.Init(f)
	if err != nil { // cannot happen: LoadModel ran the same check
		ggml.Close(m)
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err == nil && tok.VocabSize() > cfg.Vocab {
		err = fmt.Errorf("%s: the tokenizer has %d tokens but the embedding only %d rows", path, tok.VocabSize(), cfg.Vocab)
	}
	if err != nil {
		ggml.Close(m)
		return nil, err
	}
	packed, err := ggml.RepackLoaded(m, f, lm.MatmulWeights(), path, opts.Options)
	if err != nil {
		ggml.Close(m)
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	opts = withDefaults(opts, cfg)
	b := &Backbone{model: lm, cfg: cfg, tok: tok, cache: lm.Config().Cache, opts: opts, packed: packed, slots: make([]slot, opts.Sequences), freed: make(chan struct{})}
	b.cache.Init(m.Backend(), dtype, opts.Sequences, opts.ContextLength, opts.BatchSize)
	if err := b.reserve(); err != nil {
		b.Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return b, nil
}

// cachePerBlock is the bytes one block's KV cache takes with opts (0 for a file that is not a
// backbone: its load fails with the reason).
func cachePerBlock(f *gguf.File, opts Options) uint64 {
	cfg, err := models.ReadConfig(f)
	if err != nil {
		return 0
	}
	o := withDefaults(opts, cfg)
	elem := 2 // F16
	if o.CacheType == CacheF32 {
		elem = 4
	}
	return uint64(2 * o.ContextLength * o.Sequences * cfg.KVHeads * cfg.HeadDim * elem)
}

func withDefaults(o Options, c models.Config) Options {
	if o.Sequences <= 0 {
		o.Sequences = 1
	}
	if o.ContextLength <= 0 {
		o.ContextLength = min(c.ContextLength, 4096)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	o.BatchSize = min(o.BatchSize, o.ContextLength*o.Sequences)
	if o.CacheType == "" {
		o.CacheType = CacheF16
	}
	return o
}

// reserve sizes ggml's compute buffers for the largest usual graph (a full batch against a full
// cache, logits for one position per sequence), as ollama's runner does, so that running out of
// memory shows at load, not mid-request. A pass that asks for more logits grows the buffers then.
func (b *Backbone) reserve() (err error) {
	defer recoverInto(&err)
	ctx := b.model.Backend().NewContext()
	defer ctx.Close()
	n := b.opts.BatchSize
	batch := input.Batch{Positions: make([]int32, n), Sequences: make([]int, n)}
	for i := range batch.Positions {
		batch.Positions[i] = int32(i)
	}
	batch.Inputs = ctx.Input().FromInts(make([]int32, n), n)
	batch.Outputs = ctx.Input().Empty(ml.DTypeI32, b.opts.Sequences)
	if err := b.cache.StartForward(ctx, batch, true); err != nil {
		return err
	}
	t, err := b.model.Forward(ctx, batch)
	if err != nil {
		return err
	}
	ctx.SetBatchSize(n)
	ggml.Reserve(ctx, t)
	return nil
}

// Close frees the weights and the cache.
func (b *Backbone) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.model == nil {
		return
	}
	b.cache.Close()
	ggml.Close(b.model)
	b.packed.Close()
	b.model = nil
}

// RepackedWeights is how many weights ggml.Repack moved into ggml's interleaved CPU layouts.
func (b *Backbone) RepackedWeights() int {
	if b.packed == nil {
		return 0
	}
	return b.packed.Tensors
}

// Config is the backbone's configuration.
func (b *Backbone) Config() models.Config { return b.cfg }

// Memory is what ggml allocated for the backbone, by device: weights, KV cache, compute graph.
func (b *Backbone) Memory() ml.BackendMemory {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.model == nil {
		return ml.BackendMemory{}
	}
	return b.model.Backend().BackendMemory()
}

// Tokenizer is the text tokenizer that the model file describes.
func (b *Backbone) Tokenizer() *tokenizer.Tokenizer { return b.tok }

// Options are the options the backbone was loaded with, defaults filled in.
func (b *Backbone) Options() Options { return b.opts }

// Acquire takes a free sequence slot, empty.
func (b *Backbone) Acquire() (Seq, error) {
	s, _, err := b.tryAcquire(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

// AcquireWaitN takes n slots at once, waiting until n are free. A request that needs two
// sequences (guided generation) takes both here: taking one and then waiting for the other
// deadlocks as soon as every request holds one.
func (b *Backbone) AcquireWaitN(ctx context.Context, n int) ([]Seq, error) {
	if n > len(b.slots) {
		return nil, fmt.Errorf("a request needs %d sequences at once, the model holds %d", n, len(b.slots))
	}
	for {
		s, freed, err := b.tryAcquire(n)
		if err != ErrNoFreeSequence {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-freed:
		}
	}
}

// tryAcquire takes n free slots, or none and returns the channel that the next release closes.
func (b *Backbone) tryAcquire(n int) ([]Seq, chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var free []Seq
	for i := range b.slots {
		if !b.slots[i].used {
			free = append(free, Seq(i))
		}
	}
	if len(free) < n {
		return nil, b.freed, ErrNoFreeSequence
	}
	for _, s := range free[:n] {
		b.slots[s] = slot{used: true}
	}
	return free[:n], nil, nil
}

// Release empties a sequence's cache entries and frees its slot.
func (b *Backbone) Release(s Seq) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.valid(s) {
		b.cache.Remove(int(s), 0, math.MaxInt32) // removing a whole sequence shifts nothing and cannot fail
		b.slots[s] = slot{}
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

// Len is the number of positions a sequence has filled.
func (b *Backbone) Len(s Seq) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.valid(s) {
		return 0
	}
	return int(b.slots[s].length)
}

// Truncate drops a sequence's positions from n on, so that it can continue from position n.
func (b *Backbone) Truncate(s Seq, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.valid(s) {
		return fmt.Errorf("truncate: sequence %d is not acquired", s)
	}
	if n < 0 || n > int(b.slots[s].length) {
		return fmt.Errorf("truncate: sequence %d has %d positions, cannot keep %d", s, b.slots[s].length, n)
	}
	if err := b.cache.Remove(int(s), int32(n), math.MaxInt32); err != nil {
		return fmt.Errorf("truncate sequence %d: %w", s, err)
	}
	b.slots[s].length = int32(n)
	return nil
}

func (b *Backbone) valid(s Seq) bool {
	return b.model != nil && s >= 0 && int(s) < len(b.slots) && b.slots[s].used
}

// Forward appends inputs to their sequences, in order, and returns the logits of the inputs that
// ask for them, in input order, each of Vocab values. Inputs beyond BatchSize run as several
// passes. If a pass fails, the sequences it touched keep only what earlier passes added.
func (b *Backbone) Forward(ctx context.Context, inputs []Input) ([][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.checkInputs(inputs); err != nil {
		return nil, err
	}
	var logits [][]float32
	for start := 0; start < len(inputs); start += b.opts.BatchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := inputs[start:min(start+b.opts.BatchSize, len(inputs))]
		out, err := b.forward(chunk)
		if err != nil {
			return nil, err
		}
		logits = append(logits, out...)
	}
	return logits, nil
}

func (b *Backbone) checkInputs(inputs []Input) error {
	if b.model == nil {
		return errors.New("forward: backbone is closed")
	}
	added := map[Seq]int32{}
	for i, in := range inputs {
		if !b.valid(in.Seq) {
			return fmt.Errorf("forward: input %d: sequence %d is not acquired", i, in.Seq)
		}
		switch {
		case in.Embedding != nil && in.Feature != nil:
			return fmt.Errorf("forward: input %d has both an embedding and a feature", i)
		case in.Embedding != nil && len(in.Embedding) != b.cfg.Hidden:
			return fmt.Errorf("forward: input %d: embedding has %d values, want %d", i, len(in.Embedding), b.cfg.Hidden)
		case in.ImageLogits && !b.cfg.Images.Enabled():
			return fmt.Errorf("forward: input %d asks for image logits of a model without image tokens", i)
		case in.Feature != nil && b.cfg.Projector.Depth == 0:
			return fmt.Errorf("forward: input %d: the model has no projector for image features", i)
		case in.Feature != nil && len(in.Feature) != b.cfg.Projector.InputWidth:
			return fmt.Errorf("forward: input %d: feature has %d values, want %d", i, len(in.Feature), b.cfg.Projector.InputWidth)
		}
		if in.Embedding == nil && (in.Token < 0 || int(in.Token) >= b.cfg.Vocab) {
			return fmt.Errorf("forward: input %d: token %d is outside the vocabulary of %d", i, in.Token, b.cfg.Vocab)
		}
		added[in.Seq]++
		if int(b.slots[in.Seq].length+added[in.Seq]) > b.opts.ContextLength {
			return fmt.Errorf("forward: sequence %d: %w (%d)", in.Seq, ErrContextFull, b.opts.ContextLength)
		}
	}
	return nil
}

// forward runs one pass of at most BatchSize inputs.
func (b *Backbone) forward(inputs []Input) (logits [][]float32, err error) {
	committed := map[Seq]int32{}
	for _, in := range inputs {
		committed[in.Seq] = b.slots[in.Seq].length
	}
	defer func() {
		if err != nil { // forget the cache cells this pass may have claimed
			for s, n := range committed {
				b.cache.Remove(int(s), n, math.MaxInt32)
				b.slots[s].length = n
			}
		}
	}()
	defer recoverInto(&err)

	ctx := b.model.Backend().NewContext()
	defer ctx.Close()

	batch := input.Batch{Positions: make([]int32, len(inputs)), Sequences: make([]int, len(inputs))}
	tokens := make([]int32, len(inputs))
	var outputs []int32
	var feats *models.Features
	imageHead := b.cfg.Images.Enabled() // every output wants image logits only: a smaller head
	for i := 0; i < len(inputs); i++ {
		in := inputs[i]
		batch.Positions[i] = b.slots[in.Seq].length
		batch.Sequences[i] = int(in.Seq)
		b.slots[in.Seq].length++
		tokens[i] = in.Token
		if in.Logits {
			outputs = append(outputs, int32(i))
			imageHead = imageHead && in.ImageLogits
		}
		if in.Feature != nil {
			if feats == nil {
				feats = &models.Features{}
			}
			feats.At = append(feats.At, int32(i))
			feats.Fuse = append(feats.Fuse, in.Fuse)
			if !in.Fuse {
				tokens[i] = 0 // looked up, then overwritten by the projected feature
			}
		}
		if in.Embedding != nil {
			tokens[i] = 0 // looked up, then overwritten by the embedding
			if i == 0 || inputs[i-1].Embedding == nil {
				batch.Multimodal = append(batch.Multimodal, input.MultimodalIndex{Index: i})
			}
			last := &batch.Multimodal[len(batch.Multimodal)-1]
			last.Multimodal = append(last.Multimodal, input.Multimodal{Data: in.Embedding})
		}
	}
	// Each run of consecutive embeddings becomes one [Hidden, n] input tensor.
	for i, mi := range batch.Multimodal {
		flat := make([]float32, 0, len(mi.Multimodal)*b.cfg.Hidden)
		for _, e := range mi.Multimodal {
			flat = append(flat, e.Data.([]float32)...)
		}
		t := ctx.Input().FromFloats(flat, b.cfg.Hidden, len(mi.Multimodal))
		batch.Multimodal[i].Multimodal = []input.Multimodal{{Tensor: t}}
	}
	if feats != nil {
		flat := make([]float32, 0, len(feats.At)*b.cfg.Projector.InputWidth)
		for _, i := range feats.At {
			flat = append(flat, inputs[i].Feature...)
		}
		feats.Values = ctx.Input().FromFloats(flat, b.cfg.Projector.InputWidth, len(feats.At))
	}
	wanted := len(outputs)
	if wanted == 0 {
		outputs = []int32{int32(len(inputs) - 1)} // the graph needs one output row; its logits are dropped
	}
	batch.Inputs = ctx.Input().FromInts(tokens, len(tokens))
	batch.Outputs = ctx.Input().FromInts(outputs, len(outputs))
	ctx.SetBatchSize(len(inputs))

	if err := b.cache.StartForward(ctx, batch, false); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	t, err := b.model.ForwardFeatures(ctx, batch, feats, imageHead)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	flat := ggml.Compute(ctx, t)
	vocab := b.cfg.Vocab
	if imageHead {
		vocab = b.cfg.Images.Count
	}
	if len(flat) != vocab*len(outputs) {
		return nil, fmt.Errorf("forward: got %d logits for %d outputs of %d", len(flat), len(outputs), vocab)
	}
	logits = make([][]float32, wanted)
	for i := range logits {
		logits[i] = flat[i*vocab : (i+1)*vocab : (i+1)*vocab]
		if in := inputs[outputs[i]]; in.ImageLogits && !imageHead { // a mixed pass: cut the image range out
			it := b.cfg.Images
			logits[i] = logits[i][it.First : int(it.First)+it.Count : int(it.First)+it.Count]
		}
	}
	return logits, nil
}

// recoverInto turns a panic from ollama's engine (out of memory, a failed ggml compute) into an
// error, so that one bad request cannot bring the server down.
func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ggml.ErrInternal, r)
	}
}
