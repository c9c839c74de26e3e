package tokenizer

// runeRange is the code points first..last, inclusive.
type runeRange struct{ first, last rune }
