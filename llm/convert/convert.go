// Package convert turns a HuggingFace checkpoint folder (config.json, *.safetensors,
// tokenizer.json, tokenizer_config.json) of a Qwen2/Qwen2.5 or Llama model into a GGUF file in
// llama.cpp's layout, which toklip's backbone (and llama.cpp) loads.
//
// ollama's own converter cannot be reused: its architecture switch is closed and its converter
// interface has an unexported method.
package convert

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	_ "github.com/toklip/toklip/models/qwen2llama" // registers the architectures whose files Convert checks
)

// Options for Convert.
type Options struct {
	Type gguf.TensorType // type of the weight matrices: F32 (the zero value), F16, BF16, Q8_0, Q4_0
	Name string          // general.name; default: the config's _name_or_path or the folder's name
	// Progress, if set, is called as the tensors are written: bytes done, bytes in all.
	Progress func(done, total int64)
}

// Convert converts the checkpoint in dir to a GGUF file at out. The result is written beside out,
// opened and checked like any model, and only then renamed to out: a file that would not load
// is never left behind, nor does it replace one that was there.
func Convert(dir, out string, opts Options) error {
	cfg, err := readConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	fileType, ok := ggml.FileType(opts.Type)
	if !ok {
		return fmt.Errorf("convert: weight type %s is not supported", opts.Type)
	}
	kv, err := metadata(dir, cfg, opts, fileType)
	if err != nil {
		return err
	}
	tensors, err := mapTensors(dir, cfg, opts.Type)
	if err != nil {
		return err
	}
	if err := gguf.WriteModelProgress(out, kv, tensors, opts.Progress); err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	return nil
}

func metadata(dir string, cfg hfConfig, opts Options, fileType uint32) (map[string]any, error) {
	arch := cfg.arch()
	name := opts.Name
	if name == "" {
		name = cfg.NameOrPath
	}
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	kv := map[string]any{
		"general.architecture": arch,
		"general.name":         name,
		"general.file_type":    fileType,
	}
	a := func(k string, v any) { kv[arch+"."+k] = v }
	a("block_count", uint32(cfg.NumHiddenLayers))
	a("context_length", uint32(max(cfg.MaxPositionEmbeddings, 0)))
	a("embedding_length", uint32(cfg.HiddenSize))
	a("feed_forward_length", uint32(cfg.IntermediateSize))
	a("attention.head_count", uint32(cfg.NumAttentionHeads))
	a("attention.head_count_kv", uint32(cfg.NumKeyValueHeads))
	a("attention.layer_norm_rms_epsilon", float32(cfg.RMSNormEps))
	a("rope.freq_base", float32(cfg.RopeTheta))
	a("rope.dimension_count", uint32(cfg.headDim()))
	if cfg.HeadDim > 0 && cfg.HeadDim != cfg.HiddenSize/cfg.NumAttentionHeads {
		a("attention.key_length", uint32(cfg.HeadDim))
		a("attention.value_length", uint32(cfg.HeadDim))
	}
	if cfg.RopeScaling.kind() == "linear" {
		a("rope.scaling.type", "linear")
		a("rope.scaling.factor", float32(cfg.RopeScaling.Factor))
	}
	if it := cfg.ImageTokens; it != nil {
		a("image.first_token_id", uint32(it.FirstTokenID))
		a("image.token_count", uint32(it.TokenCount))
		a("image.begin_token_id", uint32(it.BeginTokenID))
		a("image.end_token_id", uint32(it.EndTokenID))
		a("image.grid_size", uint32(it.GridSize))
		if it.Fusion != "" {
			a("image.fusion", it.Fusion)
		}
	}
	if p := cfg.Projector; p != nil {
		a("projector.block_count", uint32(p.Depth))
		if p.Activation != "" {
			a("projector.activation", p.Activation)
		}
	}
	vocab, err := vocabKV(dir, cfg.VocabSize, cfg)
	if err != nil {
		return nil, err
	}
	for k, v := range vocab {
		kv[k] = v
	}
	return kv, nil
}

var (
	layerName     = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)
	projectorName = regexp.MustCompile(`^mm_projector\.(\d+)\.(weight|bias)$`)
	// HuggingFace names within a layer, and their llama.cpp names.
	layerTensors = map[string]string{
		"input_layernorm.weight":          "attn_norm.weight",
		"self_attn.q_proj.weight":         "attn_q.weight",
		"self_attn.q_proj.bias":           "attn_q.bias",
		"self_attn.k_proj.weight":         "attn_k.weight",
		"self_attn.k_proj.bias":           "attn_k.bias",
		"self_attn.v_proj.weight":         "attn_v.weight",
		"self_attn.v_proj.bias":           "attn_v.bias",
		"self_attn.o_proj.weight":         "attn_output.weight",
		"post_attention_layernorm.weight": "ffn_norm.weight",
		"mlp.gate_proj.weight":            "ffn_gate.weight",
		"mlp.up_proj.weight":              "ffn_up.weight",
		"mlp.down_proj.weight":            "ffn_down.weight",
	}
	globalTensors = map[string]string{
		"model.embed_tokens.weight": "token_embd.weight",
		"model.norm.weight":         "output_norm.weight",
		"lm_head.weight":            "output.weight",
	}
)

// ggufName maps a checkpoint tensor name to its GGUF name; "" means the tensor is dropped.
func ggufName(name string, cfg hfConfig) (string, error) {
	if g, ok := globalTensors[name]; ok {
		if name == "lm_head.weight" && cfg.TieWordEmbeddings {
			return "", nil // a saved copy of the tied embedding
		}
		return g, nil
	}
	if m := projectorName.FindStringSubmatch(name); m != nil {
		if cfg.Projector == nil {
			return "", fmt.Errorf("checkpoint tensor %q is a projector layer, but config.json has no \"projector\"", name)
		}
		return "mm." + m[1] + "." + m[2], nil
	}
	if m := layerName.FindStringSubmatch(name); m != nil {
		if strings.HasSuffix(m[2], "rotary_emb.inv_freq") {
			return "", nil // a buffer that older checkpoints save; recomputed from rope_theta
		}
		if i, _ := strconv.Atoi(m[1]); i >= cfg.NumHiddenLayers {
			return "", fmt.Errorf("checkpoint tensor %q belongs to layer %d, but num_hidden_layers is %d", name, i, cfg.NumHiddenLayers)
		}
		if g, ok := layerTensors[m[2]]; ok {
			return "blk." + m[1] + "." + g, nil
		}
	}
	return "", fmt.Errorf("checkpoint tensor %q is not part of a %s model", name, cfg.arch())
}

func mapTensors(dir string, cfg hfConfig, target gguf.TensorType) ([]*gguf.Tensor, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("convert: no .safetensors files in %s", dir)
	}
	var out []*gguf.Tensor
	seen := map[string]string{}
	for _, file := range files {
		list, err := readSafetensorsHeader(file)
		if err != nil {
			return nil, err
		}
		for _, st := range list {
			name, err := ggufName(st.name, cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
			}
			if name == "" {
				continue
			}
			if prev, dup := seen[name]; dup {
				return nil, fmt.Errorf("convert: %s and %s both hold %q", prev, filepath.Base(file), st.name)
			}
			seen[name] = filepath.Base(file)
			out = append(out, convertTensor(st, name, cfg, target))
		}
	}
	if cfg.RopeScaling.kind() == "llama3" {
		t, err := ggml.EncodeTensor("rope_freqs.weight", gguf.TypeF32, []uint64{uint64(cfg.headDim() / 2)}, llama3RopeFactors(cfg))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// convertTensor describes one output tensor; its data is read and converted when it is written.
func convertTensor(st stTensor, name string, cfg hfConfig, target gguf.TensorType) *gguf.Tensor {
	shape := make([]uint64, len(st.shape)) // ggml order is PyTorch order reversed
	for i, d := range st.shape {
		shape[len(shape)-1-i] = d
	}
	typ := ggml.QuantizedType(name, shape, gguf.TypeF32, target, nil)
	return &gguf.Tensor{Name: name, Type: typ, Shape: shape, Source: func() ([]byte, error) {
		values, err := st.readFloats()
		if err != nil {
			return nil, err
		}
		if cfg.arch() == "llama" {
			// llama.cpp rotates adjacent pairs for Llama, so it stores q and k with each head's
			// two halves interleaved; HuggingFace rotates halves. Reorder the rows to match.
			switch {
			case strings.HasSuffix(name, "attn_q.weight"), strings.HasSuffix(name, "attn_q.bias"):
				values = interleaveHalves(values, cfg.NumAttentionHeads, cfg.headDim())
			case strings.HasSuffix(name, "attn_k.weight"), strings.HasSuffix(name, "attn_k.bias"):
				values = interleaveHalves(values, cfg.NumKeyValueHeads, cfg.headDim())
			}
		}
		t, err := ggml.EncodeTensor(name, typ, shape, values)
		if err != nil {
			return nil, err
		}
		return t.Data, nil
	}}
}

// interleaveHalves reorders the rows of each head from [first half, second half] to pairs
// (h0, h_d/2, h1, h_d/2+1, ...). values holds heads*headDim rows of equal length.
func interleaveHalves(values []float32, heads, headDim int) []float32 {
	rowLen := len(values) / (heads * headDim)
	out := make([]float32, len(values))
	half := headDim / 2
	for h := range heads {
		for i := range half {
			for j := range 2 {
				src := (h*headDim + j*half + i) * rowLen
				dst := (h*headDim + 2*i + j) * rowLen
				copy(out[dst:dst+rowLen], values[src:src+rowLen])
			}
		}
	}
	return out
}
