package llm

import (
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/models"
	"github.com/toklip/toklip/visiontok"
)

// Inspect says, from the files' headers alone, what Open with opts would load: what the model
// can do and the memory it would take (Info.Memory), without loading a weight. A scheduler
// decides with it whether a model fits before it loads one.
func Inspect(lmPath, visionPath string, opts EngineOptions) (Info, error) {
	if opts.Backbone.Sequences <= 0 {
		opts.Backbone.Sequences = 4 // as Open
	}
	var in Info
	f, err := gguf.Open(lmPath)
	if err != nil {
		return in, err
	}
	cfg, err := models.ReadConfig(f)
	if err != nil {
		return in, err
	}
	o := withDefaults(opts.Backbone, cfg)
	in.Vocab, in.Sequences, in.ContextLength = cfg.Vocab, o.Sequences, o.ContextLength
	in.FileBytes, in.Memory = f.Size, int64(tensorBytes(f)+uint64(cfg.Layers)*cachePerBlock(f, opts.Backbone))
	in.ImageLimits = visiontok.DefaultLimits
	if visionPath != "" {
		v, err := gguf.Open(visionPath)
		if err != nil {
			return in, err
		}
		vc, err := visiontok.ReadConfig(v)
		if err != nil {
			return in, err
		}
		in.ReadsImages, in.Draws, in.Embeds = true, cfg.Images.Enabled(), vc.Text.Depth > 0
		in.FileBytes += v.Size
		in.Memory += int64(tensorBytes(v))
		if opts.Vision.Decode.Limits != (visiontok.Limits{}) {
			in.ImageLimits = opts.Vision.Decode.Limits
		}
	}
	return in, nil
}

func tensorBytes(f *gguf.File) uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Bytes()
	}
	return n
}
