package jsonmode

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// accepts says whether text is a valid prefix, and whether it is complete.
func accepts(s State, text string) (prefix, complete bool) {
	if !s.Feed([]byte(text)) {
		return false, false
	}
	return true, s.Complete()
}

func TestTable(t *testing.T) {
	cases := []struct {
		text             string
		prefix, complete bool
	}{
		{`{"a": [1, -2.5e+3, true, null, "x\u00e9\n"], "b": {}}`, true, true},
		{`{"a": [1, 2`, true, false},
		{`{"a"`, true, false},
		{`  [] `, true, true},
		{`"héllo"`, true, true},
		{`0`, true, true},
		{`-`, true, false},
		{`01`, false, false},
		{`{"a" 1}`, false, false},
		{`{"a": 1,}`, false, false},
		{`[1,]`, false, false},
		{`{,}`, false, false},
		{`tru`, true, false},
		{`trux`, false, false},
		{`"a` + "\n" + `"`, false, false},
		{`"\x"`, false, false},
		{`"\u12g4"`, false, false},
		{`1.`, true, false},
		{`1.e5`, false, false},
		{`{} {}`, false, false},
		{`]`, false, false},
		{`{"a":1}]`, false, false},
	}
	for _, c := range cases {
		if p, done := accepts(State{}, c.text); p != c.prefix || done != c.complete {
			t.Errorf("%q: prefix %v complete %v, want %v %v", c.text, p, done, c.prefix, c.complete)
		}
	}
	if p, _ := accepts(NewObject(), `[1]`); p {
		t.Error("an object-only state accepts an array")
	}
	if p, done := accepts(NewObject(), ` {"k": [1]}`); !p || !done {
		t.Error("an object-only state refuses an object")
	}
	if p, _ := accepts(NewObject().Compact(), `{"k": 1}`); p {
		t.Error("a compact state accepts whitespace outside strings")
	}
	if p, done := accepts(NewObject().Compact(), `{"k k":[1,"a b"]}`); !p || !done {
		t.Error("a compact state refuses whitespace inside strings")
	}
	// Nesting as deep as encoding/json reads, and no deeper.
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if p, done := accepts(State{}, deep); !p || !done || !json.Valid([]byte(deep)) {
		t.Errorf("%d nested arrays: prefix %v complete %v", MaxDepth, p, done)
	}
	if p, _ := accepts(State{}, strings.Repeat("[", MaxDepth+1)); p || json.Valid([]byte("["+deep+"]")) {
		t.Errorf("%d nested arrays accepted", MaxDepth+1)
	}
}

// Against encoding/json: every prefix of a valid text is accepted and only the whole is complete
// (up to a number's end); random edits are judged as json.Valid judges them.
func TestAgainstEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := rng.IntN(7); {
		case k == 0 && depth < 4:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[string(rune('a'+rng.IntN(26)))+"\"\\\t€"] = gen(depth + 1)
			}
			return m
		case k == 1 && depth < 4:
			var a []any
			for range rng.IntN(4) {
				a = append(a, gen(depth+1))
			}
			return a
		case k == 2:
			return rng.NormFloat64() * 1e6
		case k == 3:
			return rng.IntN(2) == 0
		case k == 4:
			return nil
		default:
			return "s\u0001é" + strings.Repeat("x", rng.IntN(5))
		}
	}
	for range 2000 {
		b, _ := json.MarshalIndent(gen(0), "", " ")
		text := string(b)
		for i := range len(text) {
			if p, _ := accepts(State{}, text[:i]); !p {
				t.Fatalf("refuses the prefix %q of %q", text[:i], text)
			}
		}
		if _, done := accepts(State{}, text); !done {
			t.Fatalf("%q is not complete", text)
		}
		mutated := []byte(text)
		for range 1 + rng.IntN(3) {
			mutated[rng.IntN(len(mutated))] = `{}[],:"\ 0123456789.eE+-tfnrux`[rng.IntN(30)]
		}
		p, done := accepts(State{}, string(mutated))
		if valid := json.Valid(mutated); (p && done) != valid {
			t.Fatalf("%q: prefix %v complete %v, json.Valid %v", mutated, p, done, valid)
		}
	}
}
