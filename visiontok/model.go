package visiontok

import (
	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/kvcache"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"
	"github.com/ollama/ollama/model"
	"github.com/toklip/toklip/gguf"
)

func init() {
	model.Register(Architecture, newModel)
	gguf.RegisterArchitecture(Architecture, checkFile)
}

// Model is TokLIP on ollama's engine, its weights bound by the gguf tags (names in Config.Tensors).
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

// VQ is LlamaGen's VQ-16: encoder, quant_conv, codebook, post_quant_conv, decoder.
type VQ struct {
	Encoder       *Coder     `gguf:"enc"`
	QuantConv     *nn.Conv2D `gguf:"quant_conv"`
	Codebook      ml.Tensor  `gguf:"codebook.weight"` // [dim, size], rows l2-normalized when used
	PostQuantConv *nn.Conv2D `gguf:"post_quant_conv"`
	Decoder       *Coder     `gguf:"dec"`
}

// Coder is the VQ encoder ("down" levels) or decoder ("up" levels).
type Coder struct {
	ConvIn  *nn.Conv2D `gguf:"conv_in"`
	Levels  []Level    `gguf:"down,alt:up"`
	Mid     *Mid       `gguf:"mid"`
	NormOut *GroupNorm `gguf:"norm_out"`
	ConvOut *nn.Conv2D `gguf:"conv_out"`
}

// Level is one resolution: ResBlocks (each followed by an AttnBlock at the attention level),
// then a resampling conv (a stride-2 downsample in the encoder, nearest x2 + conv in the decoder).
type Level struct {
	Res      []ResBlock  `gguf:"res"`
	Attn     []AttnBlock `gguf:"attn"`
	Resample *nn.Conv2D  `gguf:"downsample,alt:upsample"`
}

// Mid is ResBlock, AttnBlock, ResBlock.
type Mid struct {
	Res0 *ResBlock  `gguf:"res0"`
	Attn *AttnBlock `gguf:"attn"`
	Res1 *ResBlock  `gguf:"res1"`
}

type ResBlock struct {
	Norm1 *GroupNorm `gguf:"norm1"`
	Conv1 *nn.Conv2D `gguf:"conv1"`
	Norm2 *GroupNorm `gguf:"norm2"`
	Conv2 *nn.Conv2D `gguf:"conv2"`
	Nin   *nn.Conv2D `gguf:"nin"` // 1x1 shortcut when the channel count changes
}

type AttnBlock struct {
	Norm *GroupNorm `gguf:"norm"`
	Q    *nn.Conv2D `gguf:"q"`
	K    *nn.Conv2D `gguf:"k"`
	V    *nn.Conv2D `gguf:"v"`
	Proj *nn.Conv2D `gguf:"proj"`
}

// GroupNorm is torch.nn.GroupNorm with affine weights.
type GroupNorm struct {
	Weight ml.Tensor `gguf:"weight"`
	Bias   ml.Tensor `gguf:"bias"`
}

// Stem turns VQ ids into the ViT's input tokens.
type Stem struct {
	VQTable   *nn.Linear    `gguf:"vq_table"`
	VQMapping *nn.Linear    `gguf:"vq_mapping"`
	PosEmbd   *nn.Embedding `gguf:"pos_embd"`
}

// Block is a pre-norm transformer block (the ViT's and the text tower's share the layout).
type Block struct {
	AttnNorm *nn.LayerNorm `gguf:"attn_norm"`
	QKV      *nn.Linear    `gguf:"attn_qkv"`
	Out      *nn.Linear    `gguf:"attn_out"`
	FFNNorm  *nn.LayerNorm `gguf:"ffn_norm"`
	Up       *nn.Linear    `gguf:"ffn_up"`
	Down     *nn.Linear    `gguf:"ffn_down"`
}

// Pool is timm's AttentionPoolLatent: a learned query attends to all tokens.
type Pool struct {
	Latent ml.Tensor     `gguf:"latent"`
	Q      *nn.Linear    `gguf:"q"`
	KV     *nn.Linear    `gguf:"kv"`
	Out    *nn.Linear    `gguf:"out"`
	Norm   *nn.LayerNorm `gguf:"norm"`
	Up     *nn.Linear    `gguf:"ffn_up"`
	Down   *nn.Linear    `gguf:"ffn_down"`
}

// TextTower is SigLIP2's text encoder.
type TextTower struct {
	TokenEmbd  *nn.Embedding `gguf:"token_embd"`
	PosEmbd    *nn.Embedding `gguf:"pos_embd"`
	Blocks     []Block       `gguf:"blk"`
	FinalNorm  *nn.LayerNorm `gguf:"final_norm"`
	Proj       *nn.Linear    `gguf:"proj"`
	LogitScale ml.Tensor     `gguf:"logit_scale"`
	LogitBias  ml.Tensor     `gguf:"logit_bias"`
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
