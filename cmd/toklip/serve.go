package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
	"github.com/toklip/toklip/visiontok"
)

// DefaultPort is where `toklip serve` listens unless told otherwise.
const DefaultPort = 8750

// runServe serves the OpenAI-style API on one model until SIGINT or SIGTERM, then stops taking
// connections and lets the requests in flight finish (up to -drain).
func runServe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "the address to listen on (0.0.0.0 for every interface)")
	port := fs.Int("port", DefaultPort, "the port to listen on")
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	apiKey := fs.String("api-key", os.Getenv("TOKLIP_API_KEY"), "require this bearer key (default $TOKLIP_API_KEY; empty: none)")
	maxBody := fs.Int64("max-body", 32<<20, "request body limit in bytes")
	parallel := fs.Int("parallel", 4, "sequences answered at once, their steps in shared batches: a text answer takes 1, one that may draw 2, n choices n times that")
	queue := fs.Int("queue", 64, "requests that may wait beyond those; more are answered 429")
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
	files, mf, err := resolveModel(name, *lmPath, *visionPath) // a bad name is refused before listening
	if err != nil {
		return err
	}
	gpu.apply(&opts, mf)
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	// Listening first: /health says 503 (loading) until the model is in, then 200.
	s := server.NewLoading(server.Options{Model: name, Defaults: mf, APIKey: *apiKey, MaxBodyBytes: *maxBody, MaxQueue: *queue, ImageHosts: imageHosts, BodyTimeout: *bodyTimeout})
	srv := s.HTTPServer()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on http://%s/v1, loading %s\n", ln.Addr(), name)
	e, err := llm.Open(ctx, files.LM, files.Vision, opts)
	if err != nil {
		srv.Close()
		return err
	}
	defer e.Close()
	s.Ready(e)
	fmt.Fprintf(stdout, "serving %s on http://%s/v1\n", name, ln.Addr())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	slog.Info("shutting down: finishing the requests in flight", "drain", *drain)
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
