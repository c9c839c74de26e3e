package llm

import (
	"fmt"

	"github.com/toklip/toklip/gguf"
)

// Description is what a model is, from its files' headers: what `toklip show` and ollama's
// /api/show tell a user (architecture, size, context, quantization, what it can do).
type Description struct {
	Architecture    string // the LLM's: qwen2, llama
	Parameters      uint64 // the LLM's weights
	ContextLength   int    // what the model was trained for
	EmbeddingLength int
	Quantization    string // the type most of the LLM's weight bytes have: F16, Q8_0, Q4_K...
	Info            Info   // what the model can do (Inspect's)
	// The TokLIP file, when the model has one.
	Vision *VisionDescription
}

// VisionDescription is the TokLIP side of a Description.
type VisionDescription struct {
	Parameters      uint64
	ImageSize       int // pixels a side
	Grid            int // VQ ids a side
	Codebook        int // VQ ids there are
	EmbeddingLength int // the ViT's width
	Quantization    string
}

// Describe reads a model's description from its files' headers (visionPath "" for a text-only
// model), loading no weights.
func Describe(lmPath, visionPath string) (Description, error) {
	h, err := readHeaders(lmPath, visionPath)
	if err != nil {
		return Description{}, err
	}
	d := Description{Architecture: h.cfg.Architecture, ContextLength: h.cfg.ContextLength, EmbeddingLength: h.cfg.Hidden,
		Info: h.info(EngineOptions{})}
	d.Parameters, d.Quantization = weights(h.lm)
	if h.vision != nil {
		vd := &VisionDescription{ImageSize: h.vc.ImageSize, Grid: h.vc.Grid, Codebook: h.vc.CodebookSize, EmbeddingLength: h.vc.Width}
		vd.Parameters, vd.Quantization = weights(h.vision)
		d.Vision = vd
	}
	return d, nil
}

// weights counts a file's parameters and names the type that most of its bytes have.
func weights(f *gguf.File) (params uint64, quantization string) {
	bytes := map[gguf.TensorType]uint64{}
	for _, t := range f.Tensors {
		params += t.Elements()
		bytes[t.Type] += t.Bytes()
	}
	var most uint64
	for typ, n := range bytes {
		if n > most || (n == most && typ.String() < quantization) {
			most, quantization = n, typ.String()
		}
	}
	return params, quantization
}

// ParameterSize writes a parameter count as ollama does: 494.03M, 1.54B.
func ParameterSize(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
