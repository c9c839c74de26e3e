// Command toklip serves TokLIP-based multimodal models, which read and draw images, and prepares
// their model files.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"github.com/toklip/toklip/ggml"
)

// A command is one verb of the command line.
type command struct {
	summary string
	usage   string // the arguments, after "toklip <name>"
	run     func(args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"convert":   {"convert a HuggingFace folder or a TokLIP checkpoint to a GGUF model", "SRC -o OUT.gguf [-type F16] [-tokenizer tokenizer.json]", runConvert},
	"quantize":  {"rewrite a GGUF model with F16, BF16, Q8_0, Q4_0, Q4_K_M or Q6_K weights", "IN.gguf OUT.gguf -type Q8_0", runQuantize},
	"inspect":   {"check a GGUF model file and print what it holds", "FILE.gguf", runInspect},
	"system":    {"print the CPU features, the devices (GPUs with their free memory), and where a model's layers would go", "[MODEL] [-gpu-layers auto|all|N]", runSystem},
	"serve":     {"serve the OpenAI-style API (chat with images, image generation, models)", "[MODEL] [-host 127.0.0.1] [-port 8750] [-api-key KEY]", runServe},
	"create":    {"store a model from a Modelfile (FROM, VISION, PARAMETER, ...)", "NAME [-f Modelfile]", runCreate},
	"list":      {"list the models (the embedded toklip-demo and the stored ones)", "", runList},
	"show":      {"show a model's files and Modelfile", "NAME [-modelfile]", runShow},
	"rm":        {"remove stored models (their files, when no other model uses them)", "NAME...", runRm},
	"cp":        {"store a model again under another name", "SRC DST", runCp},
	"run":       {"chat in the terminal, or answer one message; attach images with -image FILE (or /image in the chat)", "[MODEL] [-image FILE]... [-draw] [\"message\"]", runRun},
	"ps":        {"list the models a running server holds (TOKLIP_HOST), their size and when each unloads", "", runPS},
	"stop":      {"unload models from a running server (TOKLIP_HOST), each once its requests end", "MODEL...", runStop},
	"generate":  {"draw an image for a prompt", "[MODEL] \"prompt\" [-o out.png] [-guidance 3] [-seed N] [-temperature T]", runGenerate},
	"scene":     {"draw a demo scene (shape, color, position, size), to show the demo model", "[\"a small red circle in the top left corner\"] [-seed N] [-o scene.png]", runScene},
	"version":   {"print toklip's version (also -v, --version)", "", runVersion},
	"eval-demo": {"measure the demo model (or score the PyTorch evaluation's outputs)", "[-lm F -vision F] [-score DIR] [-compare metrics.json] [-against DIR] [-o metrics.json] [-outputs DIR] [-images DIR]", runEvalDemo},
}

// errUsage marks an error in how a command was called (exit status 2).
var errUsage = errors.New("bad arguments")

func main() {
	// ollama's engine logs every load at Info; toklip's own messages go through log.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func logLevel() slog.Level {
	if os.Getenv("TOKLIP_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				printCommandHelp(stdout, args[1], c, c.run([]string{"-h"}, io.Discard))
				return 0
			}
		}
		printUsage(stdout)
		return 0
	}
	if args[0] == "-v" || args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok {
		msg := fmt.Sprintf("toklip: unknown command %q", args[0])
		if near := nearest(args[0]); near != "" {
			msg += fmt.Sprintf("; did you mean %q?", near)
		}
		fmt.Fprintf(stderr, "%s (run 'toklip help' for the list)\n", msg)
		return 2
	}
	// What ggml's CPU backend was built with matters to a server's log and to a debugging
	// session; the other commands keep their output to what was asked (system prints it itself).
	if (args[0] == "serve" || os.Getenv("TOKLIP_DEBUG") != "") && !slices.Contains(args, "-h") && !slices.Contains(args, "--help") {
		ggml.LogCPUFeatures(slog.New(slog.NewTextHandler(stderr, nil)))
	}
	if err := c.run(args[1:], stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, args[0], c, err)
			return 0
		}
		fmt.Fprintf(stderr, "toklip %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "usage: toklip %s %s\n", args[0], c.usage)
			return 2
		}
		return 1
	}
	return 0
}

// helpError carries a command's flag descriptions out of parse, for its help text.
type helpError struct{ flags string }

func (h *helpError) Error() string { return "help requested" }
func (h *helpError) Unwrap() error { return flag.ErrHelp }

func printCommandHelp(w io.Writer, name string, c command, err error) {
	fmt.Fprintf(w, "usage: toklip %s %s\n\n%s\n", name, c.usage, c.summary)
	var h *helpError
	if errors.As(err, &h) && h.flags != "" {
		fmt.Fprintf(w, "\nflags:\n%s", h.flags)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "toklip serves TokLIP-based models that read and draw images.")
	fmt.Fprintln(w, "\nusage: toklip <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'toklip help <command>' for a command's arguments.")
}

// parse parses a command's flags, allowing them before and after the positional arguments, and
// checks the number of positional arguments (-1: any number, the command checks them).
func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				var b strings.Builder
				fs.SetOutput(&b)
				fs.PrintDefaults()
				return nil, &helpError{flags: b.String()}
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if positional >= 0 && len(pos) != positional {
		return nil, fmt.Errorf("%w: want %d argument(s), got %d (%s)", errUsage, positional, len(pos), strings.Join(pos, " "))
	}
	return pos, nil
}

// nearest is the command a misspelled one most likely meant: the closest by edit distance, if
// it is close ("" if none is).
func nearest(name string) string {
	best, bestD := "", 3 // at most two edits
	for n := range commands {
		if d := editDistance(name, n); d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	if bestD > len(name)/2 { // "rn" is not "run"'s misspelling more than anything else's
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes: command names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// runVersion prints the module's version and the commit it was built from, from Go's build
// information (a build outside a module's version control prints "(devel)").
func runVersion(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

// commit and commitTime are the commit the binary was built from, set by the Makefile's build
// (-ldflags -X) for builds without Go's own version control stamp (GOFLAGS=-buildvcs=false).
var commit, commitTime string

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "toklip (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", with uncommitted changes"
			}
		}
	}
	out := "toklip " + v
	if rev == "" && commit != "" {
		rev, when = commit, commitTime
		if r, ok := strings.CutSuffix(rev, "-dirty"); ok {
			rev, dirty = r, ", with uncommitted changes"
		}
	}
	if rev != "" {
		out += fmt.Sprintf(" (commit %.12s, %s%s)", rev, when, dirty)
	}
	var ollama string
	for _, d := range bi.Deps {
		if d.Path == "github.com/ollama/ollama" {
			ollama = d.Version
		}
	}
	return out + fmt.Sprintf("\n%s %s/%s, ollama's engine %s", bi.GoVersion, runtime.GOOS, runtime.GOARCH, ollama)
}
