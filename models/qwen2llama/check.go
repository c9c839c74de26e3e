package qwen2llama

import (
	"fmt"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/models"
)

// checkFile checks every tensor the model binds, with its shape (models.ReadConfig has read c
// from the same file). Norms and biases must be F32 (ggml's element-wise kernels take them only
// in F32); matrices may be any type ggml multiplies.
func checkFile(f *gguf.File, c models.Config) error {
	h, q, kv := uint64(c.Hidden), uint64(c.Heads*c.HeadDim), uint64(c.KVHeads*c.HeadDim)
	vocab, ffn := uint64(c.Vocab), uint64(c.FFN)
	f32 := gguf.TypeF32

	need := func(name string, shape []uint64, types ...gguf.TensorType) error {
		_, err := f.ExpectTensor(name, shape, types...)
		return err
	}
	maybe := func(name string, shape []uint64, types ...gguf.TensorType) error {
		_, _, err := f.OptionalTensor(name, shape, types...)
		return err
	}
	checks := []error{
		need("token_embd.weight", []uint64{h, vocab}),
		need("output_norm.weight", []uint64{h}, f32),
		maybe("output.weight", []uint64{h, vocab}),
		maybe("rope_freqs.weight", []uint64{uint64(c.RopeDim / 2)}, f32),
	}
	for i := range c.Layers {
		b := fmt.Sprintf("blk.%d.", i)
		checks = append(checks,
			need(b+"attn_norm.weight", []uint64{h}, f32),
			need(b+"attn_q.weight", []uint64{h, q}),
			need(b+"attn_k.weight", []uint64{h, kv}),
			need(b+"attn_v.weight", []uint64{h, kv}),
			maybe(b+"attn_q.bias", []uint64{q}, f32),
			maybe(b+"attn_k.bias", []uint64{kv}, f32),
			maybe(b+"attn_v.bias", []uint64{kv}, f32),
			need(b+"attn_output.weight", []uint64{q, h}),
			need(b+"ffn_norm.weight", []uint64{h}, f32),
			need(b+"ffn_gate.weight", []uint64{h, ffn}),
			need(b+"ffn_up.weight", []uint64{h, ffn}),
			need(b+"ffn_down.weight", []uint64{ffn, h}),
		)
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}
