package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// runeRange is the code points first..last, inclusive.
type runeRange struct{ first, last rune }

// runeSet is a set of code points: sorted ranges that neither overlap nor touch.
type runeSet []runeRange

// newRuneSet makes a set of any ranges.
func newRuneSet(parts ...[]runeRange) runeSet {
	var all []runeRange
	for _, p := range parts {
		all = append(all, p...)
	}
	slices.SortFunc(all, func(a, b runeRange) int { return int(a.first) - int(b.first) })
	var s runeSet
	for _, r := range all {
		if n := len(s); n > 0 && r.first <= s[n-1].last+1 {
			s[n-1].last = max(s[n-1].last, r.last)
			continue
		}
		s = append(s, r)
	}
	return s
}

func (s runeSet) union(t runeSet) runeSet { return newRuneSet(s, t) }

// complement is every code point, U+0000..U+10FFFF, that s lacks.
func (s runeSet) complement() runeSet {
	var out runeSet
	next := rune(0)
	for _, r := range s {
		if r.first > next {
			out = append(out, runeRange{next, r.first - 1})
		}
		next = r.last + 1
	}
	if next <= utf8.MaxRune {
		out = append(out, runeRange{next, utf8.MaxRune})
	}
	return out
}

func (s runeSet) intersect(t runeSet) runeSet {
	return s.complement().union(t.complement()).complement()
}

func (s runeSet) contains(c rune) bool {
	_, found := slices.BinarySearchFunc(s, c, func(r runeRange, c rune) int {
		switch {
		case r.last < c:
			return -1
		case r.first > c:
			return 1
		}
		return 0
	})
	return found
}

// foldClosure adds to s every code point that case-folds (simply) to the folding of one of its
// members, as Oniguruma's (?i) widens a character class.
func (s runeSet) foldClosure() runeSet {
	var add []runeRange
	for _, orbit := range foldOrbits {
		for _, c := range orbit {
			if s.contains(c) {
				for _, o := range orbit {
					add = append(add, runeRange{o, o})
				}
				break
			}
		}
	}
	return newRuneSet(s, add)
}

// regexClass writes s as a regexp2 character class of explicit code points.
func (s runeSet) regexClass() string {
	if len(s) == 0 {
		return `[^\x{0}-\x{10FFFF}]`
	}
	var b strings.Builder
	b.WriteByte('[')
	for _, r := range s {
		fmt.Fprintf(&b, `\x{%X}`, r.first)
		if r.last > r.first {
			fmt.Fprintf(&b, `-\x{%X}`, r.last)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// foldOrbits groups the code points that share a simple case folding (s, S and ſ; k, K and the
// Kelvin sign), each group listed once under its folding.
var foldOrbits = func() map[rune][]rune {
	orbits := map[rune][]rune{}
	for c, f := range regexSimpleFold {
		if orbits[f] == nil {
			orbits[f] = []rune{f}
		}
		orbits[f] = append(orbits[f], c)
	}
	for _, o := range orbits {
		slices.Sort(o)
	}
	return orbits
}()

// caseFold is c's simple case folding.
func caseFold(c rune) rune {
	if f, ok := regexSimpleFold[c]; ok {
		return f
	}
	return c
}

// caseOrbit is every code point that case-folds as c does, c included.
func caseOrbit(c rune) []rune {
	if o, ok := foldOrbits[caseFold(c)]; ok {
		return o
	}
	return []rune{c}
}
