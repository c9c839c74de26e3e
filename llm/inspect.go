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
	h, err := readHeaders(lmPath, visionPath)
	if err != nil {
		return Info{}, err
	}
	return h.info(opts), nil
}

// headers are a model's files as their headers describe them (vision nil for a text-only model).
type headers struct {
	lm     *gguf.File
	cfg    models.Config
	vision *gguf.File
	vc     visiontok.Config
}

func readHeaders(lmPath, visionPath string) (headers, error) {
	var h headers
	var err error
	if h.lm, err = gguf.Open(lmPath); err != nil {
		return h, err
	}
	if h.cfg, err = models.ReadConfig(h.lm); err != nil {
		return h, err
	}
	if visionPath == "" {
		return h, nil
	}
	if h.vision, err = gguf.Open(visionPath); err != nil {
		return h, err
	}
	h.vc, err = visiontok.ReadConfig(h.vision)
	return h, err
}

// info is Inspect's answer from the headers.
func (h headers) info(opts EngineOptions) Info {
	if opts.Backbone.Sequences <= 0 {
		opts.Backbone.Sequences = 4 // as Open
	}
	var in Info
	o := withDefaults(opts.Backbone, h.cfg)
	in.Vocab, in.Sequences, in.ContextLength = h.cfg.Vocab, o.Sequences, o.ContextLength
	in.FileBytes, in.Memory = h.lm.Size, int64(tensorBytes(h.lm)+uint64(h.cfg.Layers)*cachePerBlock(h.lm, opts.Backbone))
	in.ImageLimits = visiontok.DefaultLimits
	if h.vision != nil {
		in.ReadsImages, in.Draws, in.Embeds = true, h.cfg.Images.Enabled(), h.vc.Text.Depth > 0
		in.FileBytes += h.vision.Size
		in.Memory += int64(tensorBytes(h.vision))
		if opts.Vision.Decode.Limits != (visiontok.Limits{}) {
			in.ImageLimits = opts.Vision.Decode.Limits
		}
	}
	return in
}

func tensorBytes(f *gguf.File) uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Bytes()
	}
	return n
}
