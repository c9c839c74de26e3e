package tokenizer_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/tokenizer"
)

// imageTokens extends a copy of the Qwen3 tokenizer with 16384 image tokens and their begin/end
// tokens, as a vocabulary-extended TokLIP model does.
func imageTokens(t *testing.T) (*tokenizer.Tokenizer, int32, int32, int32) {
	t.Helper()
	tok, err := tokenizer.FromJSON(tokenizerFile(t, "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 16384)
	for i := range names {
		names[i] = fmt.Sprintf("<|img_%d|>", i)
	}
	first, err := tok.AddTokens(names, true)
	if err != nil {
		t.Fatal(err)
	}
	begin, err := tok.AddTokens([]string{"<|image_start|>", "<|image_end|>"}, true)
	if err != nil {
		t.Fatal(err)
	}
	return tok, first, begin, begin + 1
}

func TestImageTokens(t *testing.T) {
	tok, first, begin, end := imageTokens(t)
	if first != 151669 || tok.VocabSize() != 151669+16384+2 {
		t.Fatalf("image tokens start at %d, vocabulary %d", first, tok.VocabSize())
	}
	prompt := "Draw it:<|image_start|><|img_0|><|img_16383|><|img_12|><|img_1|><|image_end|> done <|img_16384|>"
	ids := tok.Encode(prompt, tokenizer.EncodeOptions{})
	start := slices.Index(ids, begin)
	if start < 0 {
		t.Fatalf("no begin token in %v", ids)
	}
	want := []int32{begin, first, first + 16383, first + 12, first + 1, end}
	if !slices.Equal(ids[start:start+6], want) {
		t.Fatalf("image span = %v, want %v", ids[start:start+6], want)
	}
	// Text around the image encodes as it would alone; an id past the range is plain text.
	if !slices.Equal(ids[:start], tok.Encode("Draw it:", tokenizer.EncodeOptions{})) {
		t.Fatalf("text before the image changed: %v", ids[:start])
	}
	if tail := ids[start+6:]; slices.ContainsFunc(tail, func(id int32) bool { return id >= first }) {
		t.Fatalf("<|img_16384|> must not be an image token: %v", tail)
	}
	if got := tok.Decode(ids, false); got != prompt {
		t.Fatalf("decode = %q, want %q", got, prompt)
	}
	if _, err := tok.AddTokens([]string{"<|img_5|>"}, true); err == nil {
		t.Fatal("adding a token twice must fail")
	}
}

func TestSpecialTokenOptions(t *testing.T) {
	qwen := load(t, "qwen3")
	start, _ := qwen.ID("<|im_start|>")
	text := "<|im_start|>user\nhi<|im_end|>"
	if ids := qwen.Encode(text, tokenizer.EncodeOptions{}); ids[0] != start {
		t.Fatalf("special token not parsed: %v", ids)
	}
	split := qwen.Encode(text, tokenizer.EncodeOptions{SplitSpecial: true})
	if slices.Contains(split, start) || qwen.Decode(split, false) != text {
		t.Fatalf("SplitSpecial must encode the special token as text: %v", split)
	}
	if got := qwen.Decode(qwen.Encode(text, tokenizer.EncodeOptions{}), true); got != "user\nhi" {
		t.Fatalf("skipSpecial decode = %q", got)
	}
	// Qwen adds no BOS; Gemma's post-processor adds <bos>.
	if ids := qwen.Encode("hi", tokenizer.EncodeOptions{AddSpecial: true}); len(ids) != 1 {
		t.Fatalf("Qwen with AddSpecial: %v", ids)
	}
	gemma := load(t, "gemma")
	if ids := gemma.Encode("hi", tokenizer.EncodeOptions{AddSpecial: true}); ids[0] != gemma.BOS || gemma.BOS != 2 {
		t.Fatalf("Gemma with AddSpecial: %v (bos %d)", ids, gemma.BOS)
	}
}

// Streamed decoding emits only whole characters, and all of them.
func TestStreamDecoderNeverSplitsCharacters(t *testing.T) {
	text := "机器学习 👨‍👩‍👧‍👦 🇫🇷 Съешь ещё café naïve 한국어 ١٢٣"
	for _, name := range []string{"qwen3", "llama3", "gemma"} {
		tok := load(t, name)
		d := tok.NewStreamDecoder(false)
		var sb strings.Builder
		held := 0
		for _, id := range tok.Encode(text, tokenizer.EncodeOptions{}) {
			chunk := d.Add(id)
			if !utf8.ValidString(chunk) {
				t.Fatalf("%s: chunk %q is not valid UTF-8", name, chunk)
			}
			if chunk == "" {
				held++
			}
			sb.WriteString(chunk)
		}
		sb.WriteString(d.Flush())
		if sb.String() != text {
			t.Fatalf("%s: streamed %q, want %q", name, sb.String(), text)
		}
		if name == "qwen3" && held == 0 {
			t.Fatalf("qwen3 never split a character between tokens: the test exercises nothing")
		}
	}
	// Bytes that never complete a character come out as U+FFFD at the end.
	tok := load(t, "qwen3")
	d := tok.NewStreamDecoder(false)
	lead, _ := tok.ID(string(rune(0x00E6))) // the byte-level token of byte 0xE6: a 3-byte lead
	if got := d.Add(lead); got != "" {
		t.Fatalf("a lone lead byte was emitted: %q", got)
	}
	if got := d.Flush(); got != "\uFFFD" {
		t.Fatalf("flush of a lone lead byte = %q", got)
	}
}

func TestBadTokenizerFiles(t *testing.T) {
	write := func(t *testing.T, body string) string {
		p := filepath.Join(t.TempDir(), "tokenizer.json")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	byteLevel := `{"type":"Sequence","pretokenizers":[{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]}`
	cases := []struct{ name, body, mention string }{
		{"not JSON", `{"model":`, "unexpected end"},
		{"unigram", `{"model":{"type":"Unigram"}}`, `model type "Unigram"`},
		{"unknown normalizer", `{"normalizer":{"type":"NFKC"},"pre_tokenizer":` + byteLevel + `,"model":{"type":"BPE","vocab":{"a":0}}}`, `normalizer "NFKC"`},
		{"unknown pre-tokenizer", `{"pre_tokenizer":{"type":"Whitespace"},"model":{"type":"BPE","vocab":{"a":0}}}`, `pre-tokenizer "Whitespace"`},
		{"bad regex", `{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?<"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]},"model":{"type":"BPE","vocab":{"a":0}}}`, "pre-tokenizer regex"},
		{"missing bytes", `{"pre_tokenizer":` + byteLevel + `,"model":{"type":"BPE","vocab":{"a":0}}}`, "lacks the token for byte"},
		{"merge of unknown tokens", `{"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}`, `merge 0 ("a" "b")`},
		{"duplicate id", `{"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"},"model":{"type":"BPE","vocab":{"a":0,"b":0}}}`, "id 0 is given to both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.body)
			_, err := tokenizer.FromJSON(p)
			if err == nil || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming the file and %q", err, c.mention)
			}
		})
	}

	fromKV := func(t *testing.T, kv map[string]any) error {
		_, err := viaGGUF(t, kv)
		return err
	}
	if err := fromKV(t, map[string]any{"tokenizer.ggml.model": "gpt2"}); !errors.Is(err, gguf.ErrMissingKey) || !strings.Contains(err.Error(), "tokenizer.ggml.tokens") {
		t.Fatalf("missing tokens: %v", err)
	}
	if err := fromKV(t, map[string]any{"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": []string{"a"}}); err == nil || !strings.Contains(err.Error(), `"bert"`) {
		t.Fatalf("unknown model: %v", err)
	}
	if err := fromKV(t, map[string]any{"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "falcon", "tokenizer.ggml.tokens": []string{"a"}}); err == nil || !strings.Contains(err.Error(), `"falcon"`) {
		t.Fatalf("unknown pre-tokenizer: %v", err)
	}
}

// A small SentencePiece vocabulary in llama.cpp's GGUF form (scores, byte tokens, a leading
// "▁"), with ids worked out by hand from the algorithm: pieces of higher score merge first,
// characters outside the vocabulary fall back to their bytes, and decoding drops the "▁" that
// encoding put in front.
func TestSmallSentencePiece(t *testing.T) {
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int32{2, 3, 3}
	scores := []float32{0, 0, 0}
	for b := range 256 {
		tokens, types, scores = append(tokens, fmt.Sprintf("<0x%02X>", b)), append(types, 6), append(scores, 0)
	}
	piece := map[string]int32{}
	for _, p := range []struct {
		s     string
		score float32
	}{
		{"▁", -1}, {"h", -1}, {"e", -1}, {"l", -1}, {"o", -1}, {"w", -1}, {"r", -1}, {"d", -1},
		{"ll", -2}, {"▁h", -3}, {"▁he", -4}, {"llo", -5}, {"▁hello", -6}, {"▁w", -7}, {"or", -8}, {"ld", -9}, {"▁wor", -10}, {"▁world", -11},
		{"el", -2.5}, // scores above "▁h" but must lose to "ll" on "ello"
	} {
		piece[p.s] = int32(len(tokens))
		tokens, types, scores = append(tokens, p.s), append(types, 1), append(scores, p.score)
	}
	tok, err := viaGGUF(t, map[string]any{"tokenizer.ggml.model": "llama",
		"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.scores": scores,
		"tokenizer.ggml.bos_token_id": uint32(1), "tokenizer.ggml.eos_token_id": uint32(2), "tokenizer.ggml.unknown_token_id": uint32(0)})
	if err != nil {
		t.Fatal(err)
	}
	byteID := func(b byte) int32 { return 3 + int32(b) }
	cases := []struct {
		text string
		want []int32
	}{
		// "▁hello▁world": ll(-2) first, then ▁h, ▁he, llo, ▁hello; ▁w, or, ld, ▁wor, ▁world.
		{"hello world", []int32{1, piece["▁hello"], piece["▁world"]}},
		// "é" is not a piece: its two UTF-8 bytes stand for it, and cut "▁he" short.
		{"hél", []int32{1, piece["▁h"], byteID(0xC3), byteID(0xA9), piece["l"]}},
		{"hell", []int32{1, piece["▁he"], piece["ll"]}},
	}
	for _, c := range cases {
		got := tok.Encode(c.text, tokenizer.EncodeOptions{AddSpecial: true})
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.text, got, c.want)
		}
		if back := tok.Decode(got, true); back != c.text {
			t.Errorf("%q decodes to %q", c.text, back)
		}
		d := tok.NewStreamDecoder(true)
		var sb strings.Builder
		for _, id := range got {
			sb.WriteString(d.Add(id))
		}
		if sb.WriteString(d.Flush()); sb.String() != c.text {
			t.Errorf("%q streams as %q", c.text, sb.String())
		}
	}
}
