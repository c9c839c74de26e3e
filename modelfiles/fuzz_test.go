package modelfiles

import (
	"errors"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseModelfile feeds arbitrary text to Parse and checks what it promises:
//   - a refusal is a *ParseError whose line is one of the input's lines (or the one after the
//     last, for what is missing at the end), in a one-line message that starts "line N: ";
//   - an accepted file holds what Parse checks: a FROM, known parameters whose values are of their
//     kind and in their range (a number, never NaN), messages of the three roles;
//   - String writes it back so that it parses again to an equal Modelfile, and String of that
//     is the same text (the store keeps String's text and parses it whenever a model is opened).
func FuzzParseModelfile(f *testing.F) {
	demo, err := os.ReadFile("toklip-demo/Modelfile")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		demoModelfile,
		string(demo),
		"FROM a.gguf\n",
		"FROM \"a b.gguf\"\nVISION \"\"\"v.gguf\"\"\"\n",
		"FROM \"\"\"0 \"\"\"\n",
		"FROM a\r\nSYSTEM \"\"\"one\r\ntwo\r\n\"\"\"\r\n",
		"FROM a\nTEMPLATE \"\"\"\n{{ .System }}\n\n{{ .Prompt }}\n\"\"\"\n",
		"FROM a\nMESSAGE user \"\"\"two\nlines\"\"\"\nMESSAGE assistant \"quoted \\\"text\\\"\"\n",
		"FROM a\nPARAMETER stop \"\\n\\n\"\nPARAMETER stop \"<|im_end|>\"\nPARAMETER seed 42\nPARAMETER num_predict -1\n",
		"FROM a\nPARAMETER temperature 1e-3\nPARAMETER top_p 0x1p-1\nPARAMETER repeat_penalty +1.1\n",
		"FROM a\nLICENSE \"\"\nLICENSE \"\"\"MIT\"\"\"\nSYSTEM \"\"\"a\"\"b\"\"\"\n",
		"from a\nsystem hi\n# a comment\n\n  # an indented one\nlicense \"x\\ty\"\n",
		"FROM a\nSYSTEM \"\"\"never\nclosed\n",
		"FROM a\nPARAMETER temperature NaN\n",
		"\xef\xbb\xbfFROM a\n",
		"FROM a\x00b\nSYSTEM \x7f\u00a0\u2028\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		mf, err := Parse(strings.NewReader(text))
		if err != nil {
			checkParseError(t, text, err)
			return
		}
		checkParsed(t, mf)
		written := mf.String()
		again, err := Parse(strings.NewReader(written))
		if err != nil {
			t.Fatalf("%q parses to\n%#v\nwhose String\n%q\ndoes not parse: %v", text, mf, written, err)
		}
		if !reflect.DeepEqual(again, mf) {
			t.Fatalf("%q parses to\n%#v\nwhose String\n%q\nparses to\n%#v", text, mf, written, again)
		}
		if rewritten := again.String(); rewritten != written {
			t.Fatalf("String is not stable: %q, then %q", written, rewritten)
		}
	})
}

func checkParseError(t *testing.T, text string, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%q: error %q (%T) is not a *ParseError", text, err, err)
	}
	lines := strings.Count(text, "\n") + 1
	if pe.Line < 1 || pe.Line > lines+1 {
		t.Fatalf("%q (%d lines): error at line %d: %v", text, lines, pe.Line, err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "line "+strconv.Itoa(pe.Line)+": ") || strings.ContainsAny(msg, "\n\r") || pe.Msg == "" {
		t.Fatalf("%q: error %q does not start with its line, or is more than one line", text, msg)
	}
}

func checkParsed(t *testing.T, mf *Modelfile) {
	t.Helper()
	if mf.From == "" {
		t.Fatalf("accepted without a FROM: %#v", mf)
	}
	for _, p := range mf.Parameters {
		kind, ok := paramKinds[p.Name]
		if !ok || p.Value == "" {
			t.Fatalf("accepted the parameter %q = %q", p.Name, p.Value)
		}
		if kind == "string" {
			continue
		}
		v, err := strconv.ParseFloat(p.Value, 64)
		if err != nil || math.IsNaN(v) {
			t.Fatalf("accepted the %s parameter %s = %q", kind, p.Name, p.Value)
		}
		if _, err := strconv.Atoi(p.Value); kind == "int" && err != nil {
			t.Fatalf("accepted the int parameter %s = %q", p.Name, p.Value)
		}
		if r, ok := paramRanges[p.Name]; ok && (v < r[0] || v > r[1]) {
			t.Fatalf("accepted %s = %q, outside [%g, %g]", p.Name, p.Value, r[0], r[1])
		}
	}
	for _, m := range mf.Messages {
		if !slices.Contains([]string{"system", "user", "assistant"}, m.Role) {
			t.Fatalf("accepted a message of role %q", m.Role)
		}
	}
}
