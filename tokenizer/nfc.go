package tokenizer

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// NFC returns s in Unicode Normalization Form C exactly as HuggingFace tokenizers' "NFC"
// normalizer computes it, which golang.org/x/text/unicode/norm does not, for two reasons:
//   - HF normalizes with Unicode 9.0.0 data (its unicode-normalization-alignments crate), so it
//     neither composes nor reorders the characters added since (U+11935 U+11930 stays as it is;
//     U+1DF9, a mark of class 220 since 10.0.0, is not moved before U+0301). x/text has 15.0.0's.
//   - x/text puts U+034F (combining grapheme joiner) after every 30 non-starters, the Stream-Safe
//     Text Format of UAX #15; HF reorders and composes runs of any length as they are.
//
// Bytes that are not UTF-8 are kept as they are, and nothing composes across them.
func NFC(s string) string {
	start, ok := nfcPrefix(s)
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	b.WriteString(s[:start])
	var buf []rune
	for i := start; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			writeComposed(&b, buf)
			buf = buf[:0]
			b.WriteByte(s[i])
			i++
			continue
		}
		buf = appendDecomposed(buf, r)
		i += size
	}
	writeComposed(&b, buf)
	return b.String()
}

// nfcPrefix returns where normalization must start: s up to there is in NFC and ends before a
// starter that nothing after it can compose with or move before. ok is true when all of s is in
// NFC: the quick check of UAX #15, with every "maybe" taken as "no".
func nfcPrefix(s string) (start int, ok bool) {
	lastClass := uint8(0)
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if !nfcMayChange(r) {
			start, lastClass = i, 0
			i += size
			continue
		}
		class := nfcCombiningClass[r]
		if nfcUnsure[r] || class != 0 && class < lastClass {
			return start, false
		}
		if class == 0 {
			start = i
		}
		lastClass = class
		i += size
	}
	return len(s), true
}

// appendDecomposed appends the full canonical decomposition of r.
func appendDecomposed(buf []rune, r rune) []rune {
	if r >= hangulBase && r < hangulBase+hangulCount {
		s := r - hangulBase
		buf = append(buf, hangulL+s/(hangulV*hangulT), hangulVBase+s%(hangulV*hangulT)/hangulT)
		if t := s % hangulT; t != 0 {
			buf = append(buf, hangulTBase+t)
		}
		return buf
	}
	if d, ok := nfcDecomposition[r]; ok {
		for _, x := range d {
			buf = append(buf, x)
		}
		return buf
	}
	return append(buf, r)
}

// writeComposed puts decomposed text in canonical order, composes it and writes it.
func writeComposed(b *strings.Builder, buf []rune) {
	// Canonical ordering: each run of non-starters sorted, stably, by combining class.
	for i := 0; i < len(buf); {
		if nfcCombiningClass[buf[i]] == 0 {
			i++
			continue
		}
		j := i + 1
		for j < len(buf) && nfcCombiningClass[buf[j]] != 0 {
			j++
		}
		if j-i > 1 {
			slices.SortStableFunc(buf[i:j], func(x, y rune) int {
				return int(nfcCombiningClass[x]) - int(nfcCombiningClass[y])
			})
		}
		i = j
	}
	// Canonical composition: each character joins the last starter when a primary composite of
	// the two exists and nothing between them blocks it (a starter, or a mark of the same or a
	// higher class).
	out := buf[:0]
	starter := -1
	for _, r := range buf {
		class := nfcCombiningClass[r]
		if starter >= 0 {
			last := len(out) - 1
			if last == starter || nfcCombiningClass[out[last]] != 0 && nfcCombiningClass[out[last]] < class {
				if c, ok := compose(out[starter], r); ok {
					out[starter] = c
					continue
				}
			}
		}
		if class == 0 {
			starter = len(out)
		}
		out = append(out, r)
	}
	for _, r := range out {
		b.WriteRune(r)
	}
}

func compose(a, b rune) (rune, bool) {
	switch {
	case a >= hangulL && a < hangulL+hangulLCount && b >= hangulVBase && b < hangulVBase+hangulV:
		return hangulBase + ((a-hangulL)*hangulV+b-hangulVBase)*hangulT, true
	case a >= hangulBase && a < hangulBase+hangulCount && (a-hangulBase)%hangulT == 0 && b > hangulTBase && b < hangulTBase+hangulT:
		return a + b - hangulTBase, true
	}
	c, ok := nfcComposition[[2]rune{a, b}]
	return c, ok
}

// Hangul syllables are composed from jamo by arithmetic (Unicode chapter 3.12).
const (
	hangulBase   = 0xAC00
	hangulL      = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulV      = 21
	hangulT      = 28
	hangulCount  = hangulLCount * hangulV * hangulT
)

// nfcUnsure holds the code points whose NFC quick check is not "yes": those that never survive
// NFC (singletons, composition exclusions) and those that may compose with what comes before
// them (the second character of a primary composite, Hangul vowels and trailing consonants).
var nfcUnsure = func() map[rune]bool {
	unsure := map[rune]bool{}
	composite := map[rune]bool{}
	for pair, c := range nfcComposition {
		composite[c] = true
		unsure[pair[1]] = true
	}
	for r := range nfcDecomposition {
		if !composite[r] {
			unsure[r] = true
		}
	}
	for v := rune(hangulVBase); v < hangulVBase+hangulV; v++ {
		unsure[v] = true
	}
	for t := rune(hangulTBase + 1); t < hangulTBase+hangulT; t++ {
		unsure[t] = true
	}
	return unsure
}()

// nfcBMP marks the code points below U+10000 that are in nfcUnsure or are non-starters: every
// other one is a starter that NFC leaves as it is, whatever surrounds it. One bit test keeps the
// quick check cheap on text that is already in NFC, as almost all text is.
var nfcBMP = func() (bits [0x10000 / 64]uint64) {
	for r := range nfcUnsure {
		if r < 0x10000 {
			bits[r/64] |= 1 << (r % 64)
		}
	}
	for r := range nfcCombiningClass {
		if r < 0x10000 {
			bits[r/64] |= 1 << (r % 64)
		}
	}
	return bits
}()

func nfcMayChange(r rune) bool {
	if r < 0x10000 {
		return nfcBMP[r/64]&(1<<(r%64)) != 0
	}
	return nfcUnsure[r] || nfcCombiningClass[r] != 0
}
