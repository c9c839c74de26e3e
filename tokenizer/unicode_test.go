package tokenizer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
