package tokenizer

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/toklip/toklip/gguf"
)

// FromGGUF loads the tokenizer that a GGUF file describes in llama.cpp's tokenizer.ggml.* keys:
// "gpt2" (byte-level BPE, with the pre-tokenizer named by tokenizer.ggml.pre) or "llama"
// (SentencePiece, with merges ranked by the tokens' scores). Tokens typed control or user-defined
// are added tokens, matched in the text before BPE, as llama.cpp does.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	kind, err := gguf.Key[string](f, "tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	tokens, err := gguf.Key[[]string](f, "tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	types, err := gguf.KeyOr(f, "tokenizer.ggml.token_type", []int32(nil))
	if err != nil {
		return nil, err
	}
	if types != nil && len(types) != len(tokens) {
		return nil, keyErr(f, "tokenizer.ggml.token_type", "has %d entries for %d tokens", len(types), len(tokens))
	}
	b := newBuilder(len(tokens))
	for id, piece := range tokens {
		typ := TypeNormal
		if types != nil {
			typ = TokenType(types[id])
		}
		var err error
		if typ == TypeControl || typ == TypeUserDefined {
			err = b.addToken(AddedToken{ID: int32(id), Content: piece, Special: typ == TypeControl})
		} else {
			err = b.setPiece(int32(id), piece, typ)
		}
		if err != nil {
			return nil, &gguf.FileError{Path: f.Path, Key: "tokenizer.ggml.tokens", Kind: gguf.ErrFormat, Detail: err.Error()}
		}
	}
	t := b.t
	var rules [][2]string
	var ranks []int32
	switch kind {
	case "gpt2":
		t.kind = ByteLevelBPE
		if rules, err = t.readGPT2(f); err != nil {
			return nil, err
		}
	case "llama":
		t.kind = SentencePieceBPE
		if rules, ranks, err = t.readSentencePiece(f, b); err != nil {
			return nil, err
		}
	default:
		return nil, keyErr(f, "tokenizer.ggml.model", "tokenizer %q is not supported (gpt2, llama)", kind)
	}
	if err := b.finish(rules, ranks); err != nil {
		return nil, &gguf.FileError{Path: f.Path, Key: "tokenizer.ggml.merges", Kind: gguf.ErrFormat, Detail: err.Error()}
	}
	for _, s := range []struct {
		key string
		dst *int32
	}{{"tokenizer.ggml.bos_token_id", &t.BOS}, {"tokenizer.ggml.eos_token_id", &t.EOS},
		{"tokenizer.ggml.padding_token_id", &t.Pad}, {"tokenizer.ggml.unknown_token_id", &t.unknown}} {
		id, err := gguf.KeyOr(f, s.key, uint32(1<<31))
		if err != nil {
			return nil, err
		}
		if id != 1<<31 {
			if int(id) >= len(tokens) {
				return nil, keyErr(f, s.key, "id %d is outside the vocabulary of %d", id, len(tokens))
			}
			*s.dst = int32(id)
		}
	}
	if t.AddBOS, err = gguf.KeyOr(f, "tokenizer.ggml.add_bos_token", t.kind == SentencePieceBPE); err != nil {
		return nil, err
	}
	if t.AddEOS, err = gguf.KeyOr(f, "tokenizer.ggml.add_eos_token", false); err != nil {
		return nil, err
	}
	if t.ChatTemplate, err = gguf.KeyOr(f, "tokenizer.chat_template", ""); err != nil {
		return nil, err
	}
	return t, nil
}

// byteLevelOptions are what HuggingFace's files say, for each pre-tokenizer llama.cpp names, and
// GGUF does not: Qwen2 normalizes to NFC, Llama 3 keeps whole words that are tokens.
var byteLevelOptions = map[string]struct{ nfc, ignoreMerges bool }{
	"qwen2": {nfc: true}, "llama-bpe": {ignoreMerges: true}, "gpt-2": {},
}

func (t *Tokenizer) readGPT2(f *gguf.File) ([][2]string, error) {
	pre, err := gguf.KeyOr(f, "tokenizer.ggml.pre", "gpt-2")
	if err != nil {
		return nil, err
	}
	if pre == "default" {
		pre = "gpt-2"
	}
	opts, ok := byteLevelOptions[pre]
	if !ok {
		return nil, keyErr(f, "tokenizer.ggml.pre", "pre-tokenizer %q is not supported (qwen2, llama-bpe, gpt-2)", pre)
	}
	if t.split, err = newSplitter(namedPreTokenizers[pre]); err != nil {
		return nil, err
	}
	t.nfc, t.ignoreMerges = opts.nfc, opts.ignoreMerges
	merges, err := gguf.Key[[]string](f, "tokenizer.ggml.merges")
	if err != nil {
		return nil, err
	}
	rules := make([][2]string, len(merges))
	for i, m := range merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, keyErr(f, "tokenizer.ggml.merges", "merge %d %q is not two tokens separated by a space", i, m)
		}
		rules[i] = [2]string{a, b}
	}
	return rules, nil
}

// readSentencePiece derives BPE merges from SentencePiece scores: a pair may merge when its
// concatenation is a piece, and pieces of higher score merge first (ties leftmost), which is
// llama.cpp's SentencePiece algorithm. Every split of a piece into two pieces is a rule; the
// rules making one piece share its rank, and so do pieces of equal score.
func (t *Tokenizer) readSentencePiece(f *gguf.File, b *builder) ([][2]string, []int32, error) {
	scores, err := gguf.Key[[]float32](f, "tokenizer.ggml.scores")
	if err != nil {
		return nil, nil, err
	}
	if len(scores) != len(t.vocab) {
		return nil, nil, keyErr(f, "tokenizer.ggml.scores", "has %d entries for %d tokens", len(scores), len(t.vocab))
	}
	t.scores = scores
	t.spaceMarker, t.byteFallback, t.fuseUnknown = true, true, true
	if t.prependSpace, err = gguf.KeyOr(f, "tokenizer.ggml.add_space_prefix", true); err != nil {
		return nil, nil, err
	}
	t.stripSpace = t.prependSpace

	var merged []string
	for piece, id := range b.pieces {
		if t.types[id] == TypeNormal && utf8.RuneCountInString(piece) > 1 {
			merged = append(merged, piece)
		}
	}
	score := func(piece string) float32 { return scores[b.pieces[piece]] }
	sort.Slice(merged, func(i, j int) bool {
		if si, sj := score(merged[i]), score(merged[j]); si != sj {
			return si > sj
		}
		return merged[i] < merged[j]
	})
	var rules [][2]string
	var ranks []int32
	rank := int32(-1)
	for i, piece := range merged {
		if i == 0 || score(piece) != score(merged[i-1]) {
			rank++
		}
		for k := range piece {
			if k == 0 {
				continue
			}
			if _, ok := b.pieces[piece[:k]]; !ok {
				continue
			}
			if _, ok := b.pieces[piece[k:]]; ok {
				rules = append(rules, [2]string{piece[:k], piece[k:]})
				ranks = append(ranks, rank)
			}
		}
	}
	return rules, ranks, nil
}

func keyErr(f *gguf.File, key, format string, args ...any) error {
	return &gguf.FileError{Path: f.Path, Key: key, Kind: gguf.ErrFormat, Detail: fmt.Sprintf(format, args...)}
}

// Metadata returns the tokenizer.* keys of llama.cpp's GGUF layout for this tokenizer, with the
// vocabulary padded to size ids (the model's embedding rows) by unused tokens. FromGGUF of the
// result encodes as this tokenizer does.
func (t *Tokenizer) Metadata(size int) (map[string]any, error) {
	if size < len(t.vocab) {
		return nil, fmt.Errorf("tokenizer metadata: the vocabulary has %d tokens, more than the model's %d", len(t.vocab), size)
	}
	tokens := make([]string, size)
	types := make([]int32, size)
	for id := range size {
		if id < len(t.vocab) {
			tokens[id], types[id] = t.vocab[id], int32(t.types[id])
		} else {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), int32(TypeUnused)
		}
	}
	kv := map[string]any{"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types}
	switch t.kind {
	case ByteLevelBPE:
		pre := preTokenizerName(t.split.source)
		if opts, ok := byteLevelOptions[pre]; !ok || opts.nfc != t.nfc || opts.ignoreMerges != t.ignoreMerges {
			return nil, fmt.Errorf("tokenizer metadata: the pre-tokenizer %q (NFC %v, ignore_merges %v) has no llama.cpp name", t.split.source, t.nfc, t.ignoreMerges)
		}
		merges := make([]string, len(t.rules))
		for i, r := range t.rules {
			merges[i] = r[0] + " " + r[1]
		}
		kv["tokenizer.ggml.model"], kv["tokenizer.ggml.pre"], kv["tokenizer.ggml.merges"] = "gpt2", pre, merges
	case SentencePieceBPE:
		kv["tokenizer.ggml.model"] = "llama"
		kv["tokenizer.ggml.scores"] = t.sentencePieceScores(size)
		kv["tokenizer.ggml.add_space_prefix"] = t.prependSpace
		if t.unknown >= 0 {
			kv["tokenizer.ggml.unknown_token_id"] = uint32(t.unknown)
		}
	}
	if t.BOS >= 0 {
		kv["tokenizer.ggml.bos_token_id"] = uint32(t.BOS)
	}
	if t.EOS >= 0 {
		kv["tokenizer.ggml.eos_token_id"] = uint32(t.EOS)
	}
	if t.Pad >= 0 {
		kv["tokenizer.ggml.padding_token_id"] = uint32(t.Pad)
	}
	kv["tokenizer.ggml.add_bos_token"] = t.AddBOS
	kv["tokenizer.ggml.add_eos_token"] = t.AddEOS
	if t.ChatTemplate != "" {
		kv["tokenizer.chat_template"] = t.ChatTemplate
	}
	return kv, nil
}

// sentencePieceScores gives each piece a score that ranks it as the merges do: a piece made by
// the rule of rank r scores -r-1 (earlier rules first); other pieces score below every rule.
func (t *Tokenizer) sentencePieceScores(size int) []float32 {
	scores := make([]float32, size)
	if t.scores != nil {
		copy(scores, t.scores)
		return scores
	}
	lowest := float32(-len(t.rules) - 1)
	for id := range scores {
		scores[id] = lowest
	}
	for _, m := range t.merges {
		if s := float32(-m.rank - 1); scores[m.id] == lowest || s > scores[m.id] {
			scores[m.id] = s
		}
	}
	return scores
}
