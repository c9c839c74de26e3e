package visiontok

import (
	"github.com/ollama/ollama/ml"
)

// Tensors of the VQ model are [W, H, C] (ggml's image layout: W fastest), one image at a time.

const groupNormEps = 1e-6

// ResBlock is two GroupNorm-SiLU-conv steps and the shortcut.
type ResBlock struct {
	Norm1 *GroupNorm `gguf:"norm1"`
	Conv1 *Conv2D    `gguf:"conv1"`
	Norm2 *GroupNorm `gguf:"norm2"`
	Conv2 *Conv2D    `gguf:"conv2"`
	Nin   *Conv2D    `gguf:"nin"` // 1x1 shortcut when the channel count changes
}

func (r *ResBlock) forward(ctx ml.Context, x ml.Tensor, groups int) ml.Tensor {
	h := r.Conv1.Forward(ctx, r.Norm1.Forward(ctx, x, groups, groupNormEps).SILU(ctx), 1, 1)
	h = r.Conv2.Forward(ctx, r.Norm2.Forward(ctx, h, groups, groupNormEps).SILU(ctx), 1, 1)
	if r.Nin != nil {
		x = r.Nin.Forward(ctx, x, 1, 0)
	}
	return x.Add(ctx, h)
}

// AttnBlock is single-head self-attention over the pixels.
type AttnBlock struct {
	Norm *GroupNorm `gguf:"norm"`
	Q    *Conv2D    `gguf:"q"`
	K    *Conv2D    `gguf:"k"`
	V    *Conv2D    `gguf:"v"`
	Proj *Conv2D    `gguf:"proj"`
}

// forward is single-head attention over the W*H positions, with the C channels as the head.
func (a *AttnBlock) forward(ctx ml.Context, x ml.Tensor, groups int) ml.Tensor {
	w, h, c := x.Dim(0), x.Dim(1), x.Dim(2)
	n := a.Norm.Forward(ctx, x, groups, groupNormEps)
	// [W, H, C] -> [C, 1, W*H]: channels first, as attend wants its head dimension.
	tokens := func(conv ml.Tensor) ml.Tensor {
		return conv.Reshape(ctx, w*h, c).Permute(ctx, 1, 0, 2, 3).Contiguous(ctx, c, 1, w*h)
	}
	q := tokens(a.Q.Forward(ctx, n, 1, 0))
	k := tokens(a.K.Forward(ctx, n, 1, 0))
	v := tokens(a.V.Forward(ctx, n, 1, 0))
	o := attend(ctx, q, k, v, nil) // [C, W*H]
	o = o.Permute(ctx, 1, 0, 2, 3).Contiguous(ctx, w, h, c)
	return x.Add(ctx, a.Proj.Forward(ctx, o, 1, 0))
}

// Mid is ResBlock, AttnBlock, ResBlock.
type Mid struct {
	Res0 *ResBlock  `gguf:"res0"`
	Attn *AttnBlock `gguf:"attn"`
	Res1 *ResBlock  `gguf:"res1"`
}

func (m *Mid) forward(ctx ml.Context, x ml.Tensor, groups int) ml.Tensor {
	x = m.Res0.forward(ctx, x, groups)
	x = m.Attn.forward(ctx, x, groups)
	return m.Res1.forward(ctx, x, groups)
}

// Coder is the VQ encoder ("down" levels) or decoder ("up" levels).
type Coder struct {
	ConvIn  *Conv2D    `gguf:"conv_in"`
	Levels  []Level    `gguf:"down,alt:up"`
	Mid     *Mid       `gguf:"mid"`
	NormOut *GroupNorm `gguf:"norm_out"`
	ConvOut *Conv2D    `gguf:"conv_out"`
}

// Level is one resolution: ResBlocks (each followed by an AttnBlock at the attention level),
// then a resampling conv (a stride-2 downsample in the encoder, nearest x2 + conv in the decoder).
type Level struct {
	Res      []ResBlock  `gguf:"res"`
	Attn     []AttnBlock `gguf:"attn"`
	Resample *Conv2D     `gguf:"downsample,alt:upsample"`
}

func (l *Level) blocks(ctx ml.Context, x ml.Tensor, groups int) ml.Tensor {
	for j := range l.Res {
		x = l.Res[j].forward(ctx, x, groups)
		if len(l.Attn) > 0 {
			x = l.Attn[j].forward(ctx, x, groups)
		}
	}
	return x
}

// VQ is LlamaGen's VQ-16: encoder, quant_conv, codebook, post_quant_conv, decoder.
type VQ struct {
	Encoder       *Coder    `gguf:"enc"`
	QuantConv     *Conv2D   `gguf:"quant_conv"`
	Codebook      ml.Tensor `gguf:"codebook.weight"` // [dim, size], rows l2-normalized when used
	PostQuantConv *Conv2D   `gguf:"post_quant_conv"`
	Decoder       *Coder    `gguf:"dec"`
}

// encode maps an image [S, S, 3] in [-1, 1] to the pre-quantization latent [grid, grid, dim].
func (v *VQ) encode(ctx ml.Context, x ml.Tensor, groups int) ml.Tensor {
	e := v.Encoder
	x = e.ConvIn.Forward(ctx, x, 1, 1)
	for i := range e.Levels {
		l := &e.Levels[i]
		x = l.blocks(ctx, x, groups)
		if l.Resample != nil {
			// Pad one zero column on the right and one row at the bottom, then a stride-2 conv.
			x = l.Resample.Forward(ctx, x.Pad(ctx, 1, 1, 0, 0), 2, 0)
		}
	}
	x = e.Mid.forward(ctx, x, groups)
	x = e.ConvOut.Forward(ctx, e.NormOut.Forward(ctx, x, groups, groupNormEps).SILU(ctx), 1, 1)
	return v.QuantConv.Forward(ctx, x, 1, 0)
}

// decode maps quantized latents [grid, grid, dim] (l2-normalized codebook rows) to an image
// [S, S, 3] in about [-1, 1].
func (v *VQ) decode(ctx ml.Context, z ml.Tensor, groups int) ml.Tensor {
	d := v.Decoder
	x := d.ConvIn.Forward(ctx, v.PostQuantConv.Forward(ctx, z, 1, 0), 1, 1)
	x = d.Mid.forward(ctx, x, groups)
	for i := range d.Levels {
		l := &d.Levels[i]
		x = l.blocks(ctx, x, groups)
		if l.Resample != nil {
			x = x.Interpolate(ctx, [4]int{2 * x.Dim(0), 2 * x.Dim(1), x.Dim(2), 1}, ml.SamplingModeNearest)
			x = l.Resample.Forward(ctx, x, 1, 1)
		}
	}
	return d.ConvOut.Forward(ctx, d.NormOut.Forward(ctx, x, groups, groupNormEps).SILU(ctx), 1, 1)
}

// codebookRows gathers the l2-normalized codebook rows of ids: [dim, len(ids)].
func (v *VQ) codebookRows(ctx ml.Context, ids ml.Tensor) ml.Tensor {
	return v.Codebook.Rows(ctx, ids).L2Norm(ctx, 1e-12)
}
