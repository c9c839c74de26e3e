package llm

import (
	"errors"
	"fmt"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/projector"
)

// Config is a backbone's shape and hyperparameters, read from the GGUF keys that llama.cpp
// writes for its architecture ("qwen2.block_count", "llama.rope.freq_base", ...).
type Config struct {
	Architecture  string
	Layers        int
	Hidden        int
	FFN           int
	Heads         int
	KVHeads       int
	HeadDim       int
	Vocab         int
	ContextLength int // the length the model was trained for

	RMSEps    float32
	RopeBase  float32
	RopeScale float32 // linear position scaling: positions are multiplied by 1/factor
	RopeDim   int     // rotated dimensions of each head
	RopeNeoX  bool    // rotate halves (Qwen2) rather than adjacent pairs (Llama, after the converter's permutation)
	Tied      bool    // output projection shares token_embd

	Images    ImageTokens
	Projector projector.Config // Depth 0: no projector (a text-only model)
}

// ImageTokens describes the image tokens a vocabulary-extended model adds: Count ids from First
// (one per VQ codebook entry), and the ids that open and close an image of Grid x Grid tokens.
// The zero value means a text-only model.
type ImageTokens struct {
	First int32
	Count int
	Begin int32
	End   int32
	Grid  int
}

// Enabled reports whether the model has an image-token vocabulary.
func (t ImageTokens) Enabled() bool { return t.Count > 0 }

// Contains reports whether id is one of the image tokens.
func (t ImageTokens) Contains(id int32) bool {
	return t.Count > 0 && id >= t.First && int(id-t.First) < t.Count
}

// PerImage is the number of image-token ids in one image.
func (t ImageTokens) PerImage() int { return t.Grid * t.Grid }

// The keys of the image-token extension, after the architecture prefix. A backbone has all of
// them or none.
const (
	keyImageFirst = "image.first_token_id"
	keyImageCount = "image.token_count"
	keyImageBegin = "image.begin_token_id"
	keyImageEnd   = "image.end_token_id"
	keyImageGrid  = "image.grid_size"
)

// ReadConfig reads and checks a backbone's configuration from its file's keys and the shape of
// its token embedding.
func ReadConfig(f *gguf.File) (Config, error) {
	c, err := readHyperparameters(f)
	if err != nil {
		return c, err
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return c, &gguf.FileError{Path: f.Path, Tensor: "token_embd.weight", Kind: gguf.ErrMissingTensor, Detail: "a backbone needs a 2-D token embedding"}
	}
	c.Vocab = int(emb.Shape[1])
	_, hasOutput := f.Tensor("output.weight")
	c.Tied = !hasOutput
	if c.Images, err = readImageTokens(f, c.key, c.Vocab); err != nil {
		return c, err
	}
	if c.Projector, err = projector.ReadConfig(f, c.Architecture, c.Hidden); err != nil {
		return c, err
	}
	if c.Projector.Depth > 0 && !c.Images.Enabled() {
		return c, badKey(f, c.key(keyImageCount), "the file has a projector (mm.*) but no image tokens")
	}
	return c, nil
}

func (c Config) key(name string) string { return c.Architecture + "." + name }

// readHyperparameters reads what the keys alone say: everything but the vocabulary.
func readHyperparameters(f *gguf.File) (Config, error) {
	c := Config{Architecture: f.Architecture(), RopeNeoX: f.Architecture() == "qwen2"}
	k := c.key
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
		return c, badKey(f, k("attention.head_count_kv"), "need non-zero sizes and heads (%d) divisible by kv heads (%d)", c.Heads, c.KVHeads)
	}
	if err := uint("attention.key_length", &c.HeadDim, c.Hidden/c.Heads); err != nil {
		return c, err
	}
	var valueLen int
	if err := uint("attention.value_length", &valueLen, c.HeadDim); err != nil {
		return c, err
	}
	if valueLen != c.HeadDim || c.HeadDim == 0 || c.HeadDim%2 != 0 {
		return c, badKey(f, k("attention.key_length"), "head size %d (values %d) must be even and equal for keys and values", c.HeadDim, valueLen)
	}
	if err := uint("rope.dimension_count", &c.RopeDim, c.HeadDim); err != nil {
		return c, err
	}
	if c.RopeDim > c.HeadDim || c.RopeDim%2 != 0 {
		return c, badKey(f, k("rope.dimension_count"), "%d must be even and at most the head size %d", c.RopeDim, c.HeadDim)
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

func readRopeScaling(f *gguf.File, k func(string) string, c *Config) error {
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
			return badKey(f, k("rope.scaling.factor"), "must be positive, got %g", factor)
		}
		c.RopeScale = factor
	default:
		return badKey(f, k("rope.scaling.type"), "scaling %q is not supported (none or linear; Llama-3 scaling comes as rope_freqs.weight)", kind)
	}
	return nil
}

func readImageTokens(f *gguf.File, k func(string) string, vocab int) (ImageTokens, error) {
	var t ImageTokens
	if _, ok := f.KV[k(keyImageCount)]; !ok {
		for _, name := range []string{keyImageFirst, keyImageBegin, keyImageEnd, keyImageGrid} {
			if _, ok := f.KV[k(name)]; ok {
				return t, badKey(f, k(keyImageCount), "missing, while %s is set: the image-token keys come all together", k(name))
			}
		}
		return t, nil
	}
	vals := map[string]uint32{}
	for _, name := range []string{keyImageFirst, keyImageCount, keyImageBegin, keyImageEnd, keyImageGrid} {
		v, err := gguf.Key[uint32](f, k(name))
		if err != nil {
			return t, err
		}
		vals[name] = v
	}
	t = ImageTokens{First: int32(vals[keyImageFirst]), Count: int(vals[keyImageCount]),
		Begin: int32(vals[keyImageBegin]), End: int32(vals[keyImageEnd]), Grid: int(vals[keyImageGrid])}
	switch {
	case t.Count == 0 || int(t.First)+t.Count > vocab:
		return t, badKey(f, k(keyImageCount), "ids %d..%d do not fit the vocabulary of %d", t.First, int(t.First)+t.Count-1, vocab)
	case int(t.Begin) >= vocab || int(t.End) >= vocab || t.Begin == t.End || t.Contains(t.Begin) || t.Contains(t.End):
		return t, badKey(f, k(keyImageBegin), "begin %d and end %d must be distinct ids in the vocabulary, outside the image ids", t.Begin, t.End)
	case t.Grid == 0:
		return t, badKey(f, k(keyImageGrid), "must be positive")
	}
	return t, nil
}

func badKey(f *gguf.File, key, format string, args ...any) error {
	return &gguf.FileError{Path: f.Path, Key: key, Kind: gguf.ErrFormat, Detail: fmt.Sprintf(format, args...)}
}
