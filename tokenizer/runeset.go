package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
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
	return coalesce(all)
}

// coalesce joins the ranges of a list sorted by first that overlap or touch, in place.
func coalesce(sorted []runeRange) runeSet {
	out := sorted[:0]
	for _, r := range sorted {
		if n := len(out); n > 0 && r.first <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, r.last)
			continue
		}
		out = append(out, r)
	}
	return runeSet(out)
}

func (s runeSet) union(t runeSet) runeSet {
	if len(s) == 0 {
		return t
	}
	if len(t) == 0 {
		return s
	}
	// Merge the two sorted lists, then join what overlaps or touches.
	all := make([]runeRange, 0, len(s)+len(t))
	i, j := 0, 0
	for i < len(s) || j < len(t) {
		if j == len(t) || i < len(s) && s[i].first <= t[j].first {
			all = append(all, s[i])
			i++
		} else {
			all = append(all, t[j])
			j++
		}
	}
	return coalesce(all)
}

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
	var out runeSet
	for i, j := 0, 0; i < len(s) && j < len(t); {
		lo, hi := max(s[i].first, t[j].first), min(s[i].last, t[j].last)
		if lo <= hi {
			out = append(out, runeRange{lo, hi})
		}
		if s[i].last < t[j].last {
			i++
		} else {
			j++
		}
	}
	return out
}

// subsetOf reports whether every member of s is in t.
func (s runeSet) subsetOf(t runeSet) bool {
	j := 0
	for _, r := range s {
		for j < len(t) && t[j].last < r.first {
			j++
		}
		if j == len(t) || t[j].first > r.first || t[j].last < r.last {
			return false
		}
	}
	return true
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

func (s runeSet) minus(t runeSet) runeSet {
	out, _ := s.minusAtMost(t, -1)
	return out
}

// minusAtMost is s.minus(t), or ok false as soon as that has more than limit ranges (no limit
// when limit < 0).
func (s runeSet) minusAtMost(t runeSet, limit int) (out runeSet, ok bool) {
	j := 0
	for _, r := range s {
		next := r.first // the first member of r not yet written or removed
		for j < len(t) && t[j].last < next {
			j++
		}
		for k := j; k < len(t) && t[k].first <= r.last; k++ {
			if t[k].first > next {
				out = append(out, runeRange{next, t[k].first - 1})
			}
			next = t[k].last + 1
		}
		if next <= r.last {
			out = append(out, runeRange{next, r.last})
		}
		if limit >= 0 && len(out) > limit {
			return nil, false
		}
	}
	return out, true
}

func (s runeSet) count() int {
	n := 0
	for _, r := range s {
		n += int(r.last-r.first) + 1
	}
	return n
}

// regexClass writes s as a regexp2 character class. regexp2's own \p{..} are Go's unicode tables,
// of another Unicode version (15.0.0 in Go 1.26) than the sets here: a category is named only
// where that gives exactly s, and the rest is spelled out as code points. Naming categories keeps
// the class short, quick to compile (regexp2 sorts a class's ranges again for each one it adds)
// and quick to match (it tries the ranges one by one, a category by binary search). Surrogates,
// which no string holds, may fall either way.
func (s runeSet) regexClass() string {
	s = s.intersect(noSurrogates)
	if len(s) <= 16 && len(s) > 0 { // a few code points: listing them is short enough
		var b strings.Builder
		b.WriteByte('[')
		writeRanges(&b, s)
		b.WriteByte(']')
		return b.String()
	}
	direct := classOf(s, false)
	if negated := classOf(s.complement().intersect(noSurrogates), true); len(negated) < len(direct) {
		return negated
	}
	return direct
}

var noSurrogates = runeSet{{0, 0xD7FF}, {0xE000, utf8.MaxRune}}

// classOf writes [f] or, negated, [^f]: Go's categories that lie within f (or, not negated, that
// f holds all but a few code points of, which are subtracted), and f's other code points.
// regexp2 subtracts after it negates, so a negated class subtracts nothing.
func classOf(f runeSet, negated bool) string {
	var named runeSet
	var names []string
	for _, c := range goCategories() {
		if c.set.subsetOf(named) {
			continue
		}
		if c.set.subsetOf(f) {
			names = append(names, c.name)
			named = named.union(c.set)
			continue
		}
		if negated {
			continue
		}
		if outside, few := c.set.minusAtMost(f, 8); few && len(c.set.intersect(f)) > 4*len(outside) {
			names = append(names, c.name)
			named = named.union(c.set)
		}
	}
	add, sub := f.minus(named), named.minus(f)
	if len(names) == 0 && len(add) == 0 {
		if negated {
			return `[\x{0}-\x{10FFFF}]`
		}
		return `[^\x{0}-\x{10FFFF}]`
	}
	var b strings.Builder
	b.WriteByte('[')
	if negated {
		b.WriteByte('^')
	}
	for _, name := range names {
		fmt.Fprintf(&b, `\p{%s}`, name)
	}
	writeRanges(&b, add)
	if len(sub) > 0 {
		b.WriteString("-[")
		writeRanges(&b, sub)
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

func writeRanges(b *strings.Builder, s runeSet) {
	for _, r := range s {
		fmt.Fprintf(b, `\x{%X}`, r.first)
		if r.last > r.first {
			fmt.Fprintf(b, `-\x{%X}`, r.last)
		}
	}
}

type goCategory struct {
	name string
	set  runeSet
}

// goCategories are the general categories of Go's unicode package, as regexp2 names them in
// \p{..}, groups (L) before their members (Lu), largest first.
var goCategories = sync.OnceValue(func() []goCategory {
	var cats []goCategory
	for name, table := range unicode.Categories {
		var rs []runeRange
		add := func(lo, hi, stride rune) {
			if stride == 1 {
				rs = append(rs, runeRange{lo, hi})
				return
			}
			for c := lo; c <= hi; c += stride {
				rs = append(rs, runeRange{c, c})
			}
		}
		for _, r := range table.R16 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		for _, r := range table.R32 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		if set := newRuneSet(rs).intersect(noSurrogates); len(set) > 0 {
			cats = append(cats, goCategory{name, set})
		}
	}
	slices.SortFunc(cats, func(a, b goCategory) int {
		if a.set.count() != b.set.count() {
			return b.set.count() - a.set.count()
		}
		return strings.Compare(a.name, b.name)
	})
	return cats
})

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
