// Package qwen2llama is the Qwen2 and Llama decoder (llama.cpp's tensor names and keys, so that a
// stock GGUF of either loads), with TokLIP's image-token extension and projector. The two differ
// only in the file: Qwen2 has q/k/v biases and rotates halves of each head (NeoX); Llama rotates
// adjacent pairs and may carry Llama-3 frequency factors.
package qwen2llama

import (
	"fmt"
	"math"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/kvcache"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"
	"github.com/ollama/ollama/ml/nn/rope"
	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/models"
	"github.com/toklip/toklip/projector"
)

func init() {
	// The names are llama.cpp's; this package must therefore never be linked with ollama's
	// model/models, which registers the same names.
	models.Register(models.Architecture{New: newModel, Hyperparameters: readHyperparameters, Check: checkFile}, "qwen2", "llama")
}

// Model is the decoder on ollama's engine: weights bound by the gguf tags, a causal KV cache.
type Model struct {
	model.Base

	TokenEmbedding *nn.Embedding  `gguf:"token_embd"`
	Layers         []Layer        `gguf:"blk"`
	OutputNorm     *nn.RMSNorm    `gguf:"output_norm"`
	Output         *nn.Linear     `gguf:"output,alt:token_embd"`
	Projector      *projector.MLP // TokLIP features to input embeddings (mm.N); nil without one

	cfg models.Config
}

// Layer is one pre-norm decoder block.
type Layer struct {
	AttentionNorm *nn.RMSNorm `gguf:"attn_norm"`
	Attention     *Attention
	MLPNorm       *nn.RMSNorm `gguf:"ffn_norm"`
	MLP           *MLP
}

// Attention is grouped-query self-attention with rotary positions.
type Attention struct {
	Query       *nn.Linear `gguf:"attn_q"`
	Key         *nn.Linear `gguf:"attn_k"`
	Value       *nn.Linear `gguf:"attn_v"`
	Output      *nn.Linear `gguf:"attn_output"`
	RopeFactors ml.Tensor  `gguf:"rope_freqs.weight"` // ollama's backend repeats the file's one tensor per block
}

// MLP is the SwiGLU feed-forward block.
type MLP struct {
	Gate *nn.Linear `gguf:"ffn_gate"`
	Up   *nn.Linear `gguf:"ffn_up"`
	Down *nn.Linear `gguf:"ffn_down"`
}

func newModel(c fs.Config) (model.Model, error) {
	f := gguf.FromConfig(c)
	cfg, err := readHyperparameters(f) // the rest comes in Init, from the file
	if err != nil {
		return nil, err
	}
	cfg.Architecture = f.Architecture()
	m := &Model{Layers: make([]Layer, cfg.Layers), cfg: cfg}
	// The projector's depth is a key; whether it exists at all is known once the tensors are
	// (Init drops it when mm.0 is absent).
	depth, err := gguf.KeyOr(f, cfg.Key("projector.block_count"), uint32(2))
	if err != nil {
		return nil, err
	}
	m.Projector = projector.New(projector.Config{Depth: int(depth)})
	m.Cache = kvcache.NewCausalCache(m.shift)
	return m, nil
}

// Init implements models.Decoder.
func (m *Model) Init(f *gguf.File) (models.Config, error) {
	cfg, err := models.ReadConfig(f)
	if err != nil {
		return cfg, err
	}
	m.cfg = cfg
	if cfg.Projector.Depth == 0 {
		m.Projector = nil
	}
	return cfg, nil
}

func (m *Model) rope(ctx ml.Context, t, positions, factors ml.Tensor) ml.Tensor {
	opts := []func(*rope.Options){rope.WithFactors(factors)}
	if m.cfg.RopeNeoX {
		opts = append(opts, rope.WithTypeNeoX())
	}
	return nn.RoPE(ctx, t, positions, m.cfg.RopeDim, m.cfg.RopeBase, 1/m.cfg.RopeScale, opts...)
}

// shift re-rotates cached keys when positions of a sequence move (kvcache.Causal.Remove).
func (m *Model) shift(ctx ml.Context, layer int, key, shift ml.Tensor) (ml.Tensor, error) {
	return m.rope(ctx, key, shift, m.Layers[layer].Attention.RopeFactors), nil
}

// Forward implements model.Model. batch.Multimodal carries input embeddings that replace the
// token embedding at their positions: each entry's tensor is [Hidden, n], for n consecutive
// positions from Index. Logits come back [Vocab, len(batch.Outputs)].
func (m *Model) Forward(ctx ml.Context, batch input.Batch) (ml.Tensor, error) {
	return m.ForwardFeatures(ctx, batch, nil, false)
}

// ForwardFeatures implements models.Decoder. The image head is the output projection's rows of
// the image range (a tenth of a Qwen head).
func (m *Model) ForwardFeatures(ctx ml.Context, batch input.Batch, feats *models.Features, imageHead bool) (ml.Tensor, error) {
	positions := ctx.Input().FromInts(batch.Positions, len(batch.Positions))
	hidden := m.TokenEmbedding.Forward(ctx, batch.Inputs)
	for _, mi := range batch.Multimodal {
		e := mi.Multimodal[0].Tensor
		if e.Dim(0) != m.cfg.Hidden || mi.Index+e.Dim(1) > len(batch.Positions) {
			return nil, fmt.Errorf("input embedding [%d %d] at %d does not fit a batch of %d x %d", e.Dim(0), e.Dim(1), mi.Index, len(batch.Positions), m.cfg.Hidden)
		}
		ctx.Forward(e.Copy(ctx, hidden.View(ctx, mi.Index*hidden.Stride(1), e.Dim(0)*e.Dim(1))))
	}
	if feats != nil {
		if m.Projector == nil {
			return nil, fmt.Errorf("the model has no projector for image features")
		}
		proj := m.Projector.Forward(ctx, feats.Values, m.cfg.Projector.Activation) // [Hidden, k]
		// The projected rows either overwrite their positions or are added to them; both go back
		// with one set_rows, the added ones summed with the token embeddings first.
		at := ctx.Input().FromInts(feats.At, len(feats.At))
		base := hidden.Rows(ctx, at)
		keep := make([]float32, len(feats.At))
		for i, f := range feats.Fuse {
			if f {
				keep[i] = 1
			}
		}
		kept := base.Mul(ctx, ctx.Input().FromFloats(keep, 1, len(keep)))
		hidden = hidden.SetRows(ctx, proj.Add(ctx, kept), at)
	}

	for i := range m.Layers {
		m.Cache.SetLayer(i)
		var outputs ml.Tensor
		if i == len(m.Layers)-1 {
			outputs = batch.Outputs // the last block computes its MLP only for the rows whose logits are wanted
		}
		hidden = m.Layers[i].forward(ctx, m, hidden, positions, outputs)
	}
	hidden = m.OutputNorm.Forward(ctx, hidden, m.cfg.RMSEps)
	if imageHead && m.Output.Bias == nil {
		// The rows of whole 8-row groups around the image range: a repacked output weight
		// (ggml.Repack) stores each group interleaved, and a view must not split one.
		it, w := m.cfg.Images, m.Output.Weight
		first := int(it.First) &^ 7
		last := min((int(it.First)+it.Count+7)&^7, w.Dim(1))
		rows := w.View(ctx, first*w.Stride(1), w.Dim(0), w.Stride(1), last-first)
		logits := rows.Mulmat(ctx, hidden) // [last-first, outputs]
		if first == int(it.First) && last-first == it.Count {
			return logits, nil
		}
		return logits.View(ctx, (int(it.First)-first)*logits.Stride(0), it.Count, logits.Stride(1), logits.Dim(1)).Contiguous(ctx), nil
	}
	return m.Output.Forward(ctx, hidden), nil
}

// MatmulWeights implements models.Decoder: the blocks' projections and the output head (read
// whole, or through the image head's view of whole 8-row groups).
func (m *Model) MatmulWeights() []string {
	var names []string
	for i := range m.Layers {
		for _, w := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
			names = append(names, fmt.Sprintf("blk.%d.%s.weight", i, w))
		}
	}
	return append(names, "output.weight")
}

func (l *Layer) forward(ctx ml.Context, m *Model, hidden, positions, outputs ml.Tensor) ml.Tensor {
	residual := hidden
	hidden = l.AttentionNorm.Forward(ctx, hidden, m.cfg.RMSEps)
	hidden = l.Attention.forward(ctx, m, hidden, positions)
	if outputs != nil {
		hidden = hidden.Rows(ctx, outputs)
		residual = residual.Rows(ctx, outputs)
	}
	hidden = hidden.Add(ctx, residual)
	residual = hidden
	hidden = l.MLPNorm.Forward(ctx, hidden, m.cfg.RMSEps)
	hidden = l.MLP.Down.Forward(ctx, l.MLP.Gate.Forward(ctx, hidden).SILU(ctx, l.MLP.Up.Forward(ctx, hidden)))
	return hidden.Add(ctx, residual)
}

func (a *Attention) forward(ctx ml.Context, m *Model, hidden, positions ml.Tensor) ml.Tensor {
	n := hidden.Dim(1)
	q := a.Query.Forward(ctx, hidden).Reshape(ctx, m.cfg.HeadDim, m.cfg.Heads, n)
	k := a.Key.Forward(ctx, hidden).Reshape(ctx, m.cfg.HeadDim, m.cfg.KVHeads, n)
	v := a.Value.Forward(ctx, hidden).Reshape(ctx, m.cfg.HeadDim, m.cfg.KVHeads, n)
	q = m.rope(ctx, q, positions, a.RopeFactors)
	k = m.rope(ctx, k, positions, a.RopeFactors)
	out := nn.Attention(ctx, q, k, v, 1/math.Sqrt(float64(m.cfg.HeadDim)), m.Cache)
	return a.Output.Forward(ctx, out.Reshape(ctx, m.cfg.HeadDim*m.cfg.Heads, n))
}
