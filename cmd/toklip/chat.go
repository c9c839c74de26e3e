package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/options"
)

// openModel opens a model by name or by its two files (see resolveModel), and returns its
// Modelfile's defaults (nil for files given by path).
func openModel(name, lmPath, visionPath string, opts llm.EngineOptions, gpu *gpuLayers) (*llm.Engine, *modelfiles.Modelfile, error) {
	files, mf, err := resolveModel(name, lmPath, visionPath)
	if err != nil {
		return nil, nil, err
	}
	gpu.apply(&opts, mf)
	e, err := llm.Open(context.Background(), files.LM, files.Vision, opts)
	return e, mf, err
}

// gpuLayers is -gpu-layers: how many layers go to GPUs (ollama's num_gpu), "auto" (as many as
// fit, the default), "all", or a number (0: the CPU only).
type gpuLayers struct {
	n   int
	set bool
}

func gpuFlag(fs *flag.FlagSet) *gpuLayers {
	g := &gpuLayers{n: ggml.AutoLayers}
	fs.Var(g, "gpu-layers", "layers on the GPU: auto (as many as fit), all, or N (the last N; 0: CPU only); a Modelfile's PARAMETER num_gpu sets it otherwise")
	return g
}

func (g *gpuLayers) String() string {
	switch {
	case g == nil || g.n == ggml.AutoLayers:
		return "auto"
	case g.n >= ggml.AllLayers:
		return "all"
	}
	return strconv.Itoa(g.n)
}

func (g *gpuLayers) Set(v string) error {
	switch v {
	case "auto":
		g.n = ggml.AutoLayers
	case "all":
		g.n = ggml.AllLayers
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not auto, all or a number of layers", v)
		}
		g.n = n
	}
	g.set = true
	return nil
}

// apply sets how a model loads from its Modelfile, for `serve` (every model the server loads) and
// the commands that load one in this process alike: the layers on the GPU (the flag if given,
// else the Modelfile's num_gpu, else auto), the context length (num_ctx) and ggml's CPU threads
// (num_thread).
func (g *gpuLayers) apply(o *llm.EngineOptions, mf *modelfiles.Modelfile) {
	n := ggml.AutoLayers
	if g != nil {
		n = g.n
	}
	mo := mf.Options()
	if v := mo.NumGPU; v != nil && (g == nil || !g.set) {
		n = *v
	}
	o.Backbone.GPULayers, o.Vision.GPULayers = n, n
	if v := mo.NumCtx; v != nil {
		o.Backbone.ContextLength = *v
	}
	if v := mo.NumThread; v != nil {
		o.Backbone.Threads, o.Vision.Threads = *v, *v
	}
}

// exifFlag declares -exif, how input images' EXIF orientation is taken, and returns a function
// that checks it and sets it in an engine's options.
func exifFlag(fs *flag.FlagSet) func(*llm.EngineOptions) error {
	v := fs.String("exif", "apply", "input images' EXIF orientation: apply (turn photos upright, as their owner sees them) or ignore (the pixels as stored, as TokLIP's official pipeline reads them)")
	return func(o *llm.EngineOptions) error {
		switch *v {
		case "apply":
		case "ignore":
			o.Vision.Decode.IgnoreEXIF = true
		default:
			return fmt.Errorf("%w: -exif %q is not apply or ignore", errUsage, *v)
		}
		return nil
	}
}

// resolveModel finds a model's files and Modelfile: by name (the embedded demo model, or one in
// the store) or as given by -lm and -vision (no Modelfile).
func resolveModel(name, lmPath, visionPath string) (modelfiles.Files, *modelfiles.Modelfile, error) {
	if name != "" && name != modelfiles.DemoName {
		if lmPath != "" || visionPath != "" {
			return modelfiles.Files{}, nil, fmt.Errorf("%w: give a model name or -lm and -vision, not both", errUsage)
		}
		return storedModel(name)
	}
	if lmPath != "" || visionPath != "" {
		lm, vision, err := modelFiles(lmPath, visionPath)
		return modelfiles.Files{LM: lm, Vision: vision}, nil, err
	}
	f, err := modelfiles.Demo()
	if err != nil {
		return f, nil, err
	}
	mf, err := modelfiles.DemoModelfile()
	return f, mf, err
}

// imageFlags are generate's flags as the Modelfile parameters they stand for.
var imageFlags = map[string]string{"guidance": "guidance_scale", "temperature": "image_temperature", "top-k": "image_top_k", "seed": "seed"}

// runGenerate draws one image for a prompt.
func runGenerate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	out := fs.String("o", "", "the PNG file to write (default: a name from the prompt and the time, never over a file)")
	guidance := fs.Float64("guidance", 0, fmt.Sprintf("classifier-free guidance scale, 1: none (default: the model's guidance_scale, else %d)", llm.DefaultGuidance))
	temperature := fs.Float64("temperature", 0, fmt.Sprintf("sampling temperature of the image ids, 0: greedy (default: the model's image_temperature, else %d)", options.ImageTemperature))
	topK := fs.Int("top-k", 0, "sample among the k most likely ids, 0: all (default: the model's image_top_k, else 0)")
	seed := fs.Uint64("seed", 0, "random seed: the same seed draws the same image (default: a random one; -verbose prints it)")
	negative := fs.String("negative", "", "what the image should not be like (the unconditional prompt)")
	verbose := fs.Bool("verbose", false, "print the seed and the time taken on stderr")
	gpu := gpuFlag(fs)
	r, name, prompt, err := remoteWithText(fs, args, lmPath, visionPath)
	if err == nil && *out != "" {
		err = checkOutput(*out)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	if r != nil {
		if *negative != "" {
			return fmt.Errorf("%w: -negative is not sent to a server (ollama's image generation has no negative prompt); set %s to an address where none answers to draw in this process", errUsage, hostEnv)
		}
		opts := map[string]any{}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "guidance":
				opts["guidance_scale"] = *guidance
			case "temperature":
				opts["temperature"] = *temperature
			case "top-k":
				opts["top_k"] = *topK
			case "seed":
				opts["seed"] = *seed
			}
		})
		b, err := r.draw(name, prompt, opts)
		if err != nil {
			return err
		}
		return saveDrawing(stdout, *out, prompt, b, *verbose, start)
	}
	var bad error
	fs.Visit(func(f *flag.Flag) { // checked first: a value a Modelfile cannot hold would be dropped
		if p, ok := imageFlags[f.Name]; ok && bad == nil {
			if err := modelfiles.CheckParameter(p, f.Value.String()); err != nil {
				bad = fmt.Errorf("%w: -%s: %v", errUsage, f.Name, err)
			}
		}
	})
	if bad != nil {
		return bad
	}
	e, mf, err := openModel(name, *lmPath, *visionPath, llm.EngineOptions{}, gpu)
	if err != nil {
		return err
	}
	defer e.Close()
	// The flags given are parameters over the Modelfile's, as run's are; then the options are
	// what the server makes of the same Modelfile (options.Ollama, as ollama's routes).
	fs.Visit(func(f *flag.Flag) {
		if p, ok := imageFlags[f.Name]; ok {
			mf = mf.With(p, f.Value.String())
		}
	})
	o := options.For(options.Ollama(), mf.Options())
	if err := o.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if o.Seed < 0 { // chosen here, so that -verbose can print it
		o.Seed = options.RandomSeed()
	}
	if *verbose {
		fmt.Fprintf(os.Stderr, "seed: %d\n", o.Seed)
	}
	opts := o.Image()
	opts.Negative = *negative
	run, err := e.Draw(context.Background(), llm.DrawRequest{Prompt: prompt, Options: opts})
	if err != nil {
		return err
	}
	answers, _, err := run.Wait()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, answers[0].Parts[0].Image.Image); err != nil {
		return err
	}
	return saveDrawing(stdout, *out, prompt, buf.Bytes(), *verbose, start)
}

// saveDrawing writes a drawn image's PNG to out, or, with no out, under a name from the
// prompt and the time (never over a file), shows it where the terminal can, and says where it
// went.
func saveDrawing(stdout io.Writer, out, prompt string, b []byte, verbose bool, start time.Time) error {
	path := out
	var err error
	if out != "" {
		err = os.WriteFile(out, b, 0o644)
	} else {
		path, err = writeNew(imageName(prompt, time.Now()), b)
	}
	if err != nil {
		return err
	}
	if pic, err := png.Decode(bytes.NewReader(b)); err == nil {
		showImage(os.Stdout, graphicsProtocol(os.Stdout), pic)
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "total duration: %s\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	return nil
}

// imageName is the name (without .png) a drawn image is written under when the user gives
// none: the prompt's first words and the time, as ollama names the images it draws, so that a
// folder of drawings reads and sorts by what was asked: a-red-star-20261207-201530.
func imageName(prompt string, t time.Time) string {
	var words []string
	n := 0
	for _, w := range strings.FieldsFunc(strings.ToLower(prompt), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if n += utf8.RuneCountInString(w) + 1; n > 48 && len(words) > 0 {
			break
		}
		words = append(words, w)
	}
	if len(words) == 0 {
		words = []string{"image"}
	}
	name := strings.Join(words, "-")
	if r := []rune(name); len(r) > 48 { // one long word
		name = string(r[:48])
	}
	return name + "-" + t.Format("20060102-150405")
}

// checkOutput refuses an output path that cannot be written before any work is done for it: a
// folder, or a file in a folder that does not exist.
func checkOutput(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("-o %s is a folder: give a file name", path)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("-o %s: the folder %s does not exist", path, filepath.Dir(path))
	}
	return nil
}

// flagGiven says whether the flag name was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// runScene draws a demo scene: the one a caption describes, or a random one.
func runScene(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scene", flag.ContinueOnError)
	out := fs.String("o", "scene.png", "the PNG file to write")
	seed := fs.Uint64("seed", 1, "random seed (for the variations, and the attributes a caption leaves out)")
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: give at most one caption (quote it)", errUsage)
	}
	s := demo.Scenes(demo.Train, 1, *seed)[0]
	if len(pos) == 1 {
		f := demo.ReadAnswer(pos[0])
		for _, v := range []*int{&f.Shape, &f.Color, &f.Position, &f.Size} {
			if *v < 0 {
				return fmt.Errorf("%q does not name a shape, a color, a position and a size, as in %q", pos[0], s.Caption())
			}
		}
		s.Shape, s.Color, s.Position, s.Size = f.Shape, f.Color, f.Position, f.Size
	}
	if err := writePNG(*out, s.Render()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s\n", *out, s.Caption())
	return nil
}

// remoteWithText parses a command's flags and its [MODEL] TEXT, and finds the server to ask when
// the model is named (not given by -lm and -vision): nil when none answers (or none is asked).
func remoteWithText(fs *flag.FlagSet, args []string, lmPath, visionPath *string) (*remote, string, string, error) {
	pos, err := parse(fs, args, -1)
	if err != nil {
		return nil, "", "", err
	}
	name, text, err := modelAndText(pos)
	if err != nil || *lmPath != "" || *visionPath != "" {
		return nil, name, text, err
	}
	if name == "" {
		name = modelfiles.DemoName
	}
	r, err := serverOrLocal("loading the model in this process")
	return r, name, text, err
}

// modelAndText reads the positional arguments [MODEL] TEXT (no model: "").
func modelAndText(pos []string) (name, text string, err error) {
	switch len(pos) {
	case 1:
		return "", pos[0], nil
	case 2:
		return pos[0], pos[1], nil
	}
	return "", "", fmt.Errorf("%w: give [MODEL] and one quoted text", errUsage)
}

func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeNewPNG writes an image as NAME.png, or NAME-N.png with the first N from 2 whose file does
// not exist yet: never over a file the user has.
func writeNewPNG(name string, g *llm.GeneratedImage) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, g.Image); err != nil {
		return "", err
	}
	return writeNew(name, buf.Bytes())
}

// writeNew writes a PNG's bytes as writeNewPNG does.
func writeNew(name string, b []byte) (string, error) {
	for n := 1; n < 100000; n++ {
		path := name + ".png"
		if n > 1 {
			path = fmt.Sprintf("%s-%d.png", name, n)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			os.Remove(path)
			return "", err
		}
		return path, f.Close()
	}
	return "", fmt.Errorf("no free name %s-N.png in the working folder", name)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
