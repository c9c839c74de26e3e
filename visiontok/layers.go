package visiontok

import (
	"math"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"

	"github.com/toklip/toklip/ggml"
)

// GroupNorm is torch.nn.GroupNorm with affine weights.
type GroupNorm struct {
	Weight ml.Tensor `gguf:"weight"`
	Bias   ml.Tensor `gguf:"bias"`
}

// Forward normalizes x [W, H, C] over groups of C/groups channels (with all their pixels), then
// applies the per-channel affine weights. The channels of a group are contiguous in ggml's
// layout, so each group is one row of a [W*H*C/groups, groups] view, which ggml_norm normalizes.
func (g *GroupNorm) Forward(ctx ml.Context, x ml.Tensor, groups int, eps float32) ml.Tensor {
	w, h, c := x.Dim(0), x.Dim(1), x.Dim(2)
	x = x.Contiguous(ctx).Reshape(ctx, w*h*c/groups, groups).LayerNorm(ctx, nil, nil, eps)
	x = x.Reshape(ctx, w, h, c)
	return x.Mul(ctx, rowOf(ctx, g.Weight, w)).Add(ctx, rowOf(ctx, g.Bias, w))
}

// rowOf repeats a per-channel vector v [C] into [w, 1, C], one image row per channel. Added to
// or multiplied with a [w, H, C] tensor it broadcasts over the rows: ggml's CPU binary ops then
// run their vector kernels along each row, where a [1, 1, C] operand takes a call per element
// (a sixth of a VQ pass's time in the profile, BENCHMARKS.md).
func rowOf(ctx ml.Context, v ml.Tensor, w int) ml.Tensor {
	c := v.Dim(0)
	return v.Reshape(ctx, 1, 1, c).Repeat4D(ctx, w, 1, c, 1)
}

// Conv2D is torch.nn.Conv2d: a [KW, KH, IC, OC] kernel and an optional bias [OC]. It is
// ollama's nn.Conv2D with the bias added by rows (rowOf).
type Conv2D struct {
	Weight ml.Tensor `gguf:"weight"`
	Bias   ml.Tensor `gguf:"bias"`
}

// Forward convolves x [W, H, IC] with the same stride and zero padding in both directions.
func (c *Conv2D) Forward(ctx ml.Context, x ml.Tensor, stride, pad int) ml.Tensor {
	t := c.Weight.Conv2D(ctx, x, stride, stride, pad, pad, 1, 1)
	if c.Bias != nil {
		t = t.Add(ctx, rowOf(ctx, c.Bias, t.Dim(0)))
	}
	return t
}

// attend is scaled dot-product attention: q [d, heads, n], k and v [d, heads, m]; mask, when not
// nil, is [m, n] and is added before the softmax. Returns [d*heads, n].
func attend(ctx ml.Context, q, k, v, mask ml.Tensor) ml.Tensor {
	d, heads, n := q.Dim(0), q.Dim(1), q.Dim(2)
	q = q.Permute(ctx, 0, 2, 1, 3)
	k = k.Permute(ctx, 0, 2, 1, 3)
	kq := k.MulmatFullPrec(ctx, q).Scale(ctx, 1/math.Sqrt(float64(d))) // [m, n, heads]
	if mask != nil {
		kq = kq.Add(ctx, mask)
	}
	kq = kq.Softmax(ctx)
	v = v.Permute(ctx, 1, 2, 0, 3).Contiguous(ctx) // [m, d, heads]
	return v.Mulmat(ctx, kq).Permute(ctx, 0, 2, 1, 3).Contiguous(ctx, d*heads, n)
}

// splitQKV cuts a fused projection [3*d*heads, n] into q, k, v of [d, heads, n].
func splitQKV(ctx ml.Context, qkv ml.Tensor, parts, heads int) []ml.Tensor {
	width := qkv.Dim(0) / parts
	n := qkv.Dim(1)
	out := make([]ml.Tensor, parts)
	for i, t := range qkv.ChunkSections(ctx, 0, repeat(width, parts)...) {
		out[i] = t.Contiguous(ctx, width/heads, heads, n)
	}
	return out
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Block is a pre-norm transformer block (the ViT's and the text tower's share the layout).
type Block struct {
	AttnNorm *nn.LayerNorm `gguf:"attn_norm"`
	QKV      *nn.Linear    `gguf:"attn_qkv"`
	Out      *nn.Linear    `gguf:"attn_out"`
	FFNNorm  *nn.LayerNorm `gguf:"ffn_norm"`
	Up       *nn.Linear    `gguf:"ffn_up"`
	Down     *nn.Linear    `gguf:"ffn_down"`
}

// forward runs a pre-norm block over x [width, n]: x += attn(LN(x)); x += mlp(LN(x)). attention
// maps the normalized input to the attention output [width, n].
func (b *Block) forward(ctx ml.Context, x ml.Tensor, eps float32, attention func(h ml.Tensor) ml.Tensor) ml.Tensor {
	x = x.Add(ctx, b.Out.Forward(ctx, attention(b.AttnNorm.Forward(ctx, x, eps))))
	h := b.FFNNorm.Forward(ctx, x, eps)
	return x.Add(ctx, b.Down.Forward(ctx, ggml.GELUTanh(ctx, b.Up.Forward(ctx, h))))
}

// selfAttention is a block's attention over its own tokens, with an optional additive mask.
func (b *Block) selfAttention(ctx ml.Context, h ml.Tensor, heads int, mask ml.Tensor) ml.Tensor {
	qkv := splitQKV(ctx, b.QKV.Forward(ctx, h), 3, heads)
	return attend(ctx, qkv[0], qkv[1], qkv[2], mask)
}

// causalMask is the additive [n, n] mask that lets position i see positions <= i.
func causalMask(ctx ml.Context, n int) ml.Tensor {
	m := make([]float32, n*n)
	inf := float32(math.Inf(-1))
	for i := range n { // query i is row i of the [keys, queries] layout
		for j := i + 1; j < n; j++ {
			m[i*n+j] = inf
		}
	}
	return ctx.Input().FromFloats(m, n, n)
}
