package tokenizer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dlclark/regexp2"
)

// The expectations in testdata/unicode were made by probing HuggingFace's tokenizer itself, code
// point by code point (tools/tokenizer/unicode.mjs); these tests hold toklip to them without node.

// hexRunes parses "0041 030A" into its string.
func hexRunes(t testing.TB, s string) string {
	t.Helper()
	var sb strings.Builder
	for _, h := range strings.Fields(s) {
		v, err := strconv.ParseUint(h, 16, 32)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		sb.WriteRune(rune(v))
	}
	return sb.String()
}

type nfcOracle struct {
	changed map[string]map[string]string // family -> input -> output, for the families over every code point
	cases   [][3]string                  // family, input, output, for the listed families
	ccc     map[rune]uint8
}

// everyCodePoint are the families probed on every code point: the input they make of one.
var everyCodePoint = map[string]func(c rune) string{
	"single":    func(c rune) string { return string(c) },
	"after345":  func(c rune) string { return "$\u0345" + string(c) },
	"before334": func(c rune) string { return "$" + string(c) + "\u0334" },
}

func readNFCOracle(t testing.TB) *nfcOracle {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "unicode", "nfc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := &nfcOracle{changed: map[string]map[string]string{}, ccc: map[rune]uint8{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		head, out, ok := strings.Cut(line, "\t")
		family, in, ok2 := strings.Cut(head, " ")
		if !ok || !ok2 {
			t.Fatalf("nfc.txt: bad line %q", line)
		}
		input := hexRunes(t, in)
		switch {
		case family == "ccc":
			v, err := strconv.Atoi(out)
			if err != nil {
				t.Fatal(err)
			}
			o.ccc[[]rune(input)[0]] = uint8(v)
		case everyCodePoint[family] != nil:
			if o.changed[family] == nil {
				o.changed[family] = map[string]string{}
			}
			o.changed[family][input] = hexRunes(t, out)
		default:
			output := input
			if out != "=" {
				output = hexRunes(t, out)
			}
			o.cases = append(o.cases, [3]string{family, input, output})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return o
}

// nfcMismatches counts, per family, the oracle's inputs on which nfc differs from it, and
// describes the first few.
func nfcMismatches(o *nfcOracle, nfc func(string) string) (map[string]int, []string) {
	bad := map[string]int{}
	var examples []string
	check := func(family, in, want string) {
		if got := nfc(in); got != want {
			bad[family]++
			if len(examples) < 10 {
				examples = append(examples, fmt.Sprintf("%s %+q: got %+q, want %+q", family, in, got, want))
			}
		}
	}
	for c := rune(0); c <= 0x10FFFF; c++ {
		if c >= 0xD800 && c <= 0xDFFF {
			continue
		}
		for family, make := range everyCodePoint {
			in := make(c)
			want, ok := o.changed[family][in]
			if !ok {
				want = in
			}
			check(family, in, want)
		}
	}
	for _, cs := range o.cases {
		check(cs[0], cs[1], cs[2])
	}
	return bad, examples
}

func TestNFCMatchesOracle(t *testing.T) {
	o := readNFCOracle(t)
	if len(o.cases) < 10000 || len(o.ccc) < 800 {
		t.Fatalf("nfc.txt holds %d cases and %d classes: too few", len(o.cases), len(o.ccc))
	}
	bad, examples := nfcMismatches(o, NFC)
	for _, e := range examples {
		t.Error(e)
	}
	if len(bad) > 0 {
		t.Errorf("mismatches per family: %v", bad)
	}
	// The class every code point behaves as having (those that decompose are never seen whole).
	for c := rune(0); c <= 0x10FFFF; c++ {
		if _, decomposes := nfcDecomposition[c]; decomposes {
			continue
		}
		if got, want := nfcCombiningClass[c], o.ccc[c]; got != want {
			t.Errorf("U+%04X: combining class %d, the oracle's is %d", c, got, want)
		}
	}
}

// NFC keeps bytes that are not UTF-8, and nothing composes or reorders across them.
func TestNFCInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\xff\u0301":                  "a\xff\u0301",
		"a\u0301\xff":                  "\u00e1\xff",
		"\xc3":                         "\xc3",
		"e\u0301\xe2\x82":              "\u00e9\xe2\x82",
		"\u0301\u0316\xfe\u0301\u0316": "\u0316\u0301\xfe\u0316\u0301",
	} {
		if got := NFC(in); got != want {
			t.Errorf("NFC(%+q) = %+q, want %+q", in, got, want)
		}
	}
}

// A run of a million combining marks is sorted and composed in time (no quadratic step), and no
// U+034F is put into it.
func TestNFCLongRun(t *testing.T) {
	in := "a" + strings.Repeat("\u0301\u0316", 500000)
	want := "\u00e1" + strings.Repeat("\u0316", 500000) + strings.Repeat("\u0301", 499999)
	if got := NFC(in); got != want {
		t.Fatalf("NFC of a long run: %d bytes, want %d", len(got), len(want))
	}
}

// allCodePoints is every code point a string can hold, in order.
var allCodePoints = sync.OnceValue(func() []rune {
	rs := make([]rune, 0, 0x110000-0x800)
	for c := rune(0); c <= 0x10FFFF; c++ {
		if c < 0xD800 || c > 0xDFFF {
			rs = append(rs, c)
		}
	}
	return rs
})

// matched runs a translated pattern that matches one character at a time over every code point
// through regexp2, and returns the set of those it matches.
func matched(t *testing.T, pattern, translated string) runeSet {
	t.Helper()
	re, err := regexp2.Compile("(?:"+translated+")+", regexp2.None)
	if err != nil {
		t.Fatalf("%s: %v", pattern, err)
	}
	all := allCodePoints()
	var got []runeRange
	m, err := re.FindRunesMatch(all)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		got = append(got, runeRange{all[m.Index], all[m.Index+m.Length-1]})
	}
	if err != nil {
		t.Fatal(err)
	}
	return newRuneSet(got)
}

func readPropsOracle(t *testing.T) map[string]runeSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "unicode", "props.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]runeSet{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		pattern, list, _ := strings.Cut(line, "\t")
		var rs []runeRange
		for _, f := range strings.Fields(list) {
			a, b, isRange := strings.Cut(f, "-")
			lo, err1 := strconv.ParseUint(a, 16, 32)
			hi := lo
			var err2 error
			if isRange {
				hi, err2 = strconv.ParseUint(b, 16, 32)
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("props.txt: %q: bad range %q", pattern, f)
			}
			rs = append(rs, runeRange{rune(lo), rune(hi)})
		}
		out[pattern] = newRuneSet(rs)
	}
	return out
}

// Every class the oracle was probed with matches the same code points once translated, run
// through regexp2 on every code point: the general categories, \s \d \w \h and their negations,
// classes built of them, and letters under (?i).
func TestRegexClassesMatchOracle(t *testing.T) {
	oracle := readPropsOracle(t)
	if len(oracle) < 90 {
		t.Fatalf("props.txt holds %d classes: too few", len(oracle))
	}
	// What one character folds to several (İ to i and U+0307) is refused, not approximated.
	refused := map[string]bool{"(?i:\u0130)": true}
	for pattern, want := range oracle {
		translated, err := translatePattern(pattern)
		var perr *PatternError
		if refused[pattern] {
			if !errors.As(err, &perr) {
				t.Errorf("%s: translated, want a *PatternError", pattern)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", pattern, err)
			continue
		}
		if diff := describeDiff(matched(t, pattern, translated).intersect(noSurrogates), want); diff != "" {
			t.Errorf("%s: %s", pattern, diff)
		}
	}
}

// describeDiff names the first code points in one set and not the other.
func describeDiff(got, want runeSet) string {
	extra := got.intersect(want.complement())
	missing := want.intersect(got.complement())
	if len(extra) == 0 && len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("matches %v that the oracle does not, and not %v that it does", head(extra), head(missing))
}

func head(s runeSet) []string {
	var out []string
	for _, r := range s[:min(len(s), 4)] {
		out = append(out, fmt.Sprintf("U+%04X..U+%04X", r.first, r.last))
	}
	return out
}
