package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
	"github.com/toklip/toklip/visiontok"
)

// DefaultPort is where `toklip serve` listens unless told otherwise.
const DefaultPort = 8750

// runServe serves the OpenAI-style and ollama APIs on every model of the store until SIGINT or
// SIGTERM, then stops taking connections and lets the requests in flight finish (up to -drain).
// The model it is given (the demo model by default) is loaded before /health says ok; the others
// load on their first request.
func runServe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "the address to listen on (0.0.0.0 for every interface)")
	port := fs.Int("port", DefaultPort, "the port to listen on")
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	apiKey := fs.String("api-key", os.Getenv("TOKLIP_API_KEY"), "require this bearer key (default $TOKLIP_API_KEY; empty: none)")
	maxBody := fs.Int64("max-body", 32<<20, "request body limit in bytes")
	parallel := fs.Int("parallel", 4, "sequences each model answers at once, their steps in shared batches: a text answer takes 1, one that may draw 2, n choices n times that")
	queue := fs.Int("queue", 64, "requests that may wait for each model beyond those; more are answered 429")
	keepAlive := fs.Duration("keep-alive", envDuration("TOKLIP_KEEP_ALIVE", server.DefaultKeepAlive), "how long a model stays loaded after its last request (0: unload at once; negative: forever); default $TOKLIP_KEEP_ALIVE, else 5m")
	memory := fs.String("memory", "auto", "bytes all loaded models may take, e.g. 8GB or 512MiB (auto: 90% of the memory available at start; 0: no limit)")
	var imageHosts multiFlag
	fs.Var(&imageHosts, "image-host", "a host image_url may name over http(s), e.g. images.example.com or *.example.com (repeatable; none by default)")
	drain := fs.Duration("drain", 30*time.Second, "how long requests in flight may take to finish at shutdown")
	bodyTimeout := fs.Duration("body-timeout", 60*time.Second, "how long a client may take to send a request body")
	decodeMemory := fs.Int64("decode-memory", visiontok.DefaultDecodeMemory, "bytes all image decodes may hold at once")
	exif := exifFlag(fs)
	gpu := gpuFlag(fs)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	if *parallel < 1 {
		return fmt.Errorf("%w: -parallel %d must be at least 1", errUsage, *parallel)
	}
	budget, err := memoryBudget(*memory)
	if err != nil {
		return err
	}
	opts := llm.EngineOptions{Backbone: llm.Options{Sequences: *parallel}}
	if err := exif(&opts); err != nil {
		return err
	}
	visiontok.SetDecodeMemory(*decodeMemory)
	if len(pos) > 1 {
		return fmt.Errorf("%w: give at most one model name", errUsage)
	}
	name := modelfiles.DemoName
	if len(pos) == 1 {
		name = pos[0]
	}
	st, err := openStore()
	if err != nil {
		return err
	}
	var files modelfiles.Files
	var mf *modelfiles.Modelfile
	if *lmPath != "" || *visionPath != "" {
		if files, mf, err = resolveModel(name, *lmPath, *visionPath); err != nil {
			return err
		}
	} else if err := checkStored(st, name); err != nil { // a bad name is refused before listening
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	sopts := server.Options{Store: st, Engine: opts, Configure: gpu.apply, Memory: budget, KeepAlive: keepAlive,
		Log: os.Stderr, APIKey: *apiKey, MaxBodyBytes: *maxBody, MaxQueue: *queue, ImageHosts: imageHosts, BodyTimeout: *bodyTimeout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var fixed *llm.Engine
	if *lmPath != "" || *visionPath != "" { // a model given by its files: served under name, beside the store
		gpu.apply(&opts, mf)
		if fixed, err = llm.Open(ctx, files.LM, files.Vision, opts); err != nil {
			ln.Close()
			return err
		}
		defer fixed.Close()
		sopts.Model, sopts.Defaults = name, mf
	}
	s := server.New(fixed, sopts)
	defer s.Close()
	srv := s.HTTPServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	// Listening first: /health says 503 (loading) until the model is in, then 200.
	fmt.Fprintf(stdout, "listening on http://%s (OpenAI's API at /v1, ollama's at /api), loading %s\n", ln.Addr(), name)
	if err := s.Preload(ctx, name); err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintf(stdout, "serving %s on http://%s/v1\n", name, ln.Addr())
	fmt.Fprintf(stdout, "the store's other models load on their first request (memory budget %s, keep-alive %s)\n", budgetString(budget), *keepAlive)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(stdout, "shutting down: no new requests; finishing those in flight (for at most %s)\n", *drain)
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// envDuration is the duration in the environment variable name, or def when it is unset or not
// a duration (a whole number is seconds, as ollama reads OLLAMA_KEEP_ALIVE).
func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	return def
}

// memoryBudget reads -memory: auto (90% of the memory the kernel says is available now: what
// loading can take without swapping), 0 (no limit), or a size with a unit.
func memoryBudget(v string) (int64, error) {
	if v == "auto" {
		avail, err := availableMemory()
		if err != nil {
			slog.Warn("no memory budget: the available memory is unknown", "err", err)
			return 0, nil
		}
		return avail / 10 * 9, nil
	}
	n, err := parseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("%w: -memory %q: %v", errUsage, v, err)
	}
	return n, nil
}

// parseBytes reads a size: a number with an optional unit (B, KB, MB, GB, TB, or KiB to TiB).
func parseBytes(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size: a number with a unit, like 8GB or 512MiB")
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}[strings.ToUpper(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", unit)
	}
	if f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("too large")
	}
	return int64(f * mult), nil
}

func budgetString(b int64) string {
	if b <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.1f GB", float64(b)/1e9)
}

// availableMemory is Linux's MemAvailable.
func availableMemory() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

// checkStored says whether the store (or the embedded demo model) has name, without reading its
// files.
func checkStored(st *modelfiles.Store, name string) error {
	ms, err := st.List()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Name == name {
			return nil
		}
	}
	return fmt.Errorf("unknown model %q: `toklip list` shows the models there are", name)
}
