package modelfiles

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Modelfile is a parsed Modelfile: ollama's syntax (FROM, PARAMETER, TEMPLATE, SYSTEM, LICENSE,
// MESSAGE, # comments, """ multi-line strings) plus VISION, the TokLIP file of a model that reads
// or draws images.
type Modelfile struct {
	From       string    // the LLM's GGUF file (or a model name)
	Vision     string    // the TokLIP GGUF file; "" for a text-only model
	Parameters []Param   // in file order; a name may repeat (stop)
	Template   string    // a chat template, if the file overrides the model's
	System     string    // the default system message
	License    []string  // each LICENSE's text
	Messages   []Message // a conversation to start from
}

// Param is one PARAMETER line.
type Param struct {
	Name, Value string
}

// Message is one MESSAGE line.
type Message struct {
	Role, Content string
}

// paramKinds are the parameters a Modelfile may set, with the kind of their value: the sampler's
// (as ollama's), the context, and the image ones.
var paramKinds = map[string]string{
	"temperature": "float", "top_k": "int", "top_p": "float", "min_p": "float", "seed": "int",
	"repeat_penalty": "float", "repeat_last_n": "int", "presence_penalty": "float",
	"frequency_penalty": "float", "num_predict": "int", "num_ctx": "int", "stop": "string",
	"guidance_scale": "float", "image_temperature": "float", "image_top_k": "int", "image_size": "int",
	"num_gpu": "int", "num_thread": "int",
}

// paramRanges bound the parameters whose values the engine would refuse at request time.
var paramRanges = map[string][2]float64{
	"temperature": {0, 2}, "top_p": {0, 1}, "min_p": {0, 1}, "top_k": {0, math.MaxInt32},
	"repeat_penalty": {0, math.MaxFloat32}, "repeat_last_n": {0, math.MaxInt32},
	"presence_penalty": {-2, 2}, "frequency_penalty": {-2, 2}, "num_ctx": {1, math.MaxInt32},
	"guidance_scale": {1, 20}, "image_temperature": {0, 2}, "image_top_k": {0, math.MaxInt32},
	"image_size": {1, 4096}, "seed": {0, math.MaxInt64}, "num_gpu": {-1, math.MaxInt32}, "num_thread": {1, 1024},
}

// ParseError is a Modelfile error at a line.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Parse reads a Modelfile. Every error names its line and says what is wrong.
func Parse(r io.Reader) (*Modelfile, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20) // lines of up to 16 MB; the buffer grows from 4 KB (String parses each value it writes)
	mf := &Modelfile{}
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Text()
		if line == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff") // the byte order mark some editors write first
		}
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		verb, rest, _ := strings.Cut(text, " ")
		verb = strings.ToUpper(verb)
		rest = strings.TrimSpace(rest)
		start := line
		fail := func(format string, args ...any) error {
			return &ParseError{start, fmt.Sprintf(format, args...)}
		}
		if !slices.Contains(verbs, verb) {
			return nil, fail("unknown instruction %q (FROM, VISION, PARAMETER, TEMPLATE, SYSTEM, LICENSE, MESSAGE)", verb)
		}
		// A MESSAGE's role comes before its text, which may be a """ string over several lines
		// like any other value (String writes a message's lines so).
		var role string
		if verb == "MESSAGE" {
			var ok bool
			role, rest, ok = strings.Cut(rest, " ")
			if !ok || !slices.Contains([]string{"system", "user", "assistant"}, role) {
				return nil, fail("MESSAGE needs a role (system, user or assistant) and a text")
			}
			rest = strings.TrimSpace(rest)
		}
		value, err := readValue(rest, sc, &line)
		if err != nil {
			return nil, &ParseError{start, err.Error()}
		}
		switch verb {
		case "FROM", "VISION":
			if value == "" {
				return nil, fail("%s needs a file (a GGUF path)", verb)
			}
			field := map[string]*string{"FROM": &mf.From, "VISION": &mf.Vision}[verb]
			if *field != "" {
				return nil, fail("a second %s: a model has one %s file", verb, strings.ToLower(verb))
			}
			*field = value
		case "PARAMETER":
			name, v, ok := strings.Cut(value, " ")
			v = unquote(strings.TrimSpace(v))
			if !ok || v == "" {
				return nil, fail("PARAMETER needs a name and a value, as in PARAMETER temperature 0.7")
			}
			if err := CheckParameter(name, v); err != nil {
				return nil, fail("%v", err)
			}
			mf.Parameters = append(mf.Parameters, Param{name, v})
		case "TEMPLATE":
			mf.Template = value
		case "SYSTEM":
			mf.System = value
		case "LICENSE":
			mf.License = append(mf.License, value)
		case "MESSAGE":
			mf.Messages = append(mf.Messages, Message{role, value})
		}
	}
	if err := sc.Err(); err != nil { // a line over the scanner's limit
		return nil, &ParseError{line + 1, err.Error()}
	}
	if mf.From == "" {
		return nil, &ParseError{max(line, 1), "no FROM: a Modelfile names its model file with FROM"}
	}
	return mf, nil
}

// CheckParameter says whether a PARAMETER may have this value: a known name, a value of its kind,
// in its range. The chat's /set parameter checks its values with it too.
func CheckParameter(name, v string) error {
	kind, known := paramKinds[name]
	if !known {
		return fmt.Errorf("unknown parameter %q (known: %s)", name, strings.Join(sortedKeys(paramKinds), ", "))
	}
	if err := checkKind(kind, v); err != nil {
		return fmt.Errorf("parameter %s: %v", name, err)
	}
	if r, ok := paramRanges[name]; ok {
		if f, _ := strconv.ParseFloat(v, 64); f < r[0] || f > r[1] {
			return fmt.Errorf("parameter %s: %s is not in [%g, %g]", name, v, r[0], r[1])
		}
	}
	return nil
}

// ParameterKind is a parameter's kind of value: "int", "float" or "string" ("" for a name that
// is not a parameter).
func ParameterKind(name string) string { return paramKinds[name] }

// With returns a copy of mf whose PARAMETER name has the values given (the ones it had before
// are replaced; no value removes it). A nil mf stands for an empty Modelfile.
func (mf *Modelfile) With(name string, values ...string) *Modelfile {
	out := &Modelfile{}
	if mf != nil {
		*out = *mf
	}
	out.Parameters = nil
	if mf != nil {
		for _, p := range mf.Parameters {
			if p.Name != name {
				out.Parameters = append(out.Parameters, p)
			}
		}
	}
	for _, v := range values {
		out.Parameters = append(out.Parameters, Param{name, v})
	}
	return out
}

var verbs = []string{"FROM", "VISION", "PARAMETER", "TEMPLATE", "SYSTEM", "LICENSE", "MESSAGE"}

// readValue is the rest of an instruction: one line, or a """ string that may span lines.
func readValue(rest string, sc *bufio.Scanner, line *int) (string, error) {
	if !strings.HasPrefix(rest, `"""`) {
		return unquote(rest), nil
	}
	body := rest[3:]
	if end := strings.Index(body, `"""`); end >= 0 {
		if strings.TrimSpace(body[end+3:]) != "" {
			return "", fmt.Errorf(`text after the closing """`)
		}
		return body[:end], nil
	}
	var b strings.Builder
	b.WriteString(body)
	start := *line
	for sc.Scan() {
		*line++
		b.WriteString("\n")
		l := sc.Text()
		if end := strings.Index(l, `"""`); end >= 0 {
			if strings.TrimSpace(l[end+3:]) != "" {
				return "", fmt.Errorf(`text after the closing """ on line %d`, *line)
			}
			b.WriteString(l[:end])
			return strings.TrimPrefix(b.String(), "\n"), nil
		}
		b.WriteString(l)
	}
	return "", fmt.Errorf(`the """ opened here is never closed (from line %d to the end)`, start)
}

// unquote removes one pair of double quotes around a value.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

func checkKind(kind, v string) error {
	switch kind {
	case "int":
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
	case "float":
		// ParseFloat reads "NaN", which every range check lets through (a comparison with NaN
		// is false) and the sampler would turn into NaN probabilities.
		if f, err := strconv.ParseFloat(v, 64); err != nil || math.IsNaN(f) {
			return fmt.Errorf("%q is not a number", v)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// String writes the Modelfile back in its own syntax (for `toklip show --modelfile`, and as the
// store keeps a model's Modelfile, which it parses again whenever the model is opened): it parses
// back to an equal Modelfile, whatever its values hold.
func (mf *Modelfile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", encode("FROM", mf.From, func(m *Modelfile, v string) { m.From = v }))
	if mf.Vision != "" {
		fmt.Fprintf(&b, "VISION %s\n", encode("VISION", mf.Vision, func(m *Modelfile, v string) { m.Vision = v }))
	}
	for _, p := range mf.Parameters {
		fmt.Fprintf(&b, "PARAMETER %s %s\n", p.Name, encode("PARAMETER "+p.Name, p.Value, func(m *Modelfile, v string) {
			m.Parameters = []Param{{p.Name, v}}
		}))
	}
	if mf.Template != "" {
		fmt.Fprintf(&b, "TEMPLATE %s\n", encode("TEMPLATE", mf.Template, func(m *Modelfile, v string) { m.Template = v }))
	}
	if mf.System != "" {
		fmt.Fprintf(&b, "SYSTEM %s\n", encode("SYSTEM", mf.System, func(m *Modelfile, v string) { m.System = v }))
	}
	for _, l := range mf.License {
		fmt.Fprintf(&b, "LICENSE %s\n", encode("LICENSE", l, func(m *Modelfile, v string) { m.License = []string{v} }))
	}
	for _, msg := range mf.Messages {
		fmt.Fprintf(&b, "MESSAGE %s %s\n", msg.Role, encode("MESSAGE "+msg.Role, msg.Content, func(m *Modelfile, v string) {
			m.Messages = []Message{{msg.Role, v}}
		}))
	}
	return b.String()
}

// encode writes v as the value of the instruction that starts with prefix, in the first of these
// forms that Parse reads back as exactly v: as it is (a path, a word, a line of text), a """
// string (a template of several lines), a Go-quoted string (any text: it escapes every quote and
// every byte that is not printable). Parse itself says which form reads back (set puts v where
// that instruction does), as its rules are many: a line's value loses the spaces around it and
// one pair of quotes; a """ string ends at the first """ and loses a line break right after its
// opening """ and a carriage return before each line break; an instruction's first line loses
// its spaces at the end; a value of two lines written as it is is two instructions.
func encode(prefix, v string, set func(*Modelfile, string)) string {
	if v == "" {
		return `""` // as it is, MESSAGE user and PARAMETER stop lose their value
	}
	want, head := &Modelfile{From: "x"}, "FROM x\n"
	if prefix == "FROM" {
		want, head = &Modelfile{}, ""
	}
	set(want, v)
	for _, form := range []string{v, `"""` + v + `"""`} {
		got, err := Parse(strings.NewReader(head + prefix + " " + form + "\n"))
		if err == nil && reflect.DeepEqual(got, want) {
			return form
		}
	}
	return strconv.Quote(v)
}

// Float is the value of the last PARAMETER name, as a number (checked when parsed).
func (mf *Modelfile) Float(name string) (float64, bool) {
	for i := len(mf.Parameters) - 1; i >= 0; i-- {
		if p := mf.Parameters[i]; p.Name == name {
			v, err := strconv.ParseFloat(p.Value, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// Int is the value of the last PARAMETER name, as a whole number (checked when parsed): exact
// where Float would round (a seed above 2^53).
func (mf *Modelfile) Int(name string) (int64, bool) {
	for i := len(mf.Parameters) - 1; i >= 0; i-- {
		if p := mf.Parameters[i]; p.Name == name {
			v, err := strconv.ParseInt(p.Value, 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// Strings are the values of every PARAMETER name (stop may repeat).
func (mf *Modelfile) Strings(name string) []string {
	var out []string
	for _, p := range mf.Parameters {
		if p.Name == name {
			out = append(out, p.Value)
		}
	}
	return out
}

// Options are a Modelfile's PARAMETERs as options of the requests made to its model, each nil
// (Stop: empty) where the Modelfile says nothing, so that a request's own value comes first and
// the server's or the command's default last. This is the one place that gives the parameter
// names their meaning; the server's routes and the command line apply it to their requests.
type Options struct {
	// The text sampler's.
	Temperature, TopP, MinP, RepeatPenalty, PresencePenalty, FrequencyPenalty *float64
	TopK, RepeatLastN                                                         *int
	Seed                                                                      *uint64 // text and images
	NumPredict                                                                *int    // most completion tokens; absent for num_predict <= 0 (no limit)
	Stop                                                                      []string
	// The images': the guidance scale, and the sampler of image generation's ids.
	Guidance, ImageTemperature *float64
	ImageTopK                  *int
	// How the model loads: layers on the GPU, as ollama counts them (-1 as many as fit, 0 none,
	// N the last N); the context length of each sequence; ggml's CPU threads.
	NumGPU, NumCtx, NumThread *int
}

// Options reads the Modelfile's PARAMETERs (checked when parsed). A nil Modelfile has none.
func (mf *Modelfile) Options() Options {
	var o Options
	if mf == nil {
		return o
	}
	float := func(name string) *float64 {
		if v, ok := mf.Float(name); ok {
			return &v
		}
		return nil
	}
	integer := func(name string) *int {
		if v, ok := mf.Int(name); ok {
			n := int(v)
			return &n
		}
		return nil
	}
	o.Temperature, o.TopP, o.MinP = float("temperature"), float("top_p"), float("min_p")
	o.RepeatPenalty, o.PresencePenalty, o.FrequencyPenalty = float("repeat_penalty"), float("presence_penalty"), float("frequency_penalty")
	o.TopK, o.RepeatLastN = integer("top_k"), integer("repeat_last_n")
	if v, ok := mf.Int("seed"); ok { // 0 to MaxInt64 (checked when parsed)
		s := uint64(v)
		o.Seed = &s
	}
	if n := integer("num_predict"); n != nil && *n > 0 {
		o.NumPredict = n
	}
	o.Stop = mf.Strings("stop")
	o.Guidance, o.ImageTemperature, o.ImageTopK = float("guidance_scale"), float("image_temperature"), integer("image_top_k")
	o.NumGPU, o.NumCtx, o.NumThread = integer("num_gpu"), integer("num_ctx"), integer("num_thread")
	return o
}
