package tokenizer

import (
	"errors"
	"testing"

	"github.com/dlclark/regexp2"
)

// Any pattern translates or is refused with a *PatternError, within the size bound, and what it
// translates to compiles or is refused by regexp2; nothing panics.
func FuzzTranslatePattern(f *testing.F) {
	for _, p := range []string{namedPreTokenizers["qwen2"], namedPreTokenizers["gpt-2"], `(?i:[^s\p{Lu}]|ß)`, `[a-z&&[^aeiou]]+\b\R`,
		`^\x{41}\u00e9{,3}(?<n>x)(?m:.)$`, `\p{^Letter}\P{decimal_number}[\s\S]\w\W\h\H\d\D`, `(?#c)(?=a)(?!b)(?<=c)(?<!d)(?>e)`} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		translated, err := translatePattern(pattern)
		if err != nil {
			var perr *PatternError
			if !errors.As(err, &perr) {
				t.Fatalf("%q: %v is not a *PatternError", pattern, err)
			}
			return
		}
		if len(translated) > maxTranslated+64<<10 {
			t.Fatalf("%q translated to %d bytes", pattern, len(translated))
		}
		if re, err := regexp2.Compile(translated, regexp2.None); err == nil {
			re.FindStringMatch("ab 12\n")
		}
	})
}
