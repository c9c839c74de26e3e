package tokenizer

import (
	"errors"
	"slices"
	"testing"
)

// words splits text with a pattern as a Split pre-tokenizer does.
func words(t *testing.T, pattern, text string) []string {
	t.Helper()
	sp, err := newSplitter(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sp.split(text, func(w string) { out = append(out, w) })
	return out
}

// The Qwen/Llama pre-tokenizer splits as HuggingFace's does where Go's tables would not: "'ſ" is
// a contraction, the letters and digits of Unicode 16.0.0 are letters and digits. The expected
// words are the oracle's (its Split pre-tokenizer, behavior Isolated).
func TestPreTokenizerLikeOracle(t *testing.T) {
	for text, want := range map[string][]string{
		"it'ſtill he'SAID":                    {"it", "'ſ", "till", " he", "'S", "AID"},
		"x\U000105c0's 12\U00011bf03 abcᲉdef": {"x\U000105c0", "'s", " ", "1", "2", "\U00011bf0", "3", " abcᲉdef"},
		"a\U00016d71\U00016d72b ^x$ \u2126":   {"a", "\U00016d71", "\U00016d72", "b", " ^", "x", "$", " \u2126"},
	} {
		if got := words(t, namedPreTokenizers["qwen2"], text); !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", text, got, want)
		}
	}
}

// Where Ruby syntax means something else to .NET's, the translation keeps Oniguruma's meaning:
// the matches are the oracle's (its Split pre-tokenizer, behavior Removed).
func TestTranslatedSyntax(t *testing.T) {
	for _, c := range []struct {
		pattern, text string
		matches       []string
	}{
		{`^a`, "a\na", []string{"a", "a"}}, // ^ and $ match at every line
		{`a$`, "a\na", []string{"a", "a"}},
		{`.`, "a\nb", []string{"a", "b"}},
		{`(?m:.)`, "a\nb", []string{"a", "\n", "b"}}, // Ruby's m lets . match a newline
		{`\R`, "a\r\nb", []string{"\r\n"}},
		{`[a-z&&[^aeiou]]`, "abc", []string{"b", "c"}},
		{`\h`, "afg", []string{"a", "f"}},
		{`\x{41}[\u0041-\u0043]`, "AAAD", []string{"AA"}},
		{`(?i:[^s])`, "sſSx", []string{"x"}},
		{`a(?i)s`, "aſ", []string{"aſ"}},
		{`\p{^L}`, "a1", []string{"1"}},
		{`\p{letter}`, "a1", []string{"a"}},
		{`x{,2}`, "xxx", []string{"xx", "x"}},
		{`\bcd`, "ab cd`cd", []string{"cd", "cd"}},
	} {
		sp, err := newSplitter(c.pattern)
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		var got []string
		runes := []rune(c.text)
		m, _ := sp.re.FindRunesMatch(runes)
		for ; m != nil; m, _ = sp.re.FindNextMatch(m) {
			if m.Length > 0 {
				got = append(got, m.String())
			}
		}
		if !slices.Equal(got, c.matches) {
			t.Errorf("%s on %q: matches %q, want %q", c.pattern, c.text, got, c.matches)
		}
	}
}

// What cannot be run as Oniguruma runs it is refused with a *PatternError.
func TestUntranslatablePatterns(t *testing.T) {
	for _, p := range []string{`\p{Han}`, `[[:alpha:]]`, `(?x: a )`, `(a)\1`, `\k<a>`, `(?i:ss)`, `(?i:ß)`, `(?i:s)(?i:s)x`, `\X`,
		`[a`, `(a`, `a)`, `\`, `\x{110000}`, `\p{L`, `[b-a]`} {
		_, err := translatePattern(p)
		var perr *PatternError
		if p == `(?i:s)(?i:s)x` {
			// separate groups: no sequence within one, each s alone is fine
			if err != nil {
				t.Errorf("%s: %v", p, err)
			}
			continue
		}
		if !errors.As(err, &perr) {
			t.Errorf("%s: got %v, want a *PatternError", p, err)
		}
	}
}
