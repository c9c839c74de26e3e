package visiontok

import (
	"fmt"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/kvcache"
	"github.com/ollama/ollama/ml/nn"
	"github.com/ollama/ollama/model"

	"github.com/toklip/toklip/gguf"
)

func init() {
	model.Register(Architecture, newModel)
	gguf.RegisterArchitecture(Architecture, checkFile)
}

// Model is TokLIP on ollama's engine, its weights bound by the gguf tags (names in Config.Tensors),
// each weight type declared beside its forward: VQ and its parts in vq.go, the ViT's Stem and
// Pool in vit.go, Block and GroupNorm in layers.go, TextTower in text.go.
// The ViT's blocks are the file's "blk" layers, so ollama's backend places them like an LLM's
// (and its KV cache serves the incremental mode); everything else lives under v. and s.
type Model struct {
	model.Base

	VQ       *VQ           `gguf:"v"`
	Stem     *Stem         `gguf:"v"`
	Blocks   []Block       `gguf:"blk"`
	PostNorm *nn.LayerNorm `gguf:"v.post_norm"`
	Pool     *Pool         `gguf:"v.pool"`
	Text     *TextTower    `gguf:"s"`

	cfg Config
}

func newModel(c fs.Config) (model.Model, error) {
	cfg, err := ReadConfig(gguf.FromConfig(c))
	if err != nil {
		return nil, err
	}
	levels := len(cfg.ChannelMult)
	coder := func(res int, attnLevel int) *Coder {
		cd := &Coder{Levels: make([]Level, levels)}
		for i := range cd.Levels {
			cd.Levels[i].Res = make([]ResBlock, res)
			if i == attnLevel {
				cd.Levels[i].Attn = make([]AttnBlock, res)
			}
		}
		return cd
	}
	m := &Model{
		VQ:     &VQ{Encoder: coder(cfg.ResBlocks, levels-1), Decoder: coder(cfg.ResBlocks+1, 0)},
		Blocks: make([]Block, cfg.Depth),
		cfg:    cfg,
	}
	if cfg.Text.Depth > 0 {
		m.Text = &TextTower{Blocks: make([]Block, cfg.Text.Depth)}
	}
	// The incremental semantic encoder keeps keys and values here; positions never shift.
	m.Cache = kvcache.NewCausalCache(nil)
	return m, nil
}

// matmulWeights are the ViT blocks' projections, which its graphs read only as the first operand
// of matrix products with float32 activations: the weights ggml.Repack may move.
func (m *Model) matmulWeights() []string {
	var names []string
	for i := range m.Blocks {
		for _, w := range []string{"attn_qkv", "attn_out", "ffn_up", "ffn_down"} {
			names = append(names, fmt.Sprintf("blk.%d.%s.weight", i, w))
		}
	}
	return names
}
