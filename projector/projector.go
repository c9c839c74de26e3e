// Package projector is the MLP that maps TokLIP's per-token features into an LLM's embedding
// space, LLaVA style: Linear, activation, Linear (depth and activation come from the model file).
// Its weights live in the LLM's GGUF under mm.N (N counts the linear layers), with these keys:
//
//	<arch>.projector.block_count   number of linear layers (2 in LLaVA-1.5's mlp2x_gelu)
//	<arch>.projector.activation    "gelu" (exact, erf), "gelu_tanh" or "silu"
//	<arch>.image.fusion            "semantic" when generated image ids also feed their projected
//	                               TokLIP feature to the LLM, "none" (the default) otherwise
package projector

import (
	"fmt"
	"slices"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// Config is the projector's shape, from the model file.
type Config struct {
	Depth      int    // linear layers; 0 means the model has no projector
	Activation string // between the layers
	InputWidth int    // TokLIP's feature width (1152)
	Fusion     bool   // semantic fusion of generated image ids
}

// Activations are the accepted values of <arch>.projector.activation.
var Activations = []string{"gelu", "gelu_tanh", "silu"}

// ReadConfig reads the projector keys of a file whose architecture is arch, and checks its tensors
// against the LLM's hidden size.
func ReadConfig(f *gguf.File, arch string, hidden int) (Config, error) {
	var c Config
	w, ok := f.Tensor("mm.0.weight")
	if !ok {
		return c, nil
	}
	depth, err := gguf.KeyOr(f, arch+".projector.block_count", uint32(2))
	if err != nil {
		return c, err
	}
	if c.Activation, err = gguf.KeyOr(f, arch+".projector.activation", "gelu"); err != nil {
		return c, err
	}
	fusion, err := gguf.KeyOr(f, arch+".image.fusion", "none")
	if err != nil {
		return c, err
	}
	switch fusion {
	case "none":
	case "semantic":
		c.Fusion = true
	default:
		return c, keyErr(f, arch+".image.fusion", "fusion %q is not one of none, semantic", fusion)
	}
	if !slices.Contains(Activations, c.Activation) {
		return c, keyErr(f, arch+".projector.activation", "activation %q is not one of %v", c.Activation, Activations)
	}
	c.Depth, c.InputWidth = int(depth), int(w.Shape[0])
	if c.Depth < 1 || c.Depth > 8 {
		return c, keyErr(f, arch+".projector.block_count", "depth %d is outside 1..8", c.Depth)
	}
	in := uint64(c.InputWidth)
	for i := range c.Depth {
		p := fmt.Sprintf("mm.%d.", i)
		if _, err := f.ExpectTensor(p+"weight", []uint64{in, uint64(hidden)}); err != nil {
			return c, err
		}
		if _, err := f.ExpectTensor(p+"bias", []uint64{uint64(hidden)}, gguf.TypeF32); err != nil {
			return c, err
		}
		in = uint64(hidden)
	}
	return c, nil
}

func keyErr(f *gguf.File, key, format string, args ...any) error {
	return &gguf.FileError{Path: f.Path, Key: key, Kind: gguf.ErrFormat, Detail: fmt.Sprintf(format, args...)}
}

// MLP is the projector's weights, bound from mm.0, mm.1, ...
type MLP struct {
	Layers []nn.Linear `gguf:"mm"`
}

// New sizes an MLP for binding.
func New(c Config) *MLP {
	if c.Depth == 0 {
		return nil
	}
	return &MLP{Layers: make([]nn.Linear, c.Depth)}
}

// Forward maps features [InputWidth, n] to [hidden, n].
func (m *MLP) Forward(ctx ml.Context, x ml.Tensor, activation string) ml.Tensor {
	for i := range m.Layers {
		if i > 0 {
			switch activation {
			case "gelu":
				x = x.GELU_ERF(ctx)
			case "gelu_tanh":
				x = ggml.GELUTanh(ctx, x)
			case "silu":
				x = x.SILU(ctx)
			}
		}
		x = m.Layers[i].Forward(ctx, x)
	}
	return x
}
