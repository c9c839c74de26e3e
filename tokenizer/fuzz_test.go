package tokenizer_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/toklip/toklip/tokenizer"
)

// smallByteLevel is a tokenizer.json with the 256 byte tokens of GPT-2's alphabet, a few merges
// and the given normalizer and pre-tokenizer (JSON values).
func smallByteLevel(normalizer, preTokenizer string) string {
	var vocab []string
	// GPT-2's byte alphabet: printable Latin-1 stands for itself, the other bytes move to U+0100 on.
	next := rune(256)
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = next
			next++
		}
		vocab = append(vocab, fmt.Sprintf("%q:%d", string(r), b))
	}
	vocab = append(vocab, `"Ġt":256`, `"he":257`, `"Ġthe":258`)
	return fmt.Sprintf(`{"added_tokens":[{"id":259,"content":"<|end|>","special":true}],"normalizer":%s,"pre_tokenizer":%s,`+
		`"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{%s,"<|end|>":259},"merges":["Ġ t","h e","Ġt he"]}}`,
		normalizer, preTokenizer, strings.Join(vocab, ","))
}

var warmUp sync.Once

// tokenizer.json from any bytes: an error or a tokenizer that works, never a panic, a hang or an
// allocation out of proportion to the file (the highest id sizes the vocabulary; a regex's
// classes are written out before compiling, up to a bound).
func FuzzParseJSON(f *testing.F) {
	split := func(re string) string {
		return fmt.Sprintf(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":%q},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}`, re)
	}
	f.Add([]byte(smallByteLevel(`{"type":"NFC"}`, split(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`))))
	f.Add([]byte(smallByteLevel(`null`, `{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`)))
	f.Add([]byte(smallByteLevel(`null`, split(`\p{Lu}+|[a-z&&[^aeiou]]|\x{41}\u00e9\b\R|^$|(?<n>x)`))))
	f.Add([]byte(`{"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},` +
		`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},` +
		`"model":{"type":"BPE","byte_fallback":true,"unk_token":"<unk>","vocab":{"<unk>":0,"<0x41>":1,"▁":2,"a":3,"▁a":4},"merges":[["▁","a"]]}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":2147483646}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The Unicode tables are set up on first use, once per process: not the input's doing.
		warmUp.Do(func() {
			tokenizer.ParseJSON([]byte(smallByteLevel(`{"type":"NFC"}`, `{"type":"ByteLevel","use_regex":true}`)), nil)
		})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tok, err := tokenizer.ParseJSON(data, nil)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20+256*uint64(len(data)) {
			t.Fatalf("%d bytes of tokenizer.json allocated %d MB", len(data), alloc>>20)
		}
		if err != nil {
			return
		}
		// Short text only: a fuzzed regex may backtrack exponentially, as Oniguruma's would.
		for _, text := range []string{"Hi the<|end|>", "x\u0301\u0316 12\n"} {
			ids := tok.Encode(text, tokenizer.EncodeOptions{})
			tok.Decode(ids, false)
			tok.Decode(ids, true)
		}
	})
}

// NFC is idempotent, keeps valid UTF-8 valid, and does not panic on any bytes.
func FuzzNFC(f *testing.F) {
	for _, s := range []string{"e\u0301", "\u1100\u1161\u11a8", "a\xff\u0301", strings.Repeat("\u0316\u0301", 40), "\u0f73\u0f75\u0f81", "\U00011935\U00011930"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := tokenizer.NFC(s)
		if again := tokenizer.NFC(n); again != n {
			t.Fatalf("NFC(NFC(%+q)) = %+q, NFC once = %+q", s, again, n)
		}
		if utf8.ValidString(s) && !utf8.ValidString(n) {
			t.Fatalf("NFC(%+q) = %+q is not UTF-8", s, n)
		}
	})
}
