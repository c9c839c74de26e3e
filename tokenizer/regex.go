package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// PatternError is a pre-tokenizer regex that cannot be run exactly as HuggingFace runs it.
type PatternError struct {
	Pattern string
	Offset  int // in runes
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("pre-tokenizer regex %q at %d: %s", e.Pattern, e.Offset, e.Reason)
}

// maxTranslated bounds the regexp2 pattern a translation may produce: every \p{L} becomes a class
// of some 10 KB, and a tokenizer.json of a few KB must not make toklip compile megabytes. The
// patterns of real tokenizers translate to under 40 KB.
const maxTranslated = 256 << 10

// translatePattern rewrites a pre-tokenizer regex written for Oniguruma (Ruby syntax), the engine
// of HuggingFace tokenizers, into one that regexp2 runs the same way on every input. regexp2's
// \p{..}, \s, \d and \w use Go's Unicode 15.0.0 tables (and .NET's idea of \w) where Oniguruma's
// are Unicode 16.0.0's, and its (?i) lowercases where Oniguruma case-folds ("'ſ" matches (?i:'s)
// there, not in regexp2). So every class is written out as explicit code points from
// unicode_tables.go, (?i) is applied here by writing each letter as the class of the letters that
// fold as it does, and the few places where Ruby syntax means something else in .NET's are
// rewritten: ^ and $ match at every line, (?m) lets . match a newline. Constructs whose meaning
// depends on data not in the tables (scripts, POSIX brackets, multi-character case folding,
// backreferences) are refused with a *PatternError rather than run differently.
func translatePattern(pattern string) (string, error) {
	tr := &translator{pattern: pattern, src: []rune(pattern), fold: []bool{false}}
	if err := tr.run(); err != nil {
		return "", err
	}
	return tr.out.String(), nil
}

type translator struct {
	pattern string
	src     []rune
	pos     int
	out     strings.Builder
	fold    []bool // whether (?i) is on, for each open group (the pattern itself first)
	// folded is the case-insensitive literal text just written, folded, to catch the sequences
	// that a single character folds to (ss and ß), which explicit classes cannot express.
	folded []rune
}

func (tr *translator) fail(format string, args ...any) error {
	return &PatternError{Pattern: tr.pattern, Offset: tr.pos, Reason: fmt.Sprintf(format, args...)}
}

func (tr *translator) caseless() bool { return tr.fold[len(tr.fold)-1] }

func (tr *translator) peek(k int) rune {
	if tr.pos+k < len(tr.src) {
		return tr.src[tr.pos+k]
	}
	return -1
}

func (tr *translator) run() error {
	for tr.pos < len(tr.src) {
		if tr.out.Len() > maxTranslated {
			return tr.fail("the pattern's classes, written out, exceed %d bytes", maxTranslated)
		}
		c := tr.src[tr.pos]
		if c != '\\' && !tr.isLiteral(c) {
			tr.folded = tr.folded[:0]
		}
		switch c {
		case '\\':
			if err := tr.escape(); err != nil {
				return err
			}
		case '[':
			set, err := tr.class()
			if err != nil {
				return err
			}
			tr.out.WriteString(set.regexClass())
		case '(':
			if err := tr.group(); err != nil {
				return err
			}
		case ')':
			if len(tr.fold) == 1 {
				return tr.fail("unmatched )")
			}
			tr.fold = tr.fold[:len(tr.fold)-1]
			tr.out.WriteByte(')')
			tr.pos++
		case '^':
			tr.out.WriteString("(?m:^)") // Ruby: the start of any line
			tr.pos++
		case '$':
			tr.out.WriteString("(?m:$)") // Ruby: the end of any line
			tr.pos++
		case '{':
			// Oniguruma reads {,n} as {0,n}; .NET would take it literally.
			if tr.peek(1) == ',' && tr.peek(2) >= '0' && tr.peek(2) <= '9' {
				tr.out.WriteString("{0")
			} else {
				tr.out.WriteByte('{')
			}
			tr.pos++
		case '.', '|', '*', '+', '?':
			tr.out.WriteRune(c)
			tr.pos++
		default:
			tr.pos++
			if err := tr.literal(c, false); err != nil {
				return err
			}
		}
	}
	if len(tr.fold) != 1 {
		return tr.fail("unterminated group")
	}
	return nil
}

func (tr *translator) isLiteral(c rune) bool {
	return !strings.ContainsRune(`[]()^$.|*+?{`, c)
}

// literal writes one literal character; under (?i), the class of those that fold as it does.
func (tr *translator) literal(c rune, escaped bool) error {
	if !tr.caseless() {
		if escaped {
			fmt.Fprintf(&tr.out, `\x{%X}`, c)
		} else {
			tr.out.WriteRune(c)
		}
		return nil
	}
	if _, ok := regexFullFold[c]; ok {
		return tr.fail("(?i) with %q, which folds to several characters, is not supported", c)
	}
	orbit := caseOrbit(c)
	tr.folded = append(tr.folded, caseFold(c))
	if n := len(tr.folded); n > 3 { // the longest multi-character folding has 3
		tr.folded = append(tr.folded[:0], tr.folded[n-3:]...)
	}
	for _, f := range regexFullFold {
		if strings.HasSuffix(string(tr.folded), f) {
			return tr.fail("(?i) with %q, which a single character folds to, is not supported", f)
		}
	}
	if len(orbit) == 1 {
		fmt.Fprintf(&tr.out, `\x{%X}`, c)
		return nil
	}
	var s runeSet
	for _, o := range orbit {
		s = append(s, runeRange{o, o})
	}
	tr.out.WriteString(newRuneSet(s).regexClass())
	return nil
}

// escape handles a backslash outside a class.
func (tr *translator) escape() error {
	tr.pos++ // the backslash
	e := tr.peek(0)
	if e < 0 {
		return tr.fail("pattern ends with a backslash")
	}
	switch e {
	case 'b', 'B':
		tr.pos++
		w := escapeSet('w').regexClass()
		if e == 'b' {
			fmt.Fprintf(&tr.out, "(?:(?<=%s)(?!%s)|(?<!%s)(?=%s))", w, w, w, w)
		} else {
			fmt.Fprintf(&tr.out, "(?:(?<=%s)(?=%s)|(?<!%s)(?!%s))", w, w, w, w)
		}
		tr.folded = tr.folded[:0]
		return nil
	case 'A', 'z', 'Z', 'G':
		tr.pos++
		tr.out.WriteRune('\\')
		tr.out.WriteRune(e)
		tr.folded = tr.folded[:0]
		return nil
	case 'R': // a line break: CRLF or one of the line-ending characters
		tr.pos++
		tr.out.WriteString(`(?>\x{D}\x{A}|[\x{A}-\x{D}\x{85}\x{2028}\x{2029}])`)
		tr.folded = tr.folded[:0]
		return nil
	}
	set, c, isSet, err := tr.escapeItem(false)
	if err != nil {
		return err
	}
	if isSet {
		tr.out.WriteString(set.regexClass())
		tr.folded = tr.folded[:0]
		return nil
	}
	return tr.literal(c, true)
}

// escapeItem reads the escape after a backslash that stands for a set or for one character, in
// a class or not.
func (tr *translator) escapeItem(inClass bool) (set runeSet, c rune, isSet bool, err error) {
	e := tr.src[tr.pos]
	tr.pos++
	switch e {
	case 'p', 'P':
		set, err := tr.property(e == 'P')
		return set, 0, true, err
	case 's', 'S', 'd', 'D', 'w', 'W', 'h', 'H':
		return escapeSet(e), 0, true, nil
	case 't':
		return nil, '\t', false, nil
	case 'n':
		return nil, '\n', false, nil
	case 'r':
		return nil, '\r', false, nil
	case 'f':
		return nil, '\f', false, nil
	case 'v':
		return nil, '\v', false, nil
	case 'a':
		return nil, '\a', false, nil
	case 'e':
		return nil, 0x1B, false, nil
	case 'b':
		if inClass {
			return nil, '\b', false, nil
		}
	case 'x':
		if tr.peek(0) == '{' {
			end := tr.pos + 1
			for end < len(tr.src) && tr.src[end] != '}' {
				end++
			}
			c, err := tr.hex(tr.pos+1, end, 1, 8)
			tr.pos = end + 1
			return nil, c, false, err
		}
		end := tr.pos
		for end < len(tr.src) && end < tr.pos+2 && isHex(tr.src[end]) {
			end++
		}
		c, err := tr.hex(tr.pos, end, 1, 2)
		tr.pos = end
		return nil, c, false, err
	case 'u':
		c, err := tr.hex(tr.pos, tr.pos+4, 4, 4)
		tr.pos += 4
		return nil, c, false, err
	case '0':
		end := tr.pos
		for end < len(tr.src) && end < tr.pos+2 && tr.src[end] >= '0' && tr.src[end] <= '7' {
			end++
		}
		v, _ := strconv.ParseUint("0"+string(tr.src[tr.pos:end]), 8, 32)
		tr.pos = end
		return nil, rune(v), false, nil
	}
	if e < 0x80 && (e >= 'a' && e <= 'z' || e >= 'A' && e <= 'Z' || e >= '0' && e <= '9') {
		tr.pos--
		return nil, 0, false, tr.fail(`the escape \%c is not supported`, e)
	}
	return nil, e, false, nil // an escaped punctuation or other character stands for itself
}

func isHex(c rune) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (tr *translator) hex(from, to, minDigits, maxDigits int) (rune, error) {
	if to > len(tr.src) || to-from < minDigits || to-from > maxDigits {
		return 0, tr.fail("bad hexadecimal escape")
	}
	v, err := strconv.ParseUint(string(tr.src[from:to]), 16, 32)
	if err != nil || v > 0x10FFFF {
		return 0, tr.fail("bad hexadecimal escape")
	}
	return rune(v), nil
}

// property reads {Name} or {^Name} after \p or \P.
func (tr *translator) property(negated bool) (runeSet, error) {
	if tr.peek(0) != '{' {
		return nil, tr.fail(`\p without {name}`)
	}
	end := tr.pos + 1
	for end < len(tr.src) && tr.src[end] != '}' {
		end++
	}
	if end >= len(tr.src) {
		return nil, tr.fail(`unterminated \p{`)
	}
	name := string(tr.src[tr.pos+1 : end])
	if strings.HasPrefix(name, "^") {
		negated, name = !negated, name[1:]
	}
	set, ok := propertySet(name)
	if !ok {
		return nil, tr.fail(`the property \p{%s} is not supported (general categories only)`, name)
	}
	tr.pos = end + 1
	if negated {
		set = set.complement()
	}
	return set, nil // Oniguruma does not widen properties under (?i), only literal characters
}

// class reads a bracketed class: items, ranges, nested classes and && intersections. Under (?i)
// its characters and ranges (not its properties) are widened by case folding before a ^ negates
// it, as Oniguruma does.
func (tr *translator) class() (runeSet, error) {
	start := tr.pos
	tr.pos++ // [
	negated := false
	if tr.peek(0) == '^' {
		negated = true
		tr.pos++
	}
	if tr.peek(0) == ':' {
		return nil, tr.fail("POSIX bracket classes are not supported")
	}
	var acc runeSet
	intersected := false
	var cur []runeRange
	first := true
	for {
		if tr.pos >= len(tr.src) {
			tr.pos = start
			return nil, tr.fail("unterminated [")
		}
		c := tr.src[tr.pos]
		if c == ']' && !first {
			tr.pos++
			break
		}
		first = false
		if c == '[' {
			if tr.peek(1) == ':' {
				return nil, tr.fail("POSIX bracket classes are not supported")
			}
			sub, err := tr.class()
			if err != nil {
				return nil, err
			}
			cur = append(cur, sub...)
			continue
		}
		if c == '&' && tr.peek(1) == '&' {
			tr.pos += 2
			if intersected {
				acc = acc.intersect(newRuneSet(cur))
			} else {
				acc, intersected = newRuneSet(cur), true
			}
			cur = nil
			continue
		}
		lo, set, isSet, err := tr.classAtom()
		if err != nil {
			return nil, err
		}
		if isSet {
			cur = append(cur, set...)
			continue
		}
		hi := lo
		if tr.peek(0) == '-' && tr.peek(1) != ']' && tr.peek(1) >= 0 && tr.peek(1) != '[' {
			tr.pos++
			var isSet bool
			hi, _, isSet, err = tr.classAtom()
			if err != nil {
				return nil, err
			}
			if isSet || hi < lo {
				return nil, tr.fail("bad range in class")
			}
		}
		r := newRuneSet([]runeRange{{lo, hi}})
		if tr.caseless() {
			r = r.foldClosure()
		}
		cur = append(cur, r...)
	}
	set := newRuneSet(cur)
	if intersected {
		set = acc.intersect(set)
	}
	if negated {
		set = set.complement()
	}
	return set, nil
}

// classAtom reads one character or escape inside a class.
func (tr *translator) classAtom() (c rune, set runeSet, isSet bool, err error) {
	c = tr.src[tr.pos]
	if c != '\\' {
		tr.pos++
		return c, nil, false, nil
	}
	tr.pos++
	if tr.pos >= len(tr.src) {
		return 0, nil, false, tr.fail("pattern ends with a backslash")
	}
	set, c, isSet, err = tr.escapeItem(true)
	return c, set, isSet, err
}

// group reads the opening of a group and keeps track of (?i).
func (tr *translator) group() error {
	tr.folded = tr.folded[:0]
	if tr.peek(1) != '?' {
		tr.out.WriteByte('(')
		tr.pos++
		tr.fold = append(tr.fold, tr.caseless())
		return nil
	}
	tr.pos += 2 // (?
	switch c := tr.peek(0); {
	case c == ':' || c == '=' || c == '!' || c == '>':
		tr.out.WriteString("(?")
		tr.out.WriteRune(c)
		tr.pos++
		tr.fold = append(tr.fold, tr.caseless())
		return nil
	case c == '<' && (tr.peek(1) == '=' || tr.peek(1) == '!'):
		tr.out.WriteString("(?<")
		tr.out.WriteRune(tr.peek(1))
		tr.pos += 2
		tr.fold = append(tr.fold, tr.caseless())
		return nil
	case c == '<' || c == '\'':
		closing := '>'
		if c == '\'' {
			closing = '\''
		}
		end := tr.pos + 1
		for end < len(tr.src) && tr.src[end] != closing {
			end++
		}
		if end >= len(tr.src) {
			return tr.fail("unterminated group name")
		}
		fmt.Fprintf(&tr.out, "(?<%s>", string(tr.src[tr.pos+1:end]))
		tr.pos = end + 1
		tr.fold = append(tr.fold, tr.caseless())
		return nil
	case c == '#':
		for tr.pos < len(tr.src) && tr.src[tr.pos] != ')' {
			tr.pos++
		}
		if tr.pos >= len(tr.src) {
			return tr.fail("unterminated comment")
		}
		tr.pos++
		return nil
	}
	// Options: (?imx-imx) for the rest of the group, or (?imx-imx:...).
	fold, on := tr.caseless(), true
	var dotall strings.Builder
	for {
		c := tr.peek(0)
		tr.pos++
		switch c {
		case 'i':
			fold = on
		case 'm': // Ruby's m is .NET's s: . matches a newline
			if on {
				dotall.WriteString("s")
			} else {
				dotall.WriteString("-s")
			}
		case '-':
			on = false
		case ':':
			fmt.Fprintf(&tr.out, "(?%s:", dotall.String())
			tr.fold = append(tr.fold, fold)
			return nil
		case ')':
			if dotall.Len() > 0 {
				fmt.Fprintf(&tr.out, "(?%s)", dotall.String())
			}
			tr.fold[len(tr.fold)-1] = fold
			return nil
		default:
			tr.pos--
			return tr.fail("the group option %q is not supported", c)
		}
	}
}

// propertySet is the set of a general category, by its short or long name as Oniguruma spells
// it (case, spaces, hyphens and underscores ignored).
func propertySet(name string) (runeSet, bool) {
	key := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(name))
	if short, ok := categoryAliases[key]; ok {
		key = short
	}
	set, ok := categorySets()[key]
	return set, ok
}

// categoryAliases maps each general category's long name (lowercased, without separators) to
// its short one (lowercased), as both are accepted in \p{..}.
var categoryAliases = map[string]string{
	"letter": "l", "casedletter": "lc", "uppercaseletter": "lu", "lowercaseletter": "ll", "titlecaseletter": "lt",
	"modifierletter": "lm", "otherletter": "lo", "mark": "m", "combiningmark": "m", "nonspacingmark": "mn",
	"spacingmark": "mc", "enclosingmark": "me", "number": "n", "decimalnumber": "nd", "letternumber": "nl",
	"othernumber": "no", "punctuation": "p", "connectorpunctuation": "pc", "dashpunctuation": "pd",
	"openpunctuation": "ps", "closepunctuation": "pe", "initialpunctuation": "pi", "finalpunctuation": "pf",
	"otherpunctuation": "po", "symbol": "s", "mathsymbol": "sm", "currencysymbol": "sc", "modifiersymbol": "sk",
	"othersymbol": "so", "separator": "z", "spaceseparator": "zs", "lineseparator": "zl",
	"paragraphseparator": "zp", "other": "c", "control": "cc", "format": "cf", "surrogate": "cs",
	"privateuse": "co", "unassigned": "cn",
}

// categorySets holds each general category and group of them, keyed by lowercased short name.
var categorySets = sync.OnceValue(func() map[string]runeSet {
	sets := map[string]runeSet{}
	var assigned runeSet
	for name, rs := range regexCategories {
		sets[strings.ToLower(name)] = newRuneSet(rs)
		assigned = assigned.union(sets[strings.ToLower(name)])
	}
	sets["cn"] = assigned.complement()
	for group, members := range map[string][]string{
		"l": {"lu", "ll", "lt", "lm", "lo"}, "lc": {"lu", "ll", "lt"}, "m": {"mn", "mc", "me"},
		"n": {"nd", "nl", "no"}, "p": {"pc", "pd", "ps", "pe", "pi", "pf", "po"}, "s": {"sm", "sc", "sk", "so"},
		"z": {"zs", "zl", "zp"}, "c": {"cc", "cf", "cs", "co", "cn"},
	} {
		var s runeSet
		for _, m := range members {
			s = s.union(sets[m])
		}
		sets[group] = s
	}
	return sets
})

// escapeSet is the set of \s, \d, \w or \h, or of its negation in upper case.
func escapeSet(e rune) runeSet {
	var s runeSet
	switch e {
	case 's', 'S':
		s = newRuneSet(regexWhiteSpace)
	case 'd', 'D':
		s = categorySets()["nd"]
	case 'h', 'H': // Ruby's \h is a hexadecimal digit
		s = newRuneSet([]runeRange{{'0', '9'}, {'A', 'F'}, {'a', 'f'}})
	case 'w', 'W':
		s = wordSet()
	}
	if e >= 'A' && e <= 'Z' {
		return s.complement()
	}
	return s
}

// wordSet is Oniguruma's \w: Alphabetic, marks, decimal digits and connector punctuation; below
// U+0100 it reads its ISO-8859-1 table, which also counts ¹ ² ³ ¼ ½ ¾ (category No) as word
// characters.
var wordSet = sync.OnceValue(func() runeSet {
	sets := categorySets()
	latin1No := sets["no"].intersect(runeSet{{0, 0xFF}})
	return newRuneSet(regexAlphabetic, sets["m"], sets["nd"], sets["pc"], latin1No)
})
