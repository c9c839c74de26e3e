package options_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/options"
)

func parse(t *testing.T, text string) *modelfiles.Modelfile {
	t.Helper()
	mf, err := modelfiles.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// The three layers: the request's options over the Modelfile's PARAMETERs over the API's
// defaults; what no layer sets keeps the API's default.
func TestLayers(t *testing.T) {
	mf := parse(t, "FROM m.gguf\nPARAMETER temperature 0.3\nPARAMETER top_k 7\nPARAMETER stop END\nPARAMETER image_top_k 100\nPARAMETER seed 42\n")
	o := options.For(options.Ollama(), mf.Options())
	if err := o.FromMap(map[string]any{"top_k": 9.0, "num_predict": 12.0, "guidance_scale": 5.0}); err != nil {
		t.Fatal(err)
	}
	c := o.Chat(true)
	s := c.Sampler
	if s.Temperature != 0.3 || s.TopK != 9 || s.TopP != 0.9 || s.RepeatPenalty != 1.1 || s.RepeatLastN != 64 || s.Seed != 42 {
		t.Errorf("text sampler %+v", s)
	}
	if c.MaxTokens != 12 || len(c.Stop) != 1 || c.Stop[0] != "END" || !c.Images {
		t.Errorf("chat options %+v", c)
	}
	if i := c.Image; i.Guidance != 5 || i.Sampler.Temperature != options.ImageTemperature || i.Sampler.TopK != 100 || i.Sampler.Seed != 42 {
		t.Errorf("image options %+v", i)
	}

	// OpenAI's defaults under the same Modelfile: its temperature stands, nothing of ollama's.
	o = options.For(options.OpenAI(), mf.Options())
	if s := o.Chat(false).Sampler; s.Temperature != 0.3 || s.TopK != 7 || s.TopP != 1 || s.RepeatPenalty != 1 {
		t.Errorf("OpenAI's defaults with the Modelfile: %+v", s)
	}
	if s := options.OpenAI().Chat(false).Sampler; s.Temperature != 1 || s.TopK != 0 || s.TopP != 1 {
		t.Errorf("OpenAI's defaults: %+v", s)
	}
}

// Without a seed, every request gets its own, in [0, 2^53) (what JSON carries exactly); the
// text and the images of one request share it.
func TestRandomSeed(t *testing.T) {
	seen := map[uint64]bool{}
	for range 8 {
		c := options.Ollama().Chat(true)
		if c.Sampler.Seed != c.Image.Sampler.Seed || c.Sampler.Seed >= 1<<53 {
			t.Fatalf("seeds %d and %d", c.Sampler.Seed, c.Image.Sampler.Seed)
		}
		seen[c.Sampler.Seed] = true
	}
	if len(seen) < 8 {
		t.Errorf("8 requests without a seed drew %d different seeds", len(seen))
	}
	o := options.Ollama()
	if err := o.FromMap(map[string]any{"seed": -1.0}); err != nil || o.Seed >= 0 {
		t.Errorf("ollama's seed -1: %v, seed %d", err, o.Seed)
	}
}

// Options that cannot be used are errors that name them; a wrong type is ollama's error.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"temperature": "hot"}, "temperature"},
		{map[string]any{"temperature": -1.0}, "temperature"},
		{map[string]any{"top_p": 2.0}, "top_p"},
		{map[string]any{"guidance_scale": 0.5}, "guidance_scale 0.5 is not in [1, 20]"},
		{map[string]any{"guidance_scale": "x"}, "guidance_scale must be a number"},
		{map[string]any{"image_top_k": 2.5}, "image_top_k must be a whole number"},
		{map[string]any{"image_temperature": -3.0}, "image ids"},
	} {
		o := options.Ollama()
		err := o.FromMap(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.opts, err, c.want)
		}
	}
	o := options.Ollama()
	if err := o.FromMap(map[string]any{"repeat_last_n": -1.0, "mirostat": 1.0}); err != nil || o.RepeatLastN != 0 {
		t.Errorf("repeat_last_n -1 (the whole context) and an option toklip does not read: %v, %d", err, o.RepeatLastN)
	}
}

// The Modelfile's SYSTEM stands where the conversation has no system message; its MESSAGEs
// always come first.
func TestMessages(t *testing.T) {
	mf := parse(t, "FROM m.gguf\nSYSTEM be brief\nMESSAGE user hi\nMESSAGE assistant hello\n")
	text := func(msgs []llm.Message) string {
		var s []string
		for _, m := range msgs {
			s = append(s, m.Role+":"+m.Content[0].Text)
		}
		return strings.Join(s, " ")
	}
	user := llm.Message{Role: "user", Content: []llm.Part{{Text: "why?"}}}
	if got, want := text(options.Messages(mf, []llm.Message{user})), "system:be brief user:hi assistant:hello user:why?"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	own := llm.Message{Role: "system", Content: []llm.Part{{Text: "be long"}}}
	if got, want := text(options.Messages(mf, []llm.Message{own, user})), "system:be long user:hi assistant:hello user:why?"; got != want {
		t.Errorf("with its own system message: got %q, want %q", got, want)
	}
	if got := text(options.Messages(nil, []llm.Message{user})); got != "user:why?" {
		t.Errorf("no Modelfile: %q", got)
	}
}

// A model's Modelfile sets what its requests start from; a request says the rest.
func Example() {
	mf, _ := modelfiles.Parse(strings.NewReader("FROM lm.gguf\nPARAMETER temperature 0\nPARAMETER seed 7\n"))
	o := options.For(options.Ollama(), mf.Options())
	o.FromMap(map[string]any{"num_predict": 32.0})
	c := o.Chat(false)
	fmt.Println(c.Sampler.Temperature, c.Sampler.TopK, c.Sampler.Seed, c.MaxTokens)
	// Output: 0 40 7 32
}
