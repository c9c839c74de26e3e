// Package visiontok is TokLIP on GGML: images in as VQ ids and semantic features, VQ ids out as
// pixels, and text in the same embedding space as images.
//
// A request's path: DecodeImage (format, size limits, the mode PIL opens the file in, EXIF) ->
// Preprocess (PIL's resize of the shorter side in that mode, center crop, conversion to RGB,
// [-1, 1]: bit-exact with the official PIL + torchvision pipeline) -> Vision.EncodeIDs (LlamaGen VQ encoder,
// then the quantizer in Go: cosine argmax against the l2-normalized codebook) -> Vision.Features
// (the causal ViT: per-token features and the attention-pooled embedding). Generation runs the
// other way: Vision.NewStream gives the features of ids one at a time, and Vision.Decode turns
// ids into pixels.
package visiontok

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"

	"github.com/ollama/ollama/ml"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/tokenizer"
)

// Options for Load.
type Options struct {
	ggml.Options
	Streams int           // incremental encoders that can run at once (KV-cache sequences); default 1
	Decode  DecodeOptions // limits (default DefaultLimits) and EXIF handling of input images
}

// Vision is a loaded TokLIP model. Its methods are safe for concurrent use; computations run one
// at a time.
type Vision struct {
	model    *Model
	file     *gguf.File
	cfg      Config
	tok      *tokenizer.Tokenizer // nil without a text tower
	codebook []float32            // l2-normalized rows, for the quantizer
	opts     Options
	packed   *ggml.Repacked // the ViT's repacked Q4 matrices, if any

	mu      sync.Mutex
	streams []bool // sequence slots in use
}

// Load opens, checks and loads a TokLIP file.
func Load(ctx context.Context, path string, opts Options) (*Vision, error) {
	// A VQ decode is one graph of seconds: on the LLM's CPU backend it would hold every chat's
	// next step until it ends; on one of its own it shares the cores with them instead.
	opts.OwnCPU = true
	m, f, err := ggml.LoadModel(ctx, path, opts.Options)
	if err != nil {
		return nil, err
	}
	vm, ok := m.(*Model)
	if !ok {
		ggml.Close(m)
		return nil, fmt.Errorf("load %s: architecture %q is not a TokLIP model", path, f.Architecture())
	}
	if opts.Streams <= 0 {
		opts.Streams = 1
	}
	if opts.Decode.Limits == (Limits{}) {
		opts.Decode.Limits = DefaultLimits
	}
	v := &Vision{model: vm, file: f, cfg: vm.cfg, opts: opts, streams: make([]bool, opts.Streams)}
	if vm.cfg.Text.Depth > 0 {
		if v.tok, err = tokenizer.FromGGUF(f); err != nil {
			ggml.Close(m)
			return nil, err
		}
	}
	if err := v.readCodebook(); err != nil {
		ggml.Close(m)
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	// A Q4_0 ViT (toklip quantize) in ggml's interleaved layout.
	if v.packed, err = ggml.RepackLoaded(m, f, vm.matmulWeights(), path, opts.Options); err != nil {
		ggml.Close(m)
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	// F32 keys and values: the incremental features must equal the whole-image ones.
	vm.Cache.Init(m.Backend(), ml.DTypeF32, opts.Streams, vm.cfg.Tokens, vm.cfg.Tokens)
	return v, nil
}

// Close frees the model.
func (v *Vision) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.model != nil {
		v.model.Cache.Close()
		ggml.Close(v.model)
		v.packed.Close() // after the backend: the model's tensors pointed into it
		v.model = nil
	}
}

// Config is the model's shape.
func (v *Vision) Config() Config { return v.cfg }

// RepackedWeights is how many ViT matrices ggml.Repack moved into ggml's interleaved CPU layouts.
func (v *Vision) RepackedWeights() int {
	if v.packed == nil {
		return 0
	}
	return v.packed.Tensors
}

// Memory is what ggml allocated for the model, by device: weights, KV cache, compute graph.
func (v *Vision) Memory() ml.BackendMemory {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.model == nil {
		return ml.BackendMemory{}
	}
	return v.model.Backend().BackendMemory()
}

// Limits are the image limits DecodeImage is given by this model's users.
func (v *Vision) Limits() Limits { return v.opts.Decode.Limits }

// compute builds a graph with build, computes it, and returns its output's values.
func (v *Vision) compute(build func(ctx ml.Context) ml.Tensor) (out []float32, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.model == nil {
		return nil, errors.New("visiontok: model is closed")
	}
	defer recoverInto(&err)
	ctx := v.model.Backend().NewContext()
	defer ctx.Close()
	return ggml.Compute(ctx, build(ctx)), nil
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ggml.ErrInternal, r)
	}
}

// readCodebook copies the codebook to the host and l2-normalizes its rows, as the quantizer does.
func (v *Vision) readCodebook() error {
	raw, err := v.compute(func(ctx ml.Context) ml.Tensor { return v.model.VQ.Codebook.Duplicate(ctx) })
	if err != nil {
		return err
	}
	dim := v.cfg.CodebookDim
	for i := 0; i+dim <= len(raw); i += dim {
		normalize(raw[i : i+dim])
	}
	v.codebook = raw
	return nil
}

// normalize divides x by its l2 norm (at least 1e-12), as torch.nn.functional.normalize does.
func normalize(x []float32) {
	var ss float32
	for _, e := range x {
		ss += e * e
	}
	n := float32(math.Max(math.Sqrt(float64(ss)), 1e-12))
	for i := range x {
		x[i] /= n
	}
}

// Image decodes image bytes with the model's decode options and preprocesses them for the model.
// It waits while other decodes hold the process's decode memory budget (they finish in bounded
// time).
func (v *Vision) Image(data []byte) ([]float32, error) {
	crop, err := v.Crop(data)
	if err != nil {
		return nil, err
	}
	return Planes(crop), nil
}

// Crop decodes an image file's bytes (within the model's limits) into the square crop the
// encoder reads, as 8-bit RGB: what Image turns into the model's input.
func (v *Vision) Crop(data []byte) (*image.RGBA, error) {
	return CropImage(context.Background(), data, v.opts.Decode, v.cfg.ImageSize)
}

// EncodeIDs runs the VQ encoder on preprocessed pixels (Preprocess) and quantizes: the ids of
// the image, Grid x Grid in raster order.
func (v *Vision) EncodeIDs(pixels []float32) ([]int32, error) {
	s := v.cfg.ImageSize
	if len(pixels) != 3*s*s {
		return nil, fmt.Errorf("encode: %d pixel values, want 3 x %d x %d", len(pixels), s, s)
	}
	z, err := v.compute(func(ctx ml.Context) ml.Tensor {
		return v.model.VQ.encode(ctx, ctx.Input().FromFloats(pixels, s, s, 3), v.cfg.Groups)
	})
	if err != nil {
		return nil, err
	}
	return v.quantize(z), nil
}

// quantize maps latents [dim planes of N positions] to codebook ids, as LlamaGen's quantizer:
// l2-normalize the latent, then the smallest |z|^2 + |e|^2 - 2 z.e over the normalized codebook
// (the largest cosine), in float32; the first index wins a tie, as torch.argmin.
func (v *Vision) quantize(z []float32) []int32 {
	dim, n := v.cfg.CodebookDim, v.cfg.Tokens
	ids := make([]int32, n)
	latent := make([]float32, dim)
	for p := range n {
		for c := range dim {
			latent[c] = z[c*n+p]
		}
		normalize(latent)
		var zz float32
		for _, e := range latent {
			zz += e * e
		}
		best, bestD := 0, float32(math.Inf(1))
		for j := 0; j*dim < len(v.codebook); j++ {
			row := v.codebook[j*dim : (j+1)*dim]
			var ee, ze float32
			for c, e := range row {
				ee += e * e
				ze += latent[c] * e
			}
			if d := zz + ee - 2*ze; d < bestD {
				best, bestD = j, d
			}
		}
		ids[p] = int32(best)
	}
	return ids
}

// Encoded is an image as TokLIP sees it.
type Encoded struct {
	IDs      []int32     // Grid x Grid VQ ids, raster order
	Features [][]float32 // per-token semantic features, one row of Width per id
	Pooled   []float32   // the attention-pooled embedding (not normalized)
}

// Encode runs the whole image pipeline on preprocessed pixels.
func (v *Vision) Encode(pixels []float32) (*Encoded, error) {
	ids, err := v.EncodeIDs(pixels)
	if err != nil {
		return nil, err
	}
	feats, pooled, err := v.Features(ids)
	if err != nil {
		return nil, err
	}
	return &Encoded{IDs: ids, Features: feats, Pooled: pooled}, nil
}

// Features runs the causal ViT over a whole image's ids: per-token features and the pooled
// embedding.
func (v *Vision) Features(ids []int32) ([][]float32, []float32, error) {
	if err := v.checkIDs(ids, v.cfg.Tokens); err != nil {
		return nil, nil, err
	}
	w := v.cfg.Width
	var feats []float32
	pooled, err := v.compute(func(ctx ml.Context) ml.Tensor {
		f := v.model.features(ctx, ids)
		ctx.Forward(f)
		p := v.model.pool(ctx, f)
		// Both outputs come back in one buffer: the features, then the pooled row.
		return f.Concat(ctx, p.Reshape(ctx, w, 1), 1)
	})
	if err != nil {
		return nil, nil, err
	}
	feats, pooled = pooled[:len(ids)*w], pooled[len(ids)*w:]
	return rows(feats, w), pooled, nil
}

func (v *Vision) checkIDs(ids []int32, want int) error {
	if len(ids) != want {
		return fmt.Errorf("%d ids, want %d (%d x %d)", len(ids), want, v.cfg.Grid, v.cfg.Grid)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= v.cfg.CodebookSize {
			return fmt.Errorf("id %d at %d is outside the codebook of %d", id, i, v.cfg.CodebookSize)
		}
	}
	return nil
}

func rows(flat []float32, width int) [][]float32 {
	out := make([][]float32, len(flat)/width)
	for i := range out {
		out[i] = flat[i*width : (i+1)*width : (i+1)*width]
	}
	return out
}

// Decode renders a whole image's ids as pixels: uint8(clamp(127.5 y + 128, 0, 255)) of the VQ
// decoder's output, as LlamaGen's demo does.
func (v *Vision) Decode(ids []int32) (*image.RGBA, error) {
	if err := v.checkIDs(ids, v.cfg.Tokens); err != nil {
		return nil, err
	}
	g, s := v.cfg.Grid, v.cfg.ImageSize
	y, err := v.compute(func(ctx ml.Context) ml.Tensor {
		z := v.model.VQ.codebookRows(ctx, ctx.Input().FromInts(ids, len(ids))) // [dim, N]
		z = z.Permute(ctx, 1, 0, 2, 3).Contiguous(ctx, g, g, v.cfg.CodebookDim)
		return v.model.VQ.decode(ctx, z, v.cfg.Groups)
	})
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, s, s))
	for c := range 3 {
		for p := range s * s {
			val := max(0, min(255, 127.5*y[c*s*s+p]+128))
			img.Pix[4*p+c] = uint8(val)
		}
	}
	for p := range s * s {
		img.Pix[4*p+3] = 255
	}
	return img, nil
}

// TextEmbedding is the text tower's embedding of text (not normalized).
func (v *Vision) TextEmbedding(text string) ([]float32, error) {
	if v.tok == nil {
		return nil, errors.New("this TokLIP file has no text tower")
	}
	ids := textIDs(v.tok, text, v.cfg.Text)
	return v.TextEmbeddingIDs(ids)
}

// TextEmbeddingIDs runs the text tower on already tokenized, padded ids.
func (v *Vision) TextEmbeddingIDs(ids []int32) ([]float32, error) {
	if v.tok == nil {
		return nil, errors.New("this TokLIP file has no text tower")
	}
	if len(ids) != v.cfg.Text.Context {
		return nil, fmt.Errorf("text: %d ids, want the context of %d", len(ids), v.cfg.Text.Context)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= v.cfg.Text.Vocab {
			return nil, fmt.Errorf("text: id %d is outside the vocabulary of %d", id, v.cfg.Text.Vocab)
		}
	}
	return v.compute(func(ctx ml.Context) ml.Tensor { return v.model.embedText(ctx, ids) })
}

// TextIDs is the text tower's input for text: canonicalized, tokenized, truncated, padded.
func (v *Vision) TextIDs(text string) ([]int32, error) {
	if v.tok == nil {
		return nil, errors.New("this TokLIP file has no text tower")
	}
	return textIDs(v.tok, text, v.cfg.Text), nil
}

// ZeroShot scores an image's pooled embedding against labels as TokLIP's inference does:
// softmax over 100 x cosine similarity.
func (v *Vision) ZeroShot(pooled []float32, labels []string) ([]float32, error) {
	logits := make([]float64, len(labels))
	for i, l := range labels {
		t, err := v.TextEmbedding(l)
		if err != nil {
			return nil, err
		}
		logits[i] = 100 * cosine(pooled, t)
	}
	return softmax(logits), nil
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Max(math.Sqrt(aa)*math.Sqrt(bb), 1e-12)
}

func softmax(x []float64) []float32 {
	top := math.Inf(-1)
	for _, v := range x {
		top = math.Max(top, v)
	}
	var sum float64
	out := make([]float32, len(x))
	for i, v := range x {
		e := math.Exp(v - top)
		sum += e
		out[i] = float32(e)
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}
