package modelfiles

import (
	"reflect"
	"strings"
	"testing"
)

const demoModelfile = `# the demo model
FROM ./lm.gguf
vision ./vision.gguf

PARAMETER temperature 0.7
PARAMETER stop "<|im_end|>"
PARAMETER stop "two words"
PARAMETER guidance_scale 3
PARAMETER image_top_k 100
SYSTEM """You describe and draw
simple scenes."""
TEMPLATE """{{ .Prompt }}"""
LICENSE "Apache-2.0"
MESSAGE user Describe the image.
MESSAGE assistant "A small red star in the center."
`

func TestParse(t *testing.T) {
	mf, err := Parse(strings.NewReader(demoModelfile))
	if err != nil {
		t.Fatal(err)
	}
	want := &Modelfile{
		From: "./lm.gguf", Vision: "./vision.gguf",
		Parameters: []Param{{"temperature", "0.7"}, {"stop", "<|im_end|>"}, {"stop", "two words"},
			{"guidance_scale", "3"}, {"image_top_k", "100"}},
		System: "You describe and draw\nsimple scenes.", Template: "{{ .Prompt }}", License: []string{"Apache-2.0"},
		Messages: []Message{{"user", "Describe the image."}, {"assistant", "A small red star in the center."}},
	}
	if !reflect.DeepEqual(mf, want) {
		t.Fatalf("parsed\n%#v\nwant\n%#v", mf, want)
	}
	again, err := Parse(strings.NewReader(mf.String()))
	if err != nil || !reflect.DeepEqual(again, mf) {
		t.Fatalf("round trip through String:\n%s\n%#v, %v", mf.String(), again, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ file, want string }{
		{"", "line 1: no FROM"},
		{"# only a comment\n", "line 1: no FROM"},
		{"FROM a.gguf\nFROM b.gguf\n", "line 2: a second FROM"},
		{"FROM a.gguf\nVISION\n", "line 2: VISION needs a file"},
		{"FROM a.gguf\nADAPTER x\n", `line 2: unknown instruction "ADAPTER"`},
		{"FROM a.gguf\nPARAMETER temperature\n", "line 2: PARAMETER needs a name and a value"},
		{"FROM a.gguf\nPARAMETER warmth 3\n", `line 2: unknown parameter "warmth"`},
		{"FROM a.gguf\n\nPARAMETER top_k 2.5\n", `line 3: parameter top_k: "2.5" is not a whole number`},
		{"FROM a.gguf\nPARAMETER temperature hot\n", `line 2: parameter temperature: "hot" is not a number`},
		{"FROM a.gguf\nSYSTEM \"\"\"never\nclosed\n", `line 2: the """ opened here is never closed`},
		{"FROM a.gguf\nSYSTEM \"\"\"a\"\"\" b\n", `line 2: text after the closing """`},
		{"FROM a.gguf\nMESSAGE robot hi\n", "line 2: MESSAGE needs a role"},
		{"FROM a.gguf\nPARAMETER min_p 2\n", "line 2: parameter min_p: 2 is not in [0, 1]"},
		{"FROM a.gguf\nPARAMETER guidance_scale 0.5\n", "line 2: parameter guidance_scale: 0.5 is not in [1, 20]"},
	}
	for _, c := range cases {
		_, err := Parse(strings.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.file, err, c.want)
		}
	}
}

// A MESSAGE's text may be a """ string over several lines, as in ollama's Modelfiles (and as
// String writes a message of several lines).
func TestParseMessageOfLines(t *testing.T) {
	mf, err := Parse(strings.NewReader("FROM a\nMESSAGE user \"\"\"two\nlines\"\"\"\nMESSAGE assistant \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Message{{"user", "two\nlines"}, {"assistant", ""}}; !reflect.DeepEqual(mf.Messages, want) {
		t.Errorf("messages %q, want %q", mf.Messages, want)
	}
}

// String writes each value in the plainest form that reads back as the same value: as it is,
// else a """ string, else Go-quoted.
func TestStringForms(t *testing.T) {
	mf := &Modelfile{
		From: "0 ", Vision: "./v.gguf",
		Parameters: []Param{{"stop", "\n\n"}, {"stop", "a b"}, {"stop", "a\u00a0"}, {"temperature", "0.5"}},
		Template:   "{{ .System }}\n{{ .Prompt }}", System: " leading space\r\nand a CRLF",
		License:  []string{`MIT "as is"`, `ends with a quote"`, `a """ b`},
		Messages: []Message{{"user", ""}, {"assistant", "one\ntwo"}},
	}
	want := `FROM """0 """
VISION ./v.gguf
PARAMETER stop "\n\n"
PARAMETER stop a b
PARAMETER stop "a\u00a0"
PARAMETER temperature 0.5
TEMPLATE """{{ .System }}
{{ .Prompt }}"""
SYSTEM " leading space\r\nand a CRLF"
LICENSE MIT "as is"
LICENSE ends with a quote"
LICENSE a """ b
MESSAGE user ""
MESSAGE assistant """one
two"""
`
	if got := mf.String(); got != want {
		t.Fatalf("String:\n%s\nwant\n%s", got, want)
	}
	again, err := Parse(strings.NewReader(want))
	if err != nil || !reflect.DeepEqual(again, mf) {
		t.Fatalf("read back as %#v, %v", again, err)
	}
}
