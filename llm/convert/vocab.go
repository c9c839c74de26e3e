package convert

import (
	"fmt"
	"path/filepath"

	"github.com/toklip/toklip/tokenizer"
)

// vocabKV loads dir's tokenizer.json (and tokenizer_config.json) and returns its tokenizer.* keys
// in llama.cpp's GGUF layout, for a vocabulary padded to the model's size. BOS and EOS fall back
// to config.json's ids when tokenizer_config.json does not name them.
func vocabKV(dir string, size int, cfg hfConfig) (map[string]any, error) {
	tok, err := tokenizer.FromJSON(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	if tok.Kind() != tokenizer.ByteLevelBPE {
		return nil, fmt.Errorf("tokenizer.json: a %s backbone needs a byte-level BPE tokenizer", cfg.arch())
	}
	if tok.BOS < 0 && cfg.BOSTokenID != nil {
		tok.BOS = int32(*cfg.BOSTokenID)
	}
	if tok.EOS < 0 && cfg.EOSTokenID != nil {
		tok.EOS = int32(*cfg.EOSTokenID)
	}
	for _, id := range []int32{tok.BOS, tok.EOS} {
		if int(id) >= size {
			return nil, fmt.Errorf("config.json: token id %d is outside the model's vocabulary of %d", id, size)
		}
	}
	kv, err := tok.Metadata(size)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return kv, nil
}
