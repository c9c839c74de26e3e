package visiontok

import (
	"strings"
	"unicode"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/ml/nn"

	"github.com/toklip/toklip/tokenizer"
)

// Canonicalize is open_clip's canonicalize_text, which SigLIP2's text tower was trained with:
// underscores become spaces, ASCII punctuation goes, letters are lowercased, runs of whitespace
// become one space.
func Canonicalize(text string) string {
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '_':
			return ' '
		case r < 0x80 && unicode.IsPunct(r) || strings.ContainsRune("$+<=>^`|~", r): // Python's string.punctuation
			return -1
		}
		return r
	}, text)
	fields := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f // Python's str.split also splits on these
	})
	return strings.Join(fields, " ")
}

// textIDs is the text tower's input: the tokenized text with the tokenizer's BOS/EOS (SigLIP2:
// EOS only), truncated to the context keeping the EOS, padded with the pad token.
func textIDs(tok *tokenizer.Tokenizer, text string, t TextConfig) []int32 {
	if t.Canonicalize {
		text = Canonicalize(text)
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecial: true, SplitSpecial: true})
	if len(ids) > t.Context {
		last := ids[len(ids)-1]
		ids = ids[:t.Context]
		if tok.AddEOS && last == tok.EOS {
			ids[t.Context-1] = tok.EOS
		}
	}
	pad := tok.Pad
	if pad < 0 {
		pad = 0
	}
	for len(ids) < t.Context {
		ids = append(ids, pad)
	}
	return ids
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

// embedText runs the text tower on ids [context]: bidirectional blocks, final norm, the last
// position, the projection. Returns [width].
func (m *Model) embedText(ctx ml.Context, ids []int32) ml.Tensor {
	t, cfg := m.Text, m.cfg.Text
	n := len(ids)
	positions := make([]int32, n)
	for i := range positions {
		positions[i] = int32(i)
	}
	x := t.TokenEmbd.Forward(ctx, ctx.Input().FromInts(ids, n)).Add(ctx, t.PosEmbd.Forward(ctx, ctx.Input().FromInts(positions, n)))
	for i := range t.Blocks {
		b := &t.Blocks[i]
		x = b.forward(ctx, x, m.cfg.LNEps, func(h ml.Tensor) ml.Tensor { return b.selfAttention(ctx, h, cfg.Heads, nil) })
	}
	x = t.FinalNorm.Forward(ctx, x, m.cfg.LNEps)
	last := x.View(ctx, (n-1)*x.Stride(1), cfg.Width)
	return t.Proj.Forward(ctx, last)
}
