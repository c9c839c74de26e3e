package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ollama/ollama/api"
	"golang.org/x/term"

	"github.com/toklip/toklip/internal/lineedit"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/options"
)

// runRun answers one message, or, given no message on a terminal, chats in it. Answers print as
// they come; images the model draws are written into the working folder under names not taken
// yet, and their paths printed. A message piped into stdin is answered with only the answer on
// stdout (before the message given as an argument, if any, as ollama's run joins them).
func runRun(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	var images multiFlag
	fs.Var(&images, "image", "an image file to attach (repeatable); image paths in the message are attached too")
	temperature := fs.Float64("temperature", 0, "sampling temperature of the text, 0: greedy (default: the model's temperature, else 0.8)")
	seed := fs.Uint64("seed", 0, "random seed (default: a random one; -verbose prints it)")
	draw := fs.Bool("draw", false, "let the answer contain images")
	verbose := fs.Bool("verbose", false, "print the seed and the answer's timings on stderr")
	exif := exifFlag(fs)
	gpu := gpuFlag(fs)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	var opts llm.EngineOptions
	if err := exif(&opts); err != nil {
		return err
	}
	var r *remote // the server that answers, if one does
	if *lmPath == "" && *visionPath == "" {
		if r, err = serverOrLocal("loading the model in this process"); err != nil {
			return err
		}
	}
	// [MODEL] [MESSAGE]: one argument is a model when it names one, else the message; a single
	// word that names no model is taken for a misspelled name rather than sent to the demo model.
	var name, msg string
	byFiles := *lmPath != "" || *visionPath != ""
	switch {
	case len(pos) == 2:
		name, msg = pos[0], pos[1]
	case len(pos) == 1 && !byFiles && knownModel(r, pos[0]):
		name = pos[0]
	case len(pos) == 1 && !byFiles && looksLikeName(pos[0]):
		return unknownModel(pos[0])
	case len(pos) == 1:
		msg = pos[0]
	case len(pos) > 2:
		return fmt.Errorf("%w: give [MODEL] and at most one quoted message", errUsage)
	}
	for _, p := range images { // a wrong path is refused before the model loads
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	interactive := msg == "" && isTerminal(os.Stdin)
	if !isTerminal(os.Stdin) {
		piped, err := io.ReadAll(io.LimitReader(os.Stdin, maxPiped+1))
		if err != nil {
			return err
		}
		if len(piped) > maxPiped {
			return fmt.Errorf("the message piped into stdin is over %d MB", maxPiped>>20)
		}
		msg = strings.TrimSpace(strings.Join([]string{strings.TrimSpace(string(piped)), msg}, "\n\n"))
		if msg == "" && len(images) == 0 {
			return fmt.Errorf("%w: no message: stdin was empty and none was given", errUsage)
		}
	}
	c := &chatter{out: stdout, draw: *draw, verbose: *verbose}
	if f, ok := stdout.(*os.File); ok {
		c.graphics = graphicsProtocol(f)
	}
	// The flags given are parameters over the Modelfile's.
	withFlags := func(mf *modelfiles.Modelfile) *modelfiles.Modelfile {
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "temperature":
				mf = mf.With("temperature", fmt.Sprint(*temperature))
			case "seed":
				mf = mf.With("seed", fmt.Sprint(*seed))
			}
		})
		return mf
	}
	if r != nil { // the server applies the model's Modelfile; only the flags given are sent
		if name == "" {
			name = modelfiles.DemoName
		}
		c.remote, c.model = r, name
		c.mf = withFlags(nil)
		return c.start(images, msg, interactive)
	}
	e, mf, err := openModel(name, *lmPath, *visionPath, opts, gpu)
	if err != nil {
		return err
	}
	defer e.Close()
	c.e, c.model, c.base = e, name, mf
	if c.model == "" {
		c.model = modelfiles.DemoName
		if *lmPath != "" {
			c.model = *lmPath
		}
	}
	// The flags given come over the Modelfile's parameters; without a seed from either, a random
	// one, so that sampling differs from run to run (-verbose prints it, -seed repeats it).
	c.mf = withFlags(mf)
	if c.mf.Options().Seed == nil {
		c.mf = c.mf.With("seed", fmt.Sprint(options.RandomSeed()))
	}
	return c.start(images, msg, interactive)
}

// maxPiped bounds a message piped into run.
const maxPiped = 16 << 20

// looksLikeName says whether a lone argument to run is more likely a model's name than a
// message: one word that could name a model.
func looksLikeName(s string) bool { return modelfiles.CheckName(s) == nil }

func unknownModel(name string) error {
	return fmt.Errorf("unknown model %q: `toklip list` shows the models there are (to send one word to the demo model: toklip run %s %s)", name, modelfiles.DemoName, name)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// start attaches the images, then answers msg, or chats when asked to.
func (c *chatter) start(images []string, msg string, interactive bool) error {
	for _, path := range images {
		if err := c.attach(path); err != nil {
			return err
		}
	}
	if !interactive {
		return c.say(context.Background(), msg)
	}
	return c.interactive()
}

// knownModel says whether name is a model: the server's (r), or this machine's when r is nil.
func knownModel(r *remote, name string) bool {
	if r == nil {
		return isModelName(name)
	}
	if name == modelfiles.DemoName {
		return true
	}
	resp, err := r.api.List(context.Background())
	if err != nil {
		return true // the server will say what is wrong
	}
	for _, m := range resp.Models {
		if m.Name == name || strings.TrimSuffix(m.Name, ":latest") == name {
			return true
		}
	}
	return false
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

// ollamaOptions are the same parameters as ollama's request options, for a server (which puts
// them over the model's Modelfile, as it does for any client).
func ollamaOptions(mf *modelfiles.Modelfile, draw bool) map[string]any {
	out := map[string]any{}
	if draw {
		out["draw"] = true
	}
	if mf == nil {
		return out
	}
	for _, p := range mf.Parameters {
		switch modelfiles.ParameterKind(p.Name) {
		case "int":
			n, _ := strconv.ParseInt(p.Value, 10, 64)
			out[p.Name] = n
		case "float":
			f, _ := strconv.ParseFloat(p.Value, 64)
			out[p.Name] = f
		default:
			if p.Name == "stop" {
				stops, _ := out["stop"].([]string)
				out["stop"] = append(stops, p.Value)
			} else {
				out[p.Name] = p.Value
			}
		}
	}
	return out
}

// chatter is a conversation in the terminal, answered by an engine in this process or by a
// server.
type chatter struct {
	e        *llm.Engine
	remote   *remote // the server, when there is one (e is nil then)
	model    string  // the model's name (or file)
	base     *modelfiles.Modelfile
	mf       *modelfiles.Modelfile // base with the flags' and /set's parameters over it (in client mode: only those)
	draw     bool                  // answers may draw images
	verbose  bool
	out      io.Writer
	graphics string // how the terminal shows images (graphicsProtocol); "" where it does not
	system   string // /set system's message, kept by /clear ("": the Modelfile's SYSTEM)
	history  []llm.Message
	pending  []llm.Part // images attached to the next message
	// Ctrl-C during an answer stops it (the chat goes on): the signals, while the chat is
	// interactive.
	interrupts chan os.Signal
}

func (c *chatter) attach(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c.pending = append(c.pending, llm.Part{Image: b})
	return nil
}

// say sends one message with the attached images (and those its words name) and prints the
// answer. Ctrl-C in an interactive chat stops the answer; what was said before it is kept, the
// stopped exchange is not.
func (c *chatter) say(ctx context.Context, msg string) error {
	text, paths := splitImages(msg)
	for _, p := range paths {
		if err := c.attach(expandHome(p)); err != nil {
			return err
		}
		if c.interrupts != nil {
			fmt.Fprintf(c.out, "attached %s\n", p)
		}
	}
	user := llm.Message{Role: "user", Content: append(c.pending, llm.Part{Text: text})}
	c.pending = nil
	var msgs []llm.Message
	if c.system != "" {
		msgs = append(msgs, llm.Message{Role: "system", Content: []llm.Part{{Text: c.system}}})
	}
	msgs = append(append(msgs, c.history...), user)
	if c.remote == nil { // the server starts the conversation so with the model's Modelfile
		msgs = options.Messages(c.base, msgs)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.interrupts != nil {
		select { // a Ctrl-C from before this answer does not stop it
		case <-c.interrupts:
		default:
		}
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-c.interrupts:
				cancel()
			case <-done:
			}
		}()
	}
	start := time.Now()
	var answer string
	var err error
	if c.remote != nil {
		answer, err = c.remote.chat(ctx, c.model, msgs, ollamaOptions(c.mf, c.draw), c.out, c.graphics, imageName(text, time.Now()))
	} else {
		answer, err = c.local(ctx, msgs, imageName(text, time.Now()))
	}
	if ctx.Err() != nil && c.interrupts != nil {
		fmt.Fprintln(c.out, "(stopped)")
		return nil
	}
	if err != nil {
		return err
	}
	if c.verbose {
		if s := c.mf.Options().Seed; s != nil {
			fmt.Fprintf(os.Stderr, "seed: %d\n", *s)
		}
		fmt.Fprintf(os.Stderr, "total duration: %s\n", time.Since(start).Round(time.Millisecond))
	}
	c.history = append(c.history, user, llm.Message{Role: "assistant", Content: []llm.Part{{Text: answer}}})
	return nil
}

// local answers with the engine in this process, printing as the answer comes.
// Its images are written as NAME.png (NAME-2.png, ... for more than one).
func (c *chatter) local(ctx context.Context, msgs []llm.Message, name string) (string, error) {
	lineStart := true // whether the output so far ends a line: images go on lines of their own
	newline := func() {
		if !lineStart {
			fmt.Fprintln(c.out)
			lineStart = true
		}
	}
	defer newline()
	// While an image is drawn, a terminal shows how far it is.
	f, isFile := c.out.(*os.File)
	progress, drawing := isFile && isTerminal(f), false
	defer func() {
		if drawing {
			fmt.Fprint(c.out, "\r\x1b[K")
		}
	}()
	run, err := c.e.Chat(ctx, llm.ChatRequest{Messages: msgs, Options: options.For(options.Ollama(), c.mf.Options()).Chat(c.draw)})
	if err != nil {
		return "", err
	}
	var ans *llm.Answer
	for ev := range run.Events() {
		switch ev := ev.(type) {
		case llm.TextDelta:
			fmt.Fprint(c.out, ev.Text)
			lineStart = strings.HasSuffix(ev.Text, "\n")
		case llm.ImageStarted, llm.ImageStep:
			if progress {
				step, total := 0, 0
				if st, ok := ev.(llm.ImageStep); ok {
					step, total = st.Step, st.Total
				} else {
					total = ev.(llm.ImageStarted).Total
				}
				newline()
				fmt.Fprintf(c.out, "\rdrawing: %d of %d image tokens", step, total)
				drawing = true
			}
		case llm.ImageDone:
			if drawing {
				fmt.Fprint(c.out, "\r\x1b[K") // the progress line gives way to the image's
				drawing = false
			}
			newline()
			if path, err := writeNewPNG(name, ev.Image); err != nil {
				fmt.Fprintf(c.out, "[image not written: %v]\n", err)
			} else {
				fmt.Fprintf(c.out, "[image: %s]\n", path)
			}
			showImage(c.out, c.graphics, ev.Image.Image)
		case llm.ChoiceDone:
			ans = ev.Answer
		case llm.Failed:
			return "", ev.Err
		}
	}
	if ans == nil {
		return "", ctx.Err()
	}
	return ans.Text(), nil
}

const interactiveHelp = `Available commands:
  /set parameter NAME VALUE   set a parameter (temperature, top_k, top_p, seed, num_predict, stop, guidance_scale, ...)
  /set system TEXT            set the system message
  /show [info|parameters|system|modelfile]
                              show the model and the chat's settings
  /image PATH                 attach an image to the next message (or put its path in the message)
  /draw                       let answers draw images, or stop them (now %s)
  /clear                      forget the conversation
  /bye                        leave (so does Ctrl-D)
  /?, /help                   this help

Use """ to begin and end a message over several lines. Ctrl-C stops an answer.
`

// historyPath is where the chat's input history is kept: the toklip folder in the home folder
// ("" with TOKLIP_NOHISTORY set, or without a home folder: kept for this chat only).
func historyPath() string {
	if os.Getenv("TOKLIP_NOHISTORY") != "" {
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".toklip", "history")
}

// interactive chats in the terminal until /bye or Ctrl-D.
func (c *chatter) interactive() error {
	c.interrupts = make(chan os.Signal, 1)
	signal.Notify(c.interrupts, os.Interrupt)
	defer signal.Stop(c.interrupts)
	ed := lineedit.New(os.Stdin, c.out, lineedit.NewHistory(historyPath(), 0))
	fmt.Fprintln(c.out, "Send a message (/? for help, Ctrl-D or /bye to leave)")
	for {
		line, err := ed.Read(">>> ", "... ")
		var stopped *lineedit.Interrupted
		switch {
		case errors.As(err, &stopped):
			if strings.TrimSpace(stopped.Line) == "" {
				fmt.Fprintln(c.out, "Use Ctrl-D or /bye to leave.")
			}
			continue
		case errors.Is(err, io.EOF):
			fmt.Fprintln(c.out)
			return nil
		case err != nil:
			return err
		}
		if bye := c.command(line); bye {
			return nil
		}
	}
}

// command does what one line of the chat says: a /command, or a message to answer. It says
// whether the chat ends.
func (c *chatter) command(line string) (bye bool) {
	line = strings.TrimSpace(line)
	cmd, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	onOff := map[bool]string{true: "on", false: "off"}
	switch {
	case line == "":
	case cmd == "/bye" || cmd == "/exit":
		return true
	case cmd == "/?" || cmd == "/help":
		fmt.Fprintf(c.out, interactiveHelp, onOff[c.draw])
	case cmd == "/image":
		path := unquotePath(arg)
		if err := c.attach(path); err != nil {
			fmt.Fprintf(c.out, "%v\n", err)
		} else {
			fmt.Fprintf(c.out, "attached %s\n", path)
		}
	case cmd == "/draw":
		c.draw = !c.draw
		fmt.Fprintf(c.out, "drawing %s\n", onOff[c.draw])
	case cmd == "/clear":
		c.history, c.pending = c.history[:0], nil
		fmt.Fprintln(c.out, "conversation cleared")
	case cmd == "/set":
		c.set(arg)
	case cmd == "/show":
		c.show(arg)
	case strings.HasPrefix(cmd, "/") && !isImagePath(unquotePath(words(line)[0].value)):
		fmt.Fprintf(c.out, "unknown command %s (/? for help)\n", cmd)
	default: // a message (one that starts with a dragged-in path too)
		if err := c.say(context.Background(), line); err != nil {
			fmt.Fprintf(c.out, "error: %v\n", err)
		}
	}
	return false
}

// set is /set: parameter NAME VALUE... (checked as a Modelfile's), or system TEXT.
func (c *chatter) set(arg string) {
	what, rest, _ := strings.Cut(arg, " ")
	rest = strings.TrimSpace(rest)
	switch what {
	case "parameter":
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			fmt.Fprintln(c.out, "usage: /set parameter NAME VALUE (as a Modelfile's PARAMETER; stop may take several values)")
			return
		}
		name, values := fields[0], fields[1:]
		if name != "stop" {
			values = []string{strings.Join(values, " ")}
		}
		for _, v := range values {
			if err := modelfiles.CheckParameter(name, v); err != nil {
				fmt.Fprintln(c.out, err)
				return
			}
		}
		if name == "num_ctx" || name == "num_gpu" {
			fmt.Fprintf(c.out, "%s is set when the model loads: give it in the model's Modelfile (or -gpu-layers)\n", name)
			return
		}
		c.mf = c.mf.With(name, values...)
		fmt.Fprintf(c.out, "set parameter %s to %s\n", name, strings.Join(values, ", "))
	case "system":
		c.system = strings.Trim(rest, `"`)
		fmt.Fprintln(c.out, "set the system message")
	default:
		fmt.Fprintln(c.out, "usage: /set parameter NAME VALUE, or /set system TEXT")
	}
}

// show is /show: what the chat runs on and with.
func (c *chatter) show(arg string) {
	switch arg {
	case "", "info":
		where := "in this process"
		if c.remote != nil {
			where = "on the server at " + c.remote.url.String()
		}
		fmt.Fprintf(c.out, "model       %s (%s)\n", c.model, where)
		if c.e != nil {
			in := c.e.Info()
			caps := []string{"text"}
			if in.ReadsImages {
				caps = append(caps, "reads images")
			}
			if in.Draws {
				caps = append(caps, "draws images")
			}
			fmt.Fprintf(c.out, "context     %d tokens\ncan         %s\n", in.ContextLength, strings.Join(caps, ", "))
		}
		fmt.Fprintf(c.out, "drawing     %v\nmessages    %d in the conversation\n", map[bool]string{true: "on", false: "off"}[c.draw], len(c.history))
	case "parameters":
		if c.mf == nil || len(c.mf.Parameters) == 0 {
			fmt.Fprintln(c.out, "no parameters set (the model's defaults)")
			return
		}
		for _, p := range c.mf.Parameters {
			fmt.Fprintf(c.out, "%-18s %s\n", p.Name, p.Value)
		}
	case "system":
		system := c.system
		if system == "" && c.base != nil {
			system = c.base.System
		}
		if system == "" {
			fmt.Fprintln(c.out, "no system message")
			return
		}
		fmt.Fprintln(c.out, system)
	case "modelfile":
		var resp api.ShowResponse
		var err error
		switch {
		case c.remote != nil:
			var got *api.ShowResponse
			if got, err = c.remote.api.Show(context.Background(), &api.ShowRequest{Model: c.model}); err == nil {
				resp = *got
			}
			err = apiErr(err)
		case c.base == nil:
			fmt.Fprintln(c.out, "no Modelfile: the model was given by its files")
			return
		default:
			resp, err = localShow(c.model)
		}
		if err != nil {
			fmt.Fprintln(c.out, err)
			return
		}
		fmt.Fprint(c.out, resp.Modelfile)
	default:
		fmt.Fprintln(c.out, "usage: /show [info|parameters|system|modelfile]")
	}
}
