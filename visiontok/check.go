package visiontok

import (
	"fmt"
	"sort"

	"github.com/toklip/toklip/gguf"
)

// Tensors lists every tensor a TokLIP file of this shape holds, with its ggml shape (PyTorch's
// reversed), and whether it must stay F32. The checker and the converter share it.
func (c Config) Tensors() map[string]TensorSpec {
	out := map[string]TensorSpec{}
	f32 := func(name string, shape ...int) { out[name] = TensorSpec{Shape: u64(shape), F32: true} }
	mat := func(name string, shape ...int) { out[name] = TensorSpec{Shape: u64(shape)} }
	conv := func(p string, k, cin, cout int) { f32(p+".weight", k, k, cin, cout); f32(p+".bias", cout) }
	norm := func(p string, ch int) { f32(p+".weight", ch); f32(p+".bias", ch) }
	res := func(p string, cin, cout int) {
		norm(p+".norm1", cin)
		conv(p+".conv1", 3, cin, cout)
		norm(p+".norm2", cout)
		conv(p+".conv2", 3, cout, cout)
		if cin != cout {
			conv(p+".nin", 1, cin, cout)
		}
	}
	attn := func(p string, ch int) {
		norm(p+".norm", ch)
		for _, m := range []string{"q", "k", "v", "proj"} {
			conv(p+"."+m, 1, ch, ch)
		}
	}
	mid := func(p string, ch int) { res(p+".res0", ch, ch); attn(p+".attn", ch); res(p+".res1", ch, ch) }

	levels := len(c.ChannelMult)
	top := c.Channels * c.ChannelMult[levels-1]
	// Encoder: levels in order, attention in the last, downsampling after all but the last.
	conv("v.enc.conv_in", 3, 3, c.Channels)
	cin := c.Channels
	for l, m := range c.ChannelMult {
		for j := range c.ResBlocks {
			res(fmt.Sprintf("v.enc.down.%d.res.%d", l, j), cin, c.Channels*m)
			cin = c.Channels * m
			if l == levels-1 {
				attn(fmt.Sprintf("v.enc.down.%d.attn.%d", l, j), cin)
			}
		}
		if l != levels-1 {
			conv(fmt.Sprintf("v.enc.down.%d.downsample", l), 3, cin, cin)
		}
	}
	mid("v.enc.mid", top)
	norm("v.enc.norm_out", top)
	conv("v.enc.conv_out", 3, top, c.ZChannels)
	conv("v.quant_conv", 1, c.ZChannels, c.CodebookDim)
	f32("v.codebook.weight", c.CodebookDim, c.CodebookSize)
	conv("v.post_quant_conv", 1, c.CodebookDim, c.ZChannels)
	// Decoder: in execution order (deepest level first), one more ResBlock per level, attention in
	// the first, upsampling after all but the last.
	conv("v.dec.conv_in", 3, c.ZChannels, top)
	mid("v.dec.mid", top)
	cin = top
	for i := range levels {
		out := c.Channels * c.ChannelMult[levels-1-i]
		for j := range c.ResBlocks + 1 {
			res(fmt.Sprintf("v.dec.up.%d.res.%d", i, j), cin, out)
			cin = out
			if i == 0 {
				attn(fmt.Sprintf("v.dec.up.%d.attn.%d", i, j), cin)
			}
		}
		if i != levels-1 {
			conv(fmt.Sprintf("v.dec.up.%d.upsample", i), 3, cin, cin)
		}
	}
	norm("v.dec.norm_out", cin)
	conv("v.dec.conv_out", 3, cin, 3)

	// The ViT: stem, blocks, final norm, attention pool.
	w := c.Width
	f32("v.vq_table.weight", c.CodebookDim, 4*w)
	f32("v.vq_table.bias", 4*w)
	mat("v.vq_mapping.weight", 4*w, w)
	f32("v.vq_mapping.bias", w)
	f32("v.pos_embd.weight", w, c.Tokens)
	block := func(p string, w, ffn int) {
		norm(p+".attn_norm", w)
		mat(p+".attn_qkv.weight", w, 3*w)
		f32(p+".attn_qkv.bias", 3*w)
		mat(p+".attn_out.weight", w, w)
		f32(p+".attn_out.bias", w)
		norm(p+".ffn_norm", w)
		mat(p+".ffn_up.weight", w, ffn)
		f32(p+".ffn_up.bias", ffn)
		mat(p+".ffn_down.weight", ffn, w)
		f32(p+".ffn_down.bias", w)
	}
	for i := range c.Depth {
		block(fmt.Sprintf("blk.%d", i), w, c.FFN)
	}
	norm("v.post_norm", w)
	f32("v.pool.latent", w)
	for _, m := range []string{"q", "out"} {
		mat("v.pool."+m+".weight", w, w)
		f32("v.pool."+m+".bias", w)
	}
	mat("v.pool.kv.weight", w, 2*w)
	f32("v.pool.kv.bias", 2*w)
	norm("v.pool.norm", w)
	mat("v.pool.ffn_up.weight", w, c.FFN)
	f32("v.pool.ffn_up.bias", c.FFN)
	mat("v.pool.ffn_down.weight", c.FFN, w)
	f32("v.pool.ffn_down.bias", w)

	if t := c.Text; t.Depth > 0 {
		mat("s.token_embd.weight", t.Width, t.Vocab)
		f32("s.pos_embd.weight", t.Width, t.Context)
		for i := range t.Depth {
			block(fmt.Sprintf("s.blk.%d", i), t.Width, t.FFN)
		}
		norm("s.final_norm", t.Width)
		mat("s.proj.weight", t.Width, t.Width)
		f32("s.proj.bias", t.Width)
		f32("s.logit_scale", 1)
		f32("s.logit_bias", 1)
	}
	return out
}

// TensorSpec is one expected tensor: its ggml shape, and whether it must stay F32 (the VQ model,
// norms and biases: ggml's convolutions and element-wise kernels take them only in F32, and the
// VQ ids depend on its precision).
type TensorSpec struct {
	Shape []uint64
	F32   bool
}

func u64(s []int) []uint64 {
	out := make([]uint64, len(s))
	for i, v := range s {
		out[i] = uint64(v)
	}
	return out
}

// checkFile is the gguf.Checker for TokLIP files: the keys, then every tensor with its shape and
// type, and nothing else.
func checkFile(f *gguf.File) error {
	c, err := ReadConfig(f)
	if err != nil {
		return err
	}
	specs := c.Tensors()
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := specs[n]
		var types []gguf.TensorType
		if s.F32 {
			types = []gguf.TensorType{gguf.TypeF32}
		}
		if _, err := f.ExpectTensor(n, s.Shape, types...); err != nil {
			return err
		}
	}
	for _, t := range f.Tensors {
		if _, ok := specs[t.Name]; !ok {
			return &gguf.FileError{Path: f.Path, Tensor: t.Name, Kind: gguf.ErrFormat, Detail: "not a tensor of a TokLIP model of this shape"}
		}
	}
	return nil
}
