package qwen2llama

import (
	"errors"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/models"
)

// readHyperparameters reads llama.cpp's keys of the architecture: what the keys alone say.
func readHyperparameters(f *gguf.File) (models.Config, error) {
	c := models.Config{Architecture: f.Architecture(), RopeNeoX: f.Architecture() == "qwen2"}
	k := c.Key
	uint := func(name string, dst *int, def ...int) error {
		var v uint32
		var err error
		if len(def) > 0 {
			v, err = gguf.KeyOr(f, k(name), uint32(def[0]))
		} else {
			v, err = gguf.Key[uint32](f, k(name))
		}
		*dst = int(v)
		return err
	}
	if err := errors.Join(
		uint("block_count", &c.Layers),
		uint("embedding_length", &c.Hidden),
		uint("feed_forward_length", &c.FFN),
		uint("attention.head_count", &c.Heads),
		uint("context_length", &c.ContextLength, 4096),
	); err != nil {
		return c, err
	}
	if err := uint("attention.head_count_kv", &c.KVHeads, c.Heads); err != nil {
		return c, err
	}
	if c.Layers == 0 || c.Hidden == 0 || c.FFN == 0 || c.Heads == 0 || c.KVHeads == 0 || c.Heads%c.KVHeads != 0 {
		return c, models.BadKey(f, k("attention.head_count_kv"), "need non-zero sizes and heads (%d) divisible by kv heads (%d)", c.Heads, c.KVHeads)
	}
	if err := uint("attention.key_length", &c.HeadDim, c.Hidden/c.Heads); err != nil {
		return c, err
	}
	var valueLen int
	if err := uint("attention.value_length", &valueLen, c.HeadDim); err != nil {
		return c, err
	}
	if valueLen != c.HeadDim || c.HeadDim == 0 || c.HeadDim%2 != 0 {
		return c, models.BadKey(f, k("attention.key_length"), "head size %d (values %d) must be even and equal for keys and values", c.HeadDim, valueLen)
	}
	if err := uint("rope.dimension_count", &c.RopeDim, c.HeadDim); err != nil {
		return c, err
	}
	if c.RopeDim > c.HeadDim || c.RopeDim%2 != 0 {
		return c, models.BadKey(f, k("rope.dimension_count"), "%d must be even and at most the head size %d", c.RopeDim, c.HeadDim)
	}
	var err error
	if c.RMSEps, err = gguf.Key[float32](f, k("attention.layer_norm_rms_epsilon")); err != nil {
		return c, err
	}
	if c.RopeBase, err = gguf.KeyOr(f, k("rope.freq_base"), float32(10000)); err != nil {
		return c, err
	}
	return c, readRopeScaling(f, k, &c)
}

func readRopeScaling(f *gguf.File, k func(string) string, c *models.Config) error {
	kind, err := gguf.KeyOr(f, k("rope.scaling.type"), "none")
	if err != nil {
		return err
	}
	c.RopeScale = 1
	switch kind {
	case "none":
	case "linear":
		factor, err := gguf.Key[float32](f, k("rope.scaling.factor"))
		if err != nil {
			return err
		}
		if factor <= 0 {
			return models.BadKey(f, k("rope.scaling.factor"), "must be positive, got %g", factor)
		}
		c.RopeScale = factor
	default:
		return models.BadKey(f, k("rope.scaling.type"), "scaling %q is not supported (none or linear; Llama-3 scaling comes as rope_freqs.weight)", kind)
	}
	return nil
}
