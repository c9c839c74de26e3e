package tokenizer_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/tokenizer"
)

// A tokenizer written to GGUF keys (as toklip's converter does) and read back encodes the corpus
// exactly as HuggingFace does: the byte-level ones through tokenizer.ggml.pre and merges, Gemma
// through SentencePiece scores.
func TestGGUFKeysEncodeAsHuggingFace(t *testing.T) {
	text := corpus(t)
	for name := range realTokenizers {
		t.Run(name, func(t *testing.T) {
			src := load(t, name)
			kv, err := src.Metadata(src.VocabSize() + 7) // padded, as a model's embedding often is
			if err != nil {
				t.Fatal(err)
			}
			tok, err := viaGGUF(t, kv)
			if err != nil {
				t.Fatal(err)
			}
			g := readGolden(t, name)
			if got := tok.Encode(text, tokenizer.EncodeOptions{}); !slices.Equal(got, g.Whole) {
				t.Errorf("whole corpus through GGUF: %d ids, want %d; %s", len(got), len(g.Whole), firstDiff(tok, got, g.Whole))
			}
			if tok.VocabSize() != src.VocabSize()+7 || tok.BOS != src.BOS || tok.EOS != src.EOS || tok.AddBOS != src.AddBOS {
				t.Errorf("vocab %d bos %d eos %d add_bos %v; want %d %d %d %v", tok.VocabSize(), tok.BOS, tok.EOS, tok.AddBOS,
					src.VocabSize()+7, src.BOS, src.EOS, src.AddBOS)
			}
		})
	}
}

// viaGGUF writes tokenizer keys to a GGUF file and loads the tokenizer back from it.
func viaGGUF(t *testing.T, kv map[string]any) (*tokenizer.Tokenizer, error) {
	t.Helper()
	kv["general.architecture"] = "tokenizer-only"
	path := filepath.Join(t.TempDir(), "tokenizer.gguf")
	if err := gguf.WriteFile(path, kv, nil); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tokenizer.FromGGUF(f)
}
