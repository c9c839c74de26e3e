package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/sampler"
)

// runRun answers one message, or, given no message, chats in the terminal. Answers print as they
// come; images the model draws are written into the working folder under names not taken yet, and
// their paths printed.
func runRun(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	var images multiFlag
	fs.Var(&images, "image", "an image file to attach (repeatable)")
	temperature := fs.Float64("temperature", 0, "sampling temperature of the text (0: greedy)")
	seed := fs.Uint64("seed", 0, "random seed")
	draw := fs.Bool("draw", false, "let the answer contain images")
	exif := exifFlag(fs)
	gpu := gpuFlag(fs)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	// [MODEL] [MESSAGE]: one argument is a model when it names one, else the message.
	var name, msg string
	switch {
	case len(pos) == 2:
		name, msg = pos[0], pos[1]
	case len(pos) == 1 && isModelName(pos[0]):
		name = pos[0]
	case len(pos) == 1:
		msg = pos[0]
	case len(pos) > 2:
		return fmt.Errorf("%w: give [MODEL] and at most one quoted message", errUsage)
	}
	var opts llm.EngineOptions
	if err := exif(&opts); err != nil {
		return err
	}
	if *lmPath == "" && *visionPath == "" {
		r, err := serverOrLocal("loading the model in this process")
		if err != nil {
			return err
		}
		if r != nil { // the server applies the model's Modelfile; only the flags given are sent
			if name == "" {
				name = modelfiles.DemoName
			}
			c := &chatter{remote: r, model: name, out: stdout, options: map[string]any{}}
			c.opts.Images = *draw
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "temperature":
					c.options["temperature"] = *temperature
				case "seed":
					c.options["seed"] = *seed
				}
			})
			return c.start(images, msg)
		}
	}
	e, mf, err := openModel(name, *lmPath, *visionPath, opts, gpu)
	if err != nil {
		return err
	}
	defer e.Close()
	o := mf.Options()
	fromModelfile(fs, "temperature", o.Temperature)
	fromModelfile(fs, "seed", o.Seed)
	c := &chatter{e: e, out: stdout, opts: llm.ChatOptions{
		Sampler: sampler.Params{Temperature: float32(*temperature), Seed: *seed},
		Images:  *draw,
		Image:   llm.ImageOptions{Guidance: llm.DefaultGuidance, Sampler: sampler.Params{Seed: *seed}},
		Stop:    o.Stop,
	}}
	// The Modelfile's other parameters mean what they mean on the server.
	setFrom(&c.opts.Sampler.TopP, o.TopP)
	setFrom(&c.opts.Sampler.MinP, o.MinP)
	setFrom(&c.opts.Sampler.RepeatPenalty, o.RepeatPenalty)
	setFrom(&c.opts.Sampler.PresencePenalty, o.PresencePenalty)
	setFrom(&c.opts.Sampler.FrequencyPenalty, o.FrequencyPenalty)
	setFrom(&c.opts.Image.Guidance, o.Guidance)
	if o.TopK != nil {
		c.opts.Sampler.TopK = *o.TopK
	}
	if o.RepeatLastN != nil {
		c.opts.Sampler.RepeatLastN = *o.RepeatLastN
	}
	if o.NumPredict != nil {
		c.opts.MaxTokens = *o.NumPredict
	}
	if mf != nil && mf.System != "" {
		c.system = []llm.Message{{Role: "system", Content: []llm.Part{{Text: mf.System}}}}
	}
	return c.start(images, msg)
}

// start attaches the images, then answers msg, or chats when there is none.
func (c *chatter) start(images []string, msg string) error {
	for _, path := range images {
		if err := c.attach(path); err != nil {
			return err
		}
	}
	if msg != "" {
		return c.say(msg)
	}
	return c.interactive(os.Stdin)
}

func isModelName(s string) bool {
	if s == modelfiles.DemoName {
		return true
	}
	st, err := openStore()
	if err != nil {
		return false
	}
	ms, err := st.List()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.Name == s {
			return true
		}
	}
	return false
}

// setFrom sets a float32 option to a Modelfile's value, if it has one.
func setFrom(dst *float32, v *float64) {
	if v != nil {
		*dst = float32(*v)
	}
}

// chatter is a conversation in the terminal, answered by an engine in this process or by a
// server.
type chatter struct {
	e       *llm.Engine
	remote  *remote        // the server, when there is one (e is nil then)
	model   string         // the model the server answers with
	options map[string]any // ollama's options sent to it
	out     io.Writer
	opts    llm.ChatOptions
	system  []llm.Message // the Modelfile's SYSTEM, kept by /clear
	history []llm.Message
	pending []llm.Part // images attached to the next message
}

func (c *chatter) attach(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c.pending = append(c.pending, llm.Part{Image: b})
	return nil
}

// say sends one message with the attached images and prints the answer.
func (c *chatter) say(msg string) error {
	user := llm.Message{Role: "user", Content: append(c.pending, llm.Part{Text: msg})}
	c.pending = nil
	lineStart := true // whether the output so far ends a line: images go on lines of their own
	newline := func() {
		if !lineStart {
			fmt.Fprintln(c.out)
			lineStart = true
		}
	}
	msgs := append(append(slices.Clone(c.system), c.history...), user)
	if c.remote != nil {
		options := c.options
		if c.opts.Images {
			options = maps.Clone(c.options)
			options["draw"] = true
		}
		text, err := c.remote.chat(c.model, msgs, options, c.out)
		if err != nil {
			return err
		}
		c.history = append(c.history, user, llm.Message{Role: "assistant", Content: []llm.Part{{Text: text}}})
		return nil
	}
	run, err := c.e.Chat(context.Background(), llm.ChatRequest{Messages: msgs, Options: c.opts})
	if err != nil {
		return err
	}
	var ans *llm.Answer
	for ev := range run.Events() {
		switch ev := ev.(type) {
		case llm.TextDelta:
			fmt.Fprint(c.out, ev.Text)
			lineStart = strings.HasSuffix(ev.Text, "\n")
		case llm.ImageDone:
			newline()
			if path, err := writeNewPNG("toklip-image", ev.Image); err != nil {
				fmt.Fprintf(c.out, "[image not written: %v]\n", err)
			} else {
				fmt.Fprintf(c.out, "[image: %s]\n", path)
			}
		case llm.ChoiceDone:
			ans = ev.Answer
		case llm.Failed:
			newline()
			return ev.Err
		}
	}
	newline()
	c.history = append(c.history, user, llm.Message{Role: "assistant", Content: []llm.Part{{Text: ans.Text()}}})
	return nil
}

const interactiveHelp = `Type a message and press Enter. Commands:
  /image PATH   attach an image to the next message
  /draw         let answers draw images, or stop them (now %s)
  /clear        forget the conversation
  /bye          leave (so does Ctrl-D)
`

// interactive reads messages and commands from in until /bye or its end.
func (c *chatter) interactive(in io.Reader) error {
	onOff := map[bool]string{true: "on", false: "off"}
	fmt.Fprintf(c.out, interactiveHelp, onOff[c.opts.Images])
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for fmt.Fprint(c.out, ">>> "); sc.Scan(); fmt.Fprint(c.out, ">>> ") {
		line := strings.TrimSpace(sc.Text())
		cmd, arg, _ := strings.Cut(line, " ")
		switch {
		case line == "":
		case cmd == "/bye":
			return nil
		case cmd == "/image":
			if err := c.attach(strings.TrimSpace(arg)); err != nil {
				fmt.Fprintf(c.out, "%v\n", err)
			} else {
				fmt.Fprintf(c.out, "attached %s\n", strings.TrimSpace(arg))
			}
		case cmd == "/draw":
			c.opts.Images = !c.opts.Images
			fmt.Fprintf(c.out, "drawing %s\n", onOff[c.opts.Images])
		case cmd == "/clear":
			c.history, c.pending = c.history[:0], nil
			fmt.Fprintln(c.out, "conversation cleared")
		case strings.HasPrefix(cmd, "/"):
			fmt.Fprintf(c.out, "unknown command %s\n", cmd)
		default:
			if err := c.say(line); err != nil {
				fmt.Fprintf(c.out, "error: %v\n", err)
			}
		}
	}
	fmt.Fprintln(c.out)
	return sc.Err()
}
