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
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "toklip: unknown command %q; run 'toklip help' for the list.\n", args[0])
		return 2
	}
	if args[0] != "system" && !slices.Contains(args, "-h") && !slices.Contains(args, "--help") { // system prints the same report itself
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
