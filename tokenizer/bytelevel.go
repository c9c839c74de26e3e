package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// GPT-2's byte-level alphabet: each byte is shown as a printable character (printable ASCII and
// Latin-1 stand for themselves, the other bytes are moved to U+0100 and up), so that a vocabulary
// of strings can hold any byte sequence.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	next := rune(256)
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = next
			next++
		}
		b2r[b] = r
		r2b[r] = byte(b)
	}
	return b2r, r2b
}()

// byteLevel writes s in the byte-level alphabet.
func byteLevel(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteToRune[s[i]])
	}
	return sb.String()
}

// fromByteLevel turns a byte-level piece back into its bytes; characters outside the alphabet
// (only possible in a malformed vocabulary) are kept as their UTF-8.
func fromByteLevel(dst []byte, piece string) []byte {
	for _, r := range piece {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
		} else {
			dst = append(dst, string(r)...)
		}
	}
	return dst
}

// The pre-tokenizer regexes llama.cpp names in tokenizer.ggml.pre, as the families' tokenizer.json
// files give them. They split text into the words that BPE sees.
var namedPreTokenizers = map[string]string{
	"qwen2":     `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	"llama-bpe": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	"gpt-2":     `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
}

// preTokenizerName is the tokenizer.ggml.pre name of a regex, or "" if llama.cpp has none for it.
func preTokenizerName(re string) string {
	for name, r := range namedPreTokenizers {
		if r == re {
			return name
		}
	}
	return ""
}

// splitter splits text into words with a pre-tokenizer regex, keeping every character (the
// "Isolated" behaviour: matches become words, and so do the gaps between them).
type splitter struct {
	source string
	re     *regexp2.Regexp
}

func newSplitter(pattern string) (*splitter, error) {
	splitters.Lock()
	sp, ok := splitters.byPattern[pattern]
	splitters.Unlock()
	if ok {
		return sp, nil
	}
	// regexp2 gives the lookahead (?!\S) that Go's RE2 lacks; translatePattern gives it
	// Oniguruma's (HuggingFace's engine) classes and case folding.
	translated, err := translatePattern(pattern)
	if err != nil {
		return nil, err
	}
	re, err := regexp2.Compile(translated, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("pre-tokenizer regex %q: %w", pattern, err)
	}
	sp = &splitter{source: pattern, re: re}
	splitters.Lock()
	if len(splitters.byPattern) >= maxSplitters {
		clear(splitters.byPattern)
	}
	splitters.byPattern[pattern] = sp
	splitters.Unlock()
	return sp, nil
}

// splitters keeps the splitters already compiled, a few of them: translating and compiling a
// pattern takes some 15 ms and 2 MB, and every Qwen (or Llama) file has the same one. A splitter
// is safe for concurrent use (a regexp2.Regexp is).
var splitters = struct {
	sync.Mutex
	byPattern map[string]*splitter
}{byPattern: map[string]*splitter{}}

const maxSplitters = 8

func (s *splitter) split(text string, yield func(word string)) {
	// Decode runes with their byte offsets, so that words are slices of text (an invalid byte is
	// one U+FFFD rune to the regex, and stays its own byte in the word).
	runes := make([]rune, 0, len(text))
	offsets := make([]int, 0, len(text)+1)
	for o := 0; o < len(text); {
		r, size := utf8.DecodeRuneInString(text[o:])
		runes = append(runes, r)
		offsets = append(offsets, o)
		o += size
	}
	offsets = append(offsets, len(text))
	last := 0
	m, _ := s.re.FindRunesMatch(runes)
	for m != nil {
		if m.Index > last {
			yield(text[offsets[last]:offsets[m.Index]])
		}
		if m.Length > 0 {
			yield(text[offsets[m.Index]:offsets[m.Index+m.Length]])
		}
		last = m.Index + m.Length
		m, _ = s.re.FindNextMatch(m)
	}
	if last < len(runes) {
		yield(text[offsets[last]:])
	}
}
