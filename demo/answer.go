package demo

import (
	"strings"
	"unicode"
)

// ReadAnswer finds the attributes a text answer names: the first shape, color, position and size
// it contains as whole words, -1 for each it does not name.
func ReadAnswer(text string) Found {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) })
	t := " " + strings.Join(words, " ") + " "
	first := func(names []string, phrase func(string) string) int {
		best, at := -1, len(t)
		for i, n := range names {
			if j := strings.Index(t, phrase(n)); j >= 0 && j < at {
				best, at = i, j
			}
		}
		return best
	}
	word := func(n string) string { return " " + n + " " }
	place := func(n string) string { return " " + strings.TrimSuffix(n, " corner") + " " }
	return Found{Shape: first(Shapes, word), Color: first(Colors, word), Position: first(Positions, place), Size: first(Sizes, word)}
}
