// Package convert turns an official TokLIP training checkpoint (a torch.save zip holding
// state_dict, optimizer state and numpy objects) into a TokLIP GGUF file for visiontok.
//
// It keeps visual.trunk.* (without the unused patch_embed and the codebook_used buffer), text.*,
// logit_scale and logit_bias. Every other key is an error that names it: the official loader
// skips unknown and missing keys silently, which is how a wrong config degrades a model unseen.
package convert

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/tokenizer"
	"github.com/toklip/toklip/visiontok"
)

// Options for Convert.
type Options struct {
	Type      gguf.TensorType // ViT and text-tower matrices: F32 (the zero value), F16 or Q8_0; the VQ model stays F32
	Tokenizer string          // the text tower's tokenizer.json (SigLIP2's Gemma tokenizer), with its tokenizer_config.json
	Heads     int             // attention heads of the ViT and the text tower; default 16 (So400m)
	Groups    int             // GroupNorm groups of the VQ model; default 32 (LlamaGen)
	Name      string          // general.name; default the checkpoint's "name" or file name
	// Progress, if set, is called as the tensors are written: bytes done, bytes in all.
	Progress func(done, total int64)
}

// Convert converts the checkpoint at src to a GGUF file at out. The file is written beside out,
// checked as visiontok.Load checks it, and only then renamed.
func Convert(src, out string, opts Options) error {
	if opts.Heads == 0 {
		opts.Heads = 16
	}
	if opts.Groups == 0 {
		opts.Groups = 32
	}
	switch opts.Type {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0:
	default:
		return fmt.Errorf("convert: type %s is not offered for TokLIP (F32, F16, Q8_0)", opts.Type)
	}
	ck, err := openCheckpoint(src)
	if err != nil {
		return err
	}
	defer ck.Close()
	sd, err := ck.stateDict()
	if err != nil {
		return err
	}
	cfg, err := inferConfig(src, sd, opts)
	if err != nil {
		return err
	}
	tensors, err := mapTensors(ck, sd, cfg, opts.Type)
	if err != nil {
		return err
	}
	kv, err := metadata(src, cfg, opts)
	if err != nil {
		return err
	}
	if err := gguf.WriteModelProgress(out, kv, tensors, opts.Progress); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

const (
	maxLevels  = 8 // VQ encoder levels: LlamaGen's VQ-16 has 5 (downsampling 16)
	vqPrefix   = "visual.trunk.vq."
	codebook   = vqPrefix + "quantize.embedding.weight"
	textPrefix = "text."
)

// inferConfig reads the model's shape from its tensors: the checkpoint holds no config.
func inferConfig(src string, sd map[string]*tensorRef, opts Options) (visiontok.Config, error) {
	var c visiontok.Config
	// Every tensor read here is a matrix, a convolution or a position table: checked so, and
	// non-empty, before its dimensions are indexed or divided by (a hostile checkpoint's
	// shapes are only numbers from its pickle).
	shape := func(k string) ([]int, error) {
		t, ok := sd[k]
		if !ok {
			return nil, fmt.Errorf("%s: the checkpoint has no %q", src, k)
		}
		if len(t.shape) < 2 || slices.Contains(t.shape, 0) {
			return nil, fmt.Errorf("%s: %q has shape %v; a TokLIP weight there has 2 or more dimensions, none empty", src, k, t.shape)
		}
		return t.shape, nil
	}
	for k := range sd {
		if strings.HasPrefix(k, vqPrefix+"encoder.down.") || strings.Contains(k, "model_ema") {
			return c, fmt.Errorf("%s: this is TokLIP-XL, whose IBQ tokenizer (262144 x 256 codebook, taming-style keys such as %q) toklip does not run; use TokLIP-S (256 px) or TokLIP-L (384 px)", src, k)
		}
	}
	cb, err := shape(codebook)
	if err != nil {
		return c, err
	}
	if len(cb) != 2 || cb[1] != 8 {
		return c, fmt.Errorf("%s: codebook %v is not LlamaGen VQ-16's [16384 8] layout (TokLIP-XL's IBQ is not supported)", src, cb)
	}
	c.CodebookSize, c.CodebookDim = cb[0], cb[1]
	in, err := shape(vqPrefix + "encoder.conv_in.weight")
	if err != nil {
		return c, err
	}
	c.Channels = in[0]
	c.Groups = opts.Groups
	levels, res := countIndex(sd, vqPrefix+"encoder.conv_blocks."), countIndex(sd, vqPrefix+"encoder.conv_blocks.0.res.")
	if levels == 0 || res == 0 {
		return c, fmt.Errorf("%s: no VQ encoder levels (%sencoder.conv_blocks.N.res.M)", src, vqPrefix)
	}
	if levels > maxLevels {
		return c, fmt.Errorf("%s: %d VQ encoder levels; LlamaGen's VQ-16 has 5, and toklip reads at most %d", src, levels, maxLevels)
	}
	c.ResBlocks = res
	for l := range levels {
		s, err := shape(fmt.Sprintf("%sencoder.conv_blocks.%d.res.0.conv1.weight", vqPrefix, l))
		if err != nil {
			return c, err
		}
		c.ChannelMult = append(c.ChannelMult, s[0]/c.Channels)
	}
	zc, err := shape(vqPrefix + "encoder.conv_out.weight")
	if err != nil {
		return c, err
	}
	c.ZChannels = zc[0]
	pos, err := shape("visual.trunk.pos_embed")
	if err != nil {
		return c, err
	}
	if len(pos) != 3 {
		return c, fmt.Errorf("%s: pos_embed %v is not a [1, tokens, width] table", src, pos)
	}
	grid := int(math.Round(math.Sqrt(float64(pos[1]))))
	if grid*grid != pos[1] {
		return c, fmt.Errorf("%s: pos_embed %v is not a square grid of tokens", src, pos)
	}
	c.Grid, c.Tokens, c.Width = grid, pos[1], pos[2]
	c.ImageSize = grid << (levels - 1)
	c.Depth = countIndex(sd, "visual.trunk.blocks.")
	fc1, err := shape("visual.trunk.blocks.0.mlp.fc1.weight")
	if err != nil {
		return c, err
	}
	c.FFN, c.Heads, c.LNEps = fc1[0], opts.Heads, 1e-6
	if c.Width%c.Heads != 0 {
		return c, fmt.Errorf("%s: width %d is not divisible into %d heads (set the heads option)", src, c.Width, c.Heads)
	}

	if _, ok := sd[textPrefix+"token_embedding.weight"]; ok {
		emb, err := shape(textPrefix + "token_embedding.weight")
		if err != nil {
			return c, err
		}
		t := &c.Text
		t.Vocab, t.Width = emb[0], emb[1]
		ctxShape, err := shape(textPrefix + "positional_embedding")
		if err != nil {
			return c, err
		}
		t.Context = ctxShape[0]
		t.Depth = countIndex(sd, textPrefix+"transformer.resblocks.")
		fc, err := shape(textPrefix + "transformer.resblocks.0.mlp.c_fc.weight")
		if err != nil {
			return c, err
		}
		t.FFN, t.Heads, t.Canonicalize = fc[0], opts.Heads, true
	}
	return c, nil
}

// countIndex counts the consecutive indices N of keys prefix+"N.".
func countIndex(sd map[string]*tensorRef, prefix string) int {
	seen := map[int]bool{}
	for k := range sd {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if i, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0]); err == nil {
				seen[i] = true
			}
		}
	}
	n := 0
	for seen[n] {
		n++
	}
	return n
}

// A rename rule maps a checkpoint key (regexp) to a GGUF name (template with $1...).
type rule struct {
	re   *regexp.Regexp
	name string
}

func rules(pairs ...string) []rule {
	out := make([]rule, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, rule{regexp.MustCompile("^" + pairs[i] + "$"), pairs[i+1]})
	}
	return out
}

// The names of ../shared/reference/toklip.md section 3.3, and where they go. "" drops a key.
var renames = rules(
	`visual\.trunk\.patch_embed\..*`, "",
	`visual\.trunk\.vq\.quantize\.codebook_used`, "",
	`visual\.trunk\.vq\.quantize\.embedding\.weight`, "v.codebook.weight",
	`visual\.trunk\.vq\.(quant_conv|post_quant_conv)\.(weight|bias)`, "v.$1.$2",
	`visual\.trunk\.vq\.(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(weight|bias)`, "v.$1.$2.$3",
	`visual\.trunk\.vq\.(encoder|decoder)\.mid\.0\.(\w+)\.(weight|bias)`, "v.$1.mid.res0.$2.$3",
	`visual\.trunk\.vq\.(encoder|decoder)\.mid\.1\.(\w+)\.(weight|bias)`, "v.$1.mid.attn.$2.$3",
	`visual\.trunk\.vq\.(encoder|decoder)\.mid\.2\.(\w+)\.(weight|bias)`, "v.$1.mid.res1.$2.$3",
	`visual\.trunk\.vq\.encoder\.conv_blocks\.(\d+)\.(res|attn)\.(\d+)\.(\w+)\.(weight|bias)`, "v.encoder.down.$1.$2.$3.$4.$5",
	`visual\.trunk\.vq\.decoder\.conv_blocks\.(\d+)\.(res|attn)\.(\d+)\.(\w+)\.(weight|bias)`, "v.decoder.up.$1.$2.$3.$4.$5",
	`visual\.trunk\.vq\.encoder\.conv_blocks\.(\d+)\.downsample\.conv\.(weight|bias)`, "v.encoder.down.$1.downsample.$2",
	`visual\.trunk\.vq\.decoder\.conv_blocks\.(\d+)\.upsample\.conv\.(weight|bias)`, "v.decoder.up.$1.upsample.$2",
	`visual\.trunk\.pos_embed`, "v.pos_embd.weight",
	`visual\.trunk\.(vq_table|vq_mapping)\.(weight|bias)`, "v.$1.$2",
	`visual\.trunk\.blocks\.(\d+)\.norm1\.(weight|bias)`, "blk.$1.attn_norm.$2",
	`visual\.trunk\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)`, "blk.$1.attn_qkv.$2",
	`visual\.trunk\.blocks\.(\d+)\.attn\.proj\.(weight|bias)`, "blk.$1.attn_out.$2",
	`visual\.trunk\.blocks\.(\d+)\.norm2\.(weight|bias)`, "blk.$1.ffn_norm.$2",
	`visual\.trunk\.blocks\.(\d+)\.mlp\.fc1\.(weight|bias)`, "blk.$1.ffn_up.$2",
	`visual\.trunk\.blocks\.(\d+)\.mlp\.fc2\.(weight|bias)`, "blk.$1.ffn_down.$2",
	`visual\.trunk\.norm\.(weight|bias)`, "v.post_norm.$1",
	`visual\.trunk\.attn_pool\.latent`, "v.pool.latent",
	`visual\.trunk\.attn_pool\.(q|kv|norm)\.(weight|bias)`, "v.pool.$1.$2",
	`visual\.trunk\.attn_pool\.proj\.(weight|bias)`, "v.pool.out.$1",
	`visual\.trunk\.attn_pool\.mlp\.fc1\.(weight|bias)`, "v.pool.ffn_up.$1",
	`visual\.trunk\.attn_pool\.mlp\.fc2\.(weight|bias)`, "v.pool.ffn_down.$1",
	`text\.token_embedding\.weight`, "s.token_embd.weight",
	`text\.positional_embedding`, "s.pos_embd.weight",
	`text\.transformer\.resblocks\.(\d+)\.ln_1\.(weight|bias)`, "s.blk.$1.attn_norm.$2",
	`text\.transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)`, "s.blk.$1.attn_qkv.$2",
	`text\.transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)`, "s.blk.$1.attn_out.$2",
	`text\.transformer\.resblocks\.(\d+)\.ln_2\.(weight|bias)`, "s.blk.$1.ffn_norm.$2",
	`text\.transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)`, "s.blk.$1.ffn_up.$2",
	`text\.transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)`, "s.blk.$1.ffn_down.$2",
	`text\.ln_final\.(weight|bias)`, "s.final_norm.$1",
	`text\.text_projection\.(weight|bias)`, "s.proj.$1",
	`(logit_scale|logit_bias)`, "s.$1",
)

// ggufName maps a checkpoint key; ok is false for a key that belongs to no TokLIP tensor.
func ggufName(key string) (name string, ok bool) {
	for _, r := range renames {
		if m := r.re.FindStringSubmatchIndex(key); m != nil {
			name = string(r.re.ExpandString(nil, r.name, key, m))
			// The short names visiontok binds: v.encoder -> v.enc, proj_out -> proj, nin_shortcut -> nin.
			name = strings.NewReplacer("v.encoder.", "v.enc.", "v.decoder.", "v.dec.", ".proj_out.", ".proj.", ".nin_shortcut.", ".nin.").Replace(name)
			return name, true
		}
	}
	return "", false
}

func mapTensors(ck *checkpoint, sd map[string]*tensorRef, cfg visiontok.Config, target gguf.TensorType) ([]*gguf.Tensor, error) {
	specs := cfg.Tensors()
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*gguf.Tensor
	seen := map[string]bool{}
	for _, k := range keys {
		name, ok := ggufName(k)
		if !ok {
			return nil, fmt.Errorf("%s: state_dict key %q is not part of a TokLIP model", ck.path, k)
		}
		if name == "" {
			continue
		}
		spec, ok := specs[name]
		if !ok {
			return nil, fmt.Errorf("%s: state_dict key %q (%s) does not fit a model of this shape", ck.path, k, name)
		}
		t := sd[k]
		if t.elements() != int(gguf.TensorInfo{Shape: spec.Shape}.Elements()) {
			return nil, fmt.Errorf("%s: state_dict key %q has shape %v, want %d values (%v in ggml order)", ck.path, k, t.shape, gguf.TensorInfo{Shape: spec.Shape}.Elements(), spec.Shape)
		}
		typ := gguf.TypeF32
		if !spec.F32 && len(spec.Shape) >= 2 && spec.Shape[0]%target.BlockSize() == 0 {
			typ = target
		}
		seen[name] = true
		key, shape := k, spec.Shape
		out = append(out, &gguf.Tensor{Name: name, Type: typ, Shape: shape, Source: func() ([]byte, error) {
			values, err := ck.floats(key, t)
			if err != nil {
				return nil, err
			}
			enc, err := ggml.EncodeTensor(name, typ, shape, values)
			if err != nil {
				return nil, err
			}
			return enc.Data, nil
		}})
	}
	var missing []string
	for name := range specs {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%s: the state_dict lacks %d tensors of a model of this shape, first %s", ck.path, len(missing), missing[0])
	}
	return out, nil
}

func metadata(src string, c visiontok.Config, opts Options) (map[string]any, error) {
	kv := c.KV()
	kv["general.name"] = opts.Name
	if opts.Name == "" {
		kv["general.name"] = strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	}
	kv["general.file_type"], _ = ggml.FileType(opts.Type)
	if t := c.Text; t.Depth > 0 {
		if opts.Tokenizer == "" {
			return nil, errors.New("convert: the checkpoint has a text tower: give its tokenizer.json (SigLIP2's Gemma tokenizer), whose tokenizer_config.json beside it says how text is padded")
		}
		tok, err := tokenizer.FromJSON(opts.Tokenizer)
		if err != nil {
			return nil, err
		}
		tkv, err := tok.Metadata(t.Vocab)
		if err != nil {
			return nil, err
		}
		for k, v := range tkv {
			kv[k] = v
		}
	}
	return kv, nil
}
