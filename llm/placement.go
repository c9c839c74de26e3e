package llm

import (
	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// Placement says where Open would put the backbone's and TokLIP's layers on devices with opts
// (`toklip system` shows it): the same sizes and rule that loading uses.
func Placement(devices []ggml.Device, lmPath, visionPath string, opts EngineOptions) (lm, vision ggml.Placement, err error) {
	if opts.Backbone.Sequences <= 0 {
		opts.Backbone.Sequences = 4 // as Open
	}
	f, err := gguf.Open(lmPath)
	if err != nil {
		return lm, vision, err
	}
	lm = ggml.Place(devices, ggml.SizesOf(f, cachePerBlock(f, opts.Backbone)), opts.Backbone.GPULayers)
	if visionPath != "" {
		v, err := gguf.Open(visionPath)
		if err != nil {
			return lm, vision, err
		}
		vision = ggml.Place(devices, ggml.SizesOf(v, 0), opts.Vision.GPULayers)
	}
	return lm, vision, nil
}
