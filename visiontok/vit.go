package visiontok

import (
	"fmt"
	"math"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"
	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/ggml"
)

// Stem turns VQ ids into the ViT's input tokens.
type Stem struct {
	VQTable   *nn.Linear    `gguf:"vq_table"`
	VQMapping *nn.Linear    `gguf:"vq_mapping"`
	PosEmbd   *nn.Embedding `gguf:"pos_embd"`
}

// embed turns VQ ids and their positions into the ViT's input tokens [width, n]:
// vq_mapping(GELU_erf(vq_table(normalize(codebook[id])))) + pos_embed[position].
func (m *Model) embed(ctx ml.Context, ids, positions ml.Tensor) ml.Tensor {
	x := m.Stem.VQTable.Forward(ctx, m.VQ.codebookRows(ctx, ids)).GELU_ERF(ctx)
	x = m.Stem.VQMapping.Forward(ctx, x)
	return x.Add(ctx, m.Stem.PosEmbd.Forward(ctx, positions))
}

// features is the whole-image pass: per-token semantic features [width, n] of ids at positions
// 0..n-1, every block under the causal mask.
func (m *Model) features(ctx ml.Context, ids []int32) ml.Tensor {
	n := len(ids)
	positions := make([]int32, n)
	for i := range positions {
		positions[i] = int32(i)
	}
	x := m.embed(ctx, ctx.Input().FromInts(ids, n), ctx.Input().FromInts(positions, n))
	mask := causalMask(ctx, n)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		x = b.forward(ctx, x, m.cfg.LNEps, func(h ml.Tensor) ml.Tensor { return b.selfAttention(ctx, h, m.cfg.Heads, mask) })
	}
	return m.PostNorm.Forward(ctx, x, m.cfg.LNEps)
}

// Pool is timm's AttentionPoolLatent: a learned query attends to all tokens.
type Pool struct {
	Latent ml.Tensor     `gguf:"latent"`
	Q      *nn.Linear    `gguf:"q"`
	KV     *nn.Linear    `gguf:"kv"`
	Out    *nn.Linear    `gguf:"out"`
	Norm   *nn.LayerNorm `gguf:"norm"`
	Up     *nn.Linear    `gguf:"ffn_up"`
	Down   *nn.Linear    `gguf:"ffn_down"`
}

// pool is the attention-pool head: one learned query over all features [width, n], unmasked,
// then o + mlp(norm(o)). Returns the pooled embedding [width].
func (m *Model) pool(ctx ml.Context, x ml.Tensor) ml.Tensor {
	p := m.Pool
	w, heads := m.cfg.Width, m.cfg.Heads
	q := p.Q.Forward(ctx, p.Latent.Reshape(ctx, w, 1)).Reshape(ctx, w/heads, heads, 1)
	kv := splitQKV(ctx, p.KV.Forward(ctx, x), 2, heads)
	o := p.Out.Forward(ctx, attend(ctx, q, kv[0], kv[1], nil))
	return o.Add(ctx, p.Down.Forward(ctx, ggml.GELUTanh(ctx, p.Up.Forward(ctx, p.Norm.Forward(ctx, o, m.cfg.LNEps)))))
}

// Forward implements model.Model as the incremental semantic encoder: batch.Inputs are VQ ids,
// each at its position in its sequence's image; keys and values of earlier ids come from the
// KV cache, whose mask is causal. It returns the features [width, len(batch.Outputs)] of the
// positions in batch.Outputs: the same values the whole-image pass gives those positions.
func (m *Model) Forward(ctx ml.Context, batch input.Batch) (ml.Tensor, error) {
	for _, p := range batch.Positions {
		if int(p) >= m.cfg.Tokens {
			return nil, fmt.Errorf("position %d is past the %d tokens of an image", p, m.cfg.Tokens)
		}
	}
	positions := ctx.Input().FromInts(batch.Positions, len(batch.Positions))
	x := m.embed(ctx, batch.Inputs, positions)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		m.Cache.SetLayer(i)
		x = b.forward(ctx, x, m.cfg.LNEps, func(h ml.Tensor) ml.Tensor {
			qkv := splitQKV(ctx, b.QKV.Forward(ctx, h), 3, m.cfg.Heads)
			d := qkv[0].Dim(0)
			o := nn.Attention(ctx, qkv[0], qkv[1], qkv[2], 1/math.Sqrt(float64(d)), m.Cache)
			return o.Reshape(ctx, d*m.cfg.Heads, o.Dim(2))
		})
	}
	return m.PostNorm.Forward(ctx, x.Rows(ctx, batch.Outputs), m.cfg.LNEps), nil
}

var _ model.Model = (*Model)(nil)
