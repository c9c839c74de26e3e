package jsonmode

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// The recognizer's contract, checked against encoding/json on arbitrary bytes, for each kind of
// State (any value; an object, as NewObject; an object without whitespace outside strings, as
// NewObject().Compact(), which is what the sampler uses):
//   - Feed accepts exactly the prefixes that can still become a whole text of that kind: the
//     last prefix it accepts is one (encoding/json's decoder reads it as a value cut short, or
//     as a whole one), and the byte it refuses makes one that is not;
//   - Complete says whether the text so far is whole, as json.Valid does (and is an object, for
//     the object kinds);
//   - an accepted prefix can be finished: the completion derived from the State (closing what
//     is open, as a sampler would be steered to) is accepted, makes the State Complete, and the
//     whole is valid JSON of the kind, which encoding/json decodes;
//   - the State stays bounded: its stack no deeper than MaxDepth, whatever the input (and its
//     depth count right).
func FuzzRecognizer(f *testing.F) {
	for _, seed := range []string{
		`{"a": [1, -2.5e+3, true, null, "x\u00e9\n"], "b": {}}`,
		`{"k":[1,"a b",{"c":false}],"d":-0.0E-1}`,
		`  [] `, `"héllo"`, `0`, `-`, `01`, `{"a" 1}`, `{"a": 1,}`, `[1,]`, `{,}`, `tru`, `trux`,
		"\"a\nb\"", `"\x"`, `"\u12g4"`, `1.`, `1.e5`, `{} {}`, `]`, `{"a":1}]`, `{"a":1e999}`,
		"\x00", "\xff\xfe", "{\"\xff\":\"\x80\"}", `{"a":"\uD800"}`, "\t\r\n{}", "{\"a\":1}\n",
		`{"a":[[[{"b":[]}]]]}`,
		// Nesting past MaxDepth: testdata/fuzz/FuzzRecognizer/depth-10001-* (kept out of here,
		// as the fuzzer mutates seeds: inputs of 10 KB take a hundred times longer).
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range kinds {
			checkKind(t, k, data)
		}
	})
}

type kind struct {
	name               string
	start              State
	object, noSpaceOut bool
}

var kinds = []kind{
	{"any value", State{}, false, false},
	{"object", NewObject(), true, false},
	{"compact object", NewObject().Compact(), true, true},
}

func checkKind(t *testing.T, k kind, data []byte) {
	t.Helper()
	s := k.start
	n := 0 // bytes accepted
	everyPrefix := len(data) <= 512
	for ; n < len(data); n++ {
		if everyPrefix {
			checkComplete(t, k, data[:n], s)
		}
		next := s
		if !next.Feed(data[n : n+1]) {
			break
		}
		if next.depth < 0 || next.depth > MaxDepth || len(next.lit) > 4 || next.mode > done {
			t.Fatalf("%s: %.80q: state out of bounds after byte %d: depth %d, literal %q, mode %d", k.name, data, n, next.depth, next.lit, next.mode)
		}
		s = next
	}
	p := data[:n]
	if open := containers(s); len(open) != s.depth {
		t.Fatalf("%s: %.200q: depth %d, but %d containers open", k.name, p, s.depth, len(open))
	}
	if ok, why := oracle(k, p); !ok {
		t.Fatalf("%s: accepts %.200q, which %s", k.name, p, why)
	}
	if n < len(data) {
		if ok, _ := oracle(k, data[:n+1]); ok {
			t.Fatalf("%s: refuses the byte %q after %.200q, though encoding/json reads %.200q as the beginning of a valid text", k.name, data[n], p, data[:n+1])
		}
	}
	checkComplete(t, k, p, s)

	c := completion(s)
	done := s
	if !done.Feed([]byte(c)) || !done.Complete() {
		t.Fatalf("%s: %.200q is accepted, but its completion %.200q is not, or does not complete it", k.name, p, c)
	}
	whole := append(p[:len(p):len(p)], c...)
	if ok, why := oracle(k, whole); !ok || !json.Valid(whole) {
		t.Fatalf("%s: %.200q completed as %.200q, which %s", k.name, p, whole, why)
	}
	if _, err := decode(whole, k.object); err != nil {
		t.Fatalf("%s: %.200q completed as %.200q does not decode: %v", k.name, p, whole, err)
	}
}

// checkComplete compares s.Complete() for the accepted prefix p with encoding/json.
func checkComplete(t *testing.T, k kind, p []byte, s State) {
	t.Helper()
	want := json.Valid(p) && (!k.object || isObject(p))
	if s.Complete() != want {
		t.Fatalf("%s: %.200q: Complete %v, encoding/json says %v", k.name, p, s.Complete(), want)
	}
	if want {
		if _, err := decode(p, k.object); err != nil {
			t.Fatalf("%s: %.200q is complete but does not decode: %v", k.name, p, err)
		}
	}
}

// oracle says whether p can still become a whole text of kind k, judged by encoding/json alone
// (and, if not, why not).
func oracle(k kind, p []byte) (bool, string) {
	if ok, why := jsonPrefix(p); !ok {
		return false, why
	}
	if k.object {
		if v := bytes.TrimLeft(p, " \t\r\n"); len(v) > 0 && v[0] != '{' {
			return false, "is not the beginning of an object"
		}
	}
	if k.noSpaceOut && spaceOutsideStrings(p) {
		return false, "has whitespace outside strings"
	}
	return true, ""
}

// jsonPrefix says whether encoding/json's decoder reads p as one JSON text, whole or cut short:
// a decoder given only whitespace says io.EOF, one given a value cut short io.ErrUnexpectedEOF,
// and one given a bad byte (or the 10001st level of nesting) a syntax error; after a whole value
// only whitespace may follow (as json.Valid says).
func jsonPrefix(p []byte) (bool, string) {
	dec := json.NewDecoder(bytes.NewReader(p))
	var raw json.RawMessage
	switch err := dec.Decode(&raw); {
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return true, ""
	case err != nil:
		return false, "encoding/json refuses: " + err.Error()
	}
	if rest := bytes.TrimLeft(p[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return false, "has more than one value"
	}
	return true, ""
}

func isObject(p []byte) bool {
	v := bytes.TrimLeft(p, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

// spaceOutsideStrings reads a prefix that encoding/json accepts: its strings are where quotes that
// no backslash escapes open and close them.
func spaceOutsideStrings(p []byte) bool {
	in, esc := false, false
	for _, c := range p {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && isSpace(c):
			return true
		}
	}
	return false
}

// decode decodes a whole text as a program would: into a map for an object; numbers kept as
// written (json.Number), as a float64 holds neither 1e999 nor every integer.
func decode(p []byte, object bool) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if object {
		var m map[string]any
		err := dec.Decode(&m)
		return m, err
	}
	var v any
	err := dec.Decode(&v)
	return v, err
}

// completion is the shortest text (nearly) that finishes what s has open: the rest of a string,
// escape, number or literal, a value where one is due, then the containers' ends. It is compact,
// and it is derived from s alone, so that a State whose idea of what is open is wrong gets a
// completion that encoding/json refuses.
func completion(s State) string {
	var b strings.Builder
	endString := func() {
		b.WriteString(`"`)
		if s.isKey {
			b.WriteString(":0")
		}
	}
	switch s.mode {
	case value:
		switch {
		case s.stack == nil && s.objectOnly:
			b.WriteString("{}")
		case s.top() == '[' && s.empty: // closed below
		default:
			b.WriteString("0")
		}
	case key:
		if !s.empty {
			b.WriteString(`"k":0`)
		}
	case colon:
		b.WriteString(":0")
	case str:
		endString()
	case escape:
		b.WriteString("n")
		endString()
	case hex:
		b.WriteString(strings.Repeat("0", int(s.sub)))
		endString()
	case number:
		if s.sub == nSign || s.sub == nDot || s.sub == nE || s.sub == nESign {
			b.WriteString("0")
		}
	case literal:
		b.WriteString(s.lit)
	}
	for _, c := range containers(s) {
		b.WriteByte(map[byte]byte{'{': '}', '[': ']'}[c])
	}
	return b.String()
}

// containers are s's open containers, innermost first.
func containers(s State) []byte {
	var out []byte
	for f := s.stack; f != nil; f = f.outer {
		out = append(out, f.open)
	}
	return out
}
