package visiontok

import (
	"errors"
	"fmt"
	"slices"

	"github.com/toklip/toklip/gguf"
)

// Architecture is general.architecture of a TokLIP vision-tokenizer file.
const Architecture = "toklip"

// Config is the shape of a TokLIP model, read from its file's keys.
type Config struct {
	ImageSize int // S: images are resized and cropped to S x S
	Grid      int // ids per side: S / 2^(levels-1)

	// LlamaGen VQ-16
	CodebookSize int
	CodebookDim  int
	Channels     int   // ch
	ChannelMult  []int // per resolution level
	ResBlocks    int   // per encoder level; decoder levels have one more
	ZChannels    int
	Groups       int // GroupNorm groups (32 in the released models)

	// the causal ViT and its attention-pool head
	Width  int
	Depth  int
	Heads  int
	FFN    int
	LNEps  float32
	Tokens int // positions of pos_embed: Grid * Grid

	// the SigLIP2 text tower; Text.Depth == 0 when the file has none
	Text TextConfig
}

// TextConfig is the shape of the text tower.
type TextConfig struct {
	Vocab        int
	Context      int
	Width        int
	Depth        int
	Heads        int
	FFN          int
	Canonicalize bool // lowercase and strip punctuation before tokenizing, as SigLIP2 was trained
}

// PerImage is the number of VQ ids (and semantic features) of one image.
func (c Config) PerImage() int { return c.Grid * c.Grid }

func key(name string) string { return Architecture + "." + name }

// ReadConfig reads and checks a TokLIP file's keys.
func ReadConfig(f *gguf.File) (Config, error) {
	var c Config
	u := func(name string, dst *int) error {
		v, err := gguf.Key[uint32](f, key(name))
		*dst = int(v)
		return err
	}
	if err := errors.Join(
		u("image_size", &c.ImageSize),
		u("vq.codebook_size", &c.CodebookSize),
		u("vq.embedding_length", &c.CodebookDim),
		u("vq.channels", &c.Channels),
		u("vq.res_blocks", &c.ResBlocks),
		u("vq.z_channels", &c.ZChannels),
		u("vq.groups", &c.Groups),
		u("block_count", &c.Depth),
		u("embedding_length", &c.Width),
		u("attention.head_count", &c.Heads),
		u("feed_forward_length", &c.FFN),
	); err != nil {
		return c, err
	}
	mult, err := gguf.Key[[]int32](f, key("vq.channel_mult"))
	if err != nil {
		return c, err
	}
	for _, m := range mult {
		c.ChannelMult = append(c.ChannelMult, int(m))
	}
	if c.LNEps, err = gguf.KeyOr(f, key("attention.layer_norm_epsilon"), float32(1e-6)); err != nil {
		return c, err
	}
	if kind, err := gguf.KeyOr(f, key("vq.kind"), "llamagen-vq16"); err != nil {
		return c, err
	} else if kind != "llamagen-vq16" {
		return c, bad(f, "vq.kind", "VQ tokenizer %q is not supported (llamagen-vq16)", kind)
	}

	levels := len(c.ChannelMult)
	switch {
	case levels < 2 || levels > 8 || c.ImageSize%(1<<(levels-1)) != 0:
		return c, bad(f, "vq.channel_mult", "%d levels do not divide the image size %d", levels, c.ImageSize)
	case c.Groups == 0 || c.Channels%c.Groups != 0 || slices.ContainsFunc(c.ChannelMult, func(m int) bool { return m <= 0 }):
		return c, bad(f, "vq.groups", "channels %d x %v must be positive multiples of the %d groups", c.Channels, c.ChannelMult, c.Groups)
	case c.ResBlocks == 0 || c.ZChannels == 0 || c.CodebookSize == 0 || c.CodebookDim == 0:
		return c, bad(f, "vq.res_blocks", "VQ sizes must be positive")
	case c.Depth == 0 || c.Width == 0 || c.Heads == 0 || c.Width%c.Heads != 0 || c.FFN == 0:
		return c, bad(f, "attention.head_count", "width %d must be a positive multiple of %d heads, depth and FFN positive", c.Width, c.Heads)
	}
	c.Grid = c.ImageSize >> (levels - 1)
	c.Tokens = c.Grid * c.Grid

	c.Text, err = readTextConfig(f)
	return c, err
}

func readTextConfig(f *gguf.File) (TextConfig, error) {
	var t TextConfig
	if _, ok := f.KV[key("text.block_count")]; !ok {
		return t, nil
	}
	u := func(name string, dst *int) error {
		v, err := gguf.Key[uint32](f, key(name))
		*dst = int(v)
		return err
	}
	if err := errors.Join(
		u("text.block_count", &t.Depth),
		u("text.embedding_length", &t.Width),
		u("text.attention.head_count", &t.Heads),
		u("text.feed_forward_length", &t.FFN),
		u("text.context_length", &t.Context),
		u("text.vocab_size", &t.Vocab),
	); err != nil {
		return t, err
	}
	var err error
	if t.Canonicalize, err = gguf.KeyOr(f, key("text.canonicalize"), true); err != nil {
		return t, err
	}
	if t.Depth == 0 || t.Width == 0 || t.Heads == 0 || t.Width%t.Heads != 0 || t.Context == 0 || t.Vocab == 0 {
		return t, bad(f, "text.attention.head_count", "text width %d must be a positive multiple of %d heads, with a context and a vocabulary", t.Width, t.Heads)
	}
	return t, nil
}

func bad(f *gguf.File, name, format string, args ...any) error {
	return &gguf.FileError{Path: f.Path, Key: key(name), Kind: gguf.ErrFormat, Detail: fmt.Sprintf(format, args...)}
}

// KV is the model's keys as a GGUF file holds them (ReadConfig reads them back). general.* and
// the tokenizer's keys are the writer's to add.
func (c Config) KV() map[string]any {
	mult := make([]int32, len(c.ChannelMult))
	for i, m := range c.ChannelMult {
		mult[i] = int32(m)
	}
	kv := map[string]any{
		"general.architecture":              Architecture,
		key("image_size"):                   uint32(c.ImageSize),
		key("vq.kind"):                      "llamagen-vq16",
		key("vq.codebook_size"):             uint32(c.CodebookSize),
		key("vq.embedding_length"):          uint32(c.CodebookDim),
		key("vq.channels"):                  uint32(c.Channels),
		key("vq.channel_mult"):              mult,
		key("vq.res_blocks"):                uint32(c.ResBlocks),
		key("vq.z_channels"):                uint32(c.ZChannels),
		key("vq.groups"):                    uint32(c.Groups),
		key("block_count"):                  uint32(c.Depth),
		key("embedding_length"):             uint32(c.Width),
		key("attention.head_count"):         uint32(c.Heads),
		key("feed_forward_length"):          uint32(c.FFN),
		key("attention.layer_norm_epsilon"): c.LNEps,
	}
	if t := c.Text; t.Depth > 0 {
		kv[key("text.block_count")] = uint32(t.Depth)
		kv[key("text.embedding_length")] = uint32(t.Width)
		kv[key("text.attention.head_count")] = uint32(t.Heads)
		kv[key("text.feed_forward_length")] = uint32(t.FFN)
		kv[key("text.context_length")] = uint32(t.Context)
		kv[key("text.vocab_size")] = uint32(t.Vocab)
		kv[key("text.canonicalize")] = t.Canonicalize
	}
	return kv
}
