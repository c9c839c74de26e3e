// Package options is the one way from what a model's Modelfile and a request say to the engine's
// options (llm.ChatOptions, llm.ImageOptions), so that a model answers and draws the same through
// `toklip run` and `toklip generate` in their own process, the server's ollama routes and its
// OpenAI routes.
//
// Three layers, each over the one before: the API's own defaults where nothing else is said
// (Ollama's for /api and the command line, as ollama's CLI talks to its native API; OpenAI's for
// /v1), the Modelfile's PARAMETERs, the request's options.
package options

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/sampler"
)

// Options are a request's options, by the names of ollama's options and the Modelfile's
// PARAMETERs.
type Options struct {
	// The text sampler.
	Temperature, TopP, MinP, RepeatPenalty, PresencePenalty, FrequencyPenalty float32
	TopK, RepeatLastN                                                         int
	Seed                                                                      int64 // of text and image ids alike; < 0: a random one for each request
	NumPredict                                                                int   // the most completion tokens; <= 0: what the context holds
	Stop                                                                      []string
	// Images: the classifier-free guidance scale, the sampler of the image ids.
	Guidance         float32
	ImageTemperature float32
	ImageTopK        int
}

// ImageTemperature is the image ids' temperature where neither a Modelfile nor a request sets
// one: 1, plain sampling, as Janus and LlamaGen draw (greedy ids repeat one patch over a real
// model's image; a model that draws best greedy says so with PARAMETER image_temperature 0, as
// the demo model does).
const ImageTemperature = 1

// Ollama are ollama's defaults (api.DefaultOptions: temperature 0.8, top_k 40, top_p 0.9,
// repeat_penalty 1.1 over the last 64 tokens, a random seed), with toklip's for images.
func Ollama() Options {
	d := api.DefaultOptions()
	return Options{Temperature: d.Temperature, TopP: d.TopP, MinP: d.MinP, RepeatPenalty: d.RepeatPenalty,
		PresencePenalty: d.PresencePenalty, FrequencyPenalty: d.FrequencyPenalty, TopK: d.TopK,
		RepeatLastN: d.RepeatLastN, Seed: int64(d.Seed), NumPredict: d.NumPredict,
		Guidance: llm.DefaultGuidance, ImageTemperature: ImageTemperature}
}

// OpenAI are OpenAI's defaults: temperature 1 and top_p 1 (its API reference), nothing else
// that shapes the distribution, a random seed (a request without one is not repeatable there
// either), with toklip's for images.
func OpenAI() Options {
	return Options{Temperature: 1, TopP: 1, RepeatPenalty: 1, Seed: -1,
		Guidance: llm.DefaultGuidance, ImageTemperature: ImageTemperature}
}

// Apply puts the Modelfile's PARAMETERs over o.
func (o *Options) Apply(mf modelfiles.Options) {
	set := func(dst *float32, v *float64) {
		if v != nil {
			*dst = float32(*v)
		}
	}
	seti := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&o.Temperature, mf.Temperature)
	set(&o.TopP, mf.TopP)
	set(&o.MinP, mf.MinP)
	set(&o.RepeatPenalty, mf.RepeatPenalty)
	set(&o.PresencePenalty, mf.PresencePenalty)
	set(&o.FrequencyPenalty, mf.FrequencyPenalty)
	set(&o.Guidance, mf.Guidance)
	set(&o.ImageTemperature, mf.ImageTemperature)
	seti(&o.TopK, mf.TopK)
	seti(&o.RepeatLastN, mf.RepeatLastN)
	seti(&o.NumPredict, mf.NumPredict)
	seti(&o.ImageTopK, mf.ImageTopK)
	if mf.Seed != nil {
		o.Seed = int64(*mf.Seed)
	}
	if len(mf.Stop) > 0 {
		o.Stop = slices.Clone(mf.Stop)
	}
}

// For is the options a request to the model starts from: the API's defaults with its
// Modelfile's PARAMETERs over them.
func For(defaults Options, mf modelfiles.Options) Options {
	defaults.Apply(mf)
	return defaults
}

// FromMap puts a request's options over o: ollama's (checked as ollama checks them, by
// api.Options.FromMap: a wrong type is an error, an unknown name is ignored), and toklip's
// guidance_scale, image_temperature and image_top_k.
func (o *Options) FromMap(m map[string]any) error {
	m = maps.Clone(m)
	for name, dst := range map[string]*float32{"guidance_scale": &o.Guidance, "image_temperature": &o.ImageTemperature} {
		if v, ok := m[name]; ok {
			f, ok := v.(float64)
			if !ok {
				return &Error{Name: name, Reason: "must be a number"}
			}
			*dst = float32(f)
			delete(m, name)
		}
	}
	if v, ok := m["image_top_k"]; ok {
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) {
			return &Error{Name: "image_top_k", Reason: "must be a whole number"}
		}
		o.ImageTopK = int(f)
		delete(m, "image_top_k")
	}
	a := o.api()
	if err := a.FromMap(m); err != nil {
		return &Error{Reason: err.Error()}
	}
	o.Temperature, o.TopP, o.MinP, o.RepeatPenalty = a.Temperature, a.TopP, a.MinP, a.RepeatPenalty
	o.PresencePenalty, o.FrequencyPenalty, o.TopK, o.RepeatLastN = a.PresencePenalty, a.FrequencyPenalty, a.TopK, a.RepeatLastN
	o.Seed, o.NumPredict, o.Stop = int64(a.Seed), a.NumPredict, a.Stop
	return o.Check()
}

func (o *Options) api() api.Options {
	return api.Options{Temperature: o.Temperature, TopP: o.TopP, MinP: o.MinP, RepeatPenalty: o.RepeatPenalty,
		PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty, TopK: o.TopK,
		RepeatLastN: o.RepeatLastN, Seed: int(o.Seed), NumPredict: o.NumPredict, Stop: o.Stop}
}

// Check refuses values the engine cannot use: guidance outside [1, 20] (an Error with its name),
// the sampler's ranges (in the sampler's words, which name the option). ollama's repeat_last_n
// -1 (the whole context) becomes the sampler's 0, which means the same.
func (o *Options) Check() error {
	if o.RepeatLastN == -1 {
		o.RepeatLastN = 0
	}
	if !(o.Guidance >= 1 && o.Guidance <= 20) {
		return &Error{Name: "guidance_scale", Reason: fmt.Sprintf("%g is not in [1, 20]", o.Guidance)}
	}
	if err := o.text(0).Validate(); err != nil { // the seed is no range's
		return &Error{Reason: err.Error()}
	}
	if err := o.image(0).Sampler.Validate(); err != nil {
		return &Error{Reason: "image ids: " + err.Error()}
	}
	return nil
}

// Error is an option a request or Modelfile gives that cannot be used.
type Error struct {
	Name   string // the option, "" where the message names it
	Reason string
}

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Reason
	}
	return e.Name + " " + e.Reason
}

// RandomSeed is a seed for a request that was given none, to be given back to repeat the
// result: below 2^53, so that it survives JSON in every client (JavaScript reads numbers as
// doubles: a larger seed would come back as another number).
func RandomSeed() int64 { return rand.Int64N(1 << 53) }

// seed is o's seed, or a random one.
func (o *Options) seed() uint64 {
	if o.Seed < 0 {
		return uint64(RandomSeed())
	}
	return uint64(o.Seed)
}

// Chat is the engine's options for a chat whose answers may draw images (draw): the seed
// chosen (Sampler.Seed, the same for the images) when o has none.
func (o Options) Chat(draw bool) llm.ChatOptions {
	seed := o.seed()
	c := llm.ChatOptions{
		Sampler: o.text(seed),
		Stop:    slices.Clone(o.Stop),
		Images:  draw,
		Image:   o.image(seed),
	}
	if o.NumPredict > 0 {
		c.MaxTokens = o.NumPredict
	}
	return c
}

// Image is the engine's options for drawing an image from a prompt, the seed chosen
// (Sampler.Seed) when o has none.
func (o Options) Image() llm.ImageOptions { return o.image(o.seed()) }

func (o *Options) text(seed uint64) sampler.Params {
	return sampler.Params{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, MinP: o.MinP,
		RepeatPenalty: o.RepeatPenalty, RepeatLastN: o.RepeatLastN, PresencePenalty: o.PresencePenalty,
		FrequencyPenalty: o.FrequencyPenalty, Seed: seed}
}

func (o *Options) image(seed uint64) llm.ImageOptions {
	return llm.ImageOptions{Guidance: o.Guidance,
		Sampler: sampler.Params{Temperature: o.ImageTemperature, TopK: o.ImageTopK, Seed: seed}}
}

// Messages starts a conversation as the Modelfile says: its SYSTEM, where the conversation has
// no system message of its own, then its MESSAGEs, then msgs (after the system messages msgs
// begins with, which stay first).
func Messages(mf *modelfiles.Modelfile, msgs []llm.Message) []llm.Message {
	if mf == nil {
		return msgs
	}
	lead := 0
	for lead < len(msgs) && msgs[lead].Role == "system" {
		lead++
	}
	out := slices.Clone(msgs[:lead])
	if mf.System != "" && !slices.ContainsFunc(msgs, func(m llm.Message) bool { return m.Role == "system" }) {
		out = append(out, llm.Message{Role: "system", Content: []llm.Part{{Text: mf.System}}})
	}
	for _, m := range mf.Messages {
		out = append(out, llm.Message{Role: m.Role, Content: []llm.Part{{Text: m.Content}}})
	}
	return append(out, msgs[lead:]...)
}
