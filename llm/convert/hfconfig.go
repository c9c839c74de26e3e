package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// hfConfig is the part of a HuggingFace config.json that the supported architectures use.
type hfConfig struct {
	Architectures         []string        `json:"architectures"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      int             `json:"num_key_value_heads"`
	HeadDim               int             `json:"head_dim"`
	RMSNormEps            float64         `json:"rms_norm_eps"`
	RopeTheta             float64         `json:"rope_theta"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	VocabSize             int             `json:"vocab_size"`
	TieWordEmbeddings     bool            `json:"tie_word_embeddings"`
	MLPBias               bool            `json:"mlp_bias"`
	RopeScaling           *ropeScaling    `json:"rope_scaling"`
	RawBOS                json.RawMessage `json:"bos_token_id"`
	RawEOS                json.RawMessage `json:"eos_token_id"`
	NameOrPath            string          `json:"_name_or_path"`

	// ImageTokens is toklip's extension for vocabulary-extended models: the image-token ids the
	// LLM was trained with. It is not a HuggingFace key; training scripts write it.
	ImageTokens *struct {
		FirstTokenID int    `json:"first_token_id"`
		TokenCount   int    `json:"token_count"`
		BeginTokenID int    `json:"begin_token_id"`
		EndTokenID   int    `json:"end_token_id"`
		GridSize     int    `json:"grid_size"`
		Fusion       string `json:"fusion"` // "semantic" or "none" (the default)
	} `json:"image_tokens"`

	// Projector is toklip's extension too: the MLP from TokLIP features to input embeddings,
	// whose linear layers the checkpoint holds as mm_projector.N.{weight,bias}.
	Projector *struct {
		Depth      int    `json:"depth"`
		Activation string `json:"activation"`
	} `json:"projector"`

	BOSTokenID, EOSTokenID *int `json:"-"`
}

type ropeScaling struct {
	Type           string  `json:"type"`
	RopeType       string  `json:"rope_type"`
	Factor         float64 `json:"factor"`
	LowFreqFactor  float64 `json:"low_freq_factor"`
	HighFreqFactor float64 `json:"high_freq_factor"`
	OriginalMax    int     `json:"original_max_position_embeddings"`
}

func (s *ropeScaling) kind() string {
	if s == nil {
		return ""
	}
	if s.RopeType != "" {
		return s.RopeType
	}
	return s.Type
}

var hfArchitectures = map[string]string{
	"Qwen2ForCausalLM": "qwen2",
	"LlamaForCausalLM": "llama",
}

// arch is the GGUF architecture for the checkpoint, or "" if it is not supported.
func (c hfConfig) arch() string {
	if len(c.Architectures) != 1 {
		return ""
	}
	return hfArchitectures[c.Architectures[0]]
}

func (c hfConfig) headDim() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	return c.HiddenSize / c.NumAttentionHeads
}

func readConfig(path string) (hfConfig, error) {
	var c hfConfig
	if err := readJSON(path, &c); err != nil {
		return c, err
	}
	if c.arch() == "" {
		return c, fmt.Errorf("config.json: architectures %v: toklip converts Qwen2ForCausalLM and LlamaForCausalLM", c.Architectures)
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	switch {
	case c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers <= 0 || c.VocabSize <= 0:
		return c, fmt.Errorf("config.json: hidden_size, intermediate_size, num_hidden_layers and vocab_size must be positive")
	case c.NumAttentionHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return c, fmt.Errorf("config.json: num_attention_heads %d must be a positive multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.RMSNormEps <= 0:
		return c, fmt.Errorf("config.json: rms_norm_eps must be positive")
	case c.MLPBias:
		return c, fmt.Errorf("config.json: mlp_bias is not supported")
	}
	switch c.RopeScaling.kind() {
	case "", "default", "linear", "llama3":
	default:
		return c, fmt.Errorf("config.json: rope_scaling type %q is not supported (linear, llama3)", c.RopeScaling.kind())
	}
	var err error
	if c.BOSTokenID, err = firstID(c.RawBOS); err != nil {
		return c, fmt.Errorf("config.json: bos_token_id: %w", err)
	}
	if c.EOSTokenID, err = firstID(c.RawEOS); err != nil {
		return c, fmt.Errorf("config.json: eos_token_id: %w", err)
	}
	return c, nil
}

// firstID reads a token id given as a number, a list of numbers (the first is taken) or null.
func firstID(raw json.RawMessage) (*int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return &one, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 {
		return nil, fmt.Errorf("want a number or a list of numbers, got %s", raw)
	}
	return &many[0], nil
}

// llama3RopeFactors are the per-frequency divisors of Llama-3's rope scaling, as llama.cpp stores
// them in rope_freqs.weight: 1 for short wavelengths, factor for long ones, a smooth blend between.
func llama3RopeFactors(c hfConfig) []float32 {
	s := c.RopeScaling
	low, high := s.LowFreqFactor, s.HighFreqFactor
	if low == 0 {
		low = 1
	}
	if high == 0 {
		high = 4
	}
	old := float64(s.OriginalMax)
	if old == 0 {
		old = 8192
	}
	dim := c.headDim()
	out := make([]float32, dim/2)
	for i := range out {
		freq := 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(dim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < old/high:
			out[i] = 1
		case wavelen > old/low:
			out[i] = float32(s.Factor)
		default:
			smooth := (old/wavelen - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/s.Factor + smooth))
		}
	}
	return out
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}
