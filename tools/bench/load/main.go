// Command load is make bench's load test of the OpenAI-style server: first the cold and warm
// first-token times of the demo model (loaded by the server's scheduler on the request, or
// already loaded), then N clients (the official Go client, streaming, with usage) for a fixed
// time on loopback, their requests spread over -models stored models (the demo model and copies
// of it, each loaded once and held at once), each asking about an image in a loop, one request in
// four drawing an image instead. It reports throughput, latency percentiles, errors and the
// process's memory before and after.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"image/png"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
)

type result struct {
	kind       string
	latency    time.Duration
	firstToken time.Duration
	outTokens  int64
	err        error
}

func main() {
	clients := flag.Int("clients", 8, "concurrent clients")
	duration := flag.Duration("duration", 30*time.Second, "how long the clients keep sending")
	models := flag.Int("models", 2, "models the requests are spread over (the demo model and copies of it)")
	rounds := flag.Int("rounds", 5, "cold and warm first-token measurements")
	flag.Parse()

	// A store with the demo model's copies beside it, served on demand.
	st := &modelfiles.Store{Root: must(os.MkdirTemp("", "toklip-load-"))}
	defer os.RemoveAll(st.Root)
	names := []string{modelfiles.DemoName}
	for i := 1; i < *models; i++ {
		name := fmt.Sprintf("demo-copy-%d", i)
		if err := st.Create(name, &modelfiles.Modelfile{From: modelfiles.DemoName}, "/", nil); err != nil {
			log.Fatal(err)
		}
		names = append(names, name)
	}
	s := server.New(nil, server.Options{Store: st, MaxQueue: 4 * *clients})
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	coldWarm(base, *rounds)
	before := memory()
	scenes := demo.Scenes(demo.HeldOut, 64, 9)
	urls := make([]string, len(scenes))
	for i, s := range scenes {
		var buf bytes.Buffer
		png.Encode(&buf, s.Render())
		urls[i] = "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	}

	deadline := time.Now().Add(*duration)
	results := make(chan result, 1024)
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Go(func() {
			c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
			for k := 0; time.Now().Before(deadline); k++ {
				i := (w + k*(*clients)) % len(scenes) // the clients go through different scenes
				model := names[(w+k)%len(names)]
				if k%4 == 3 {
					results <- draw(&c, model, scenes[i].Caption())
				} else {
					results <- ask(&c, model, urls[i])
				}
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	var all []result
	for r := range results {
		all = append(all, r)
	}
	after := memory()
	report(all, *clients, *duration, names, before, after)
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// coldWarm measures the demo model's first token on a cold server (the request loads it: the
// scheduler's load, then the answer) and on a warm one, rounds times each, unloading it between
// cold rounds as `toklip stop` does, and prints the medians.
func coldWarm(base string, rounds int) {
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	var buf bytes.Buffer
	png.Encode(&buf, demo.Scenes(demo.HeldOut, 1, 3)[0].Render())
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	var cold, warm []time.Duration
	for range rounds {
		resp, err := http.Post(base+"/api/generate", "application/json", strings.NewReader(`{"model": "toklip-demo", "keep_alive": 0}`))
		if err != nil || resp.StatusCode != 200 {
			log.Fatalf("unloading: %v %v", resp, err)
		}
		resp.Body.Close()
		r := ask(&c, modelfiles.DemoName, url)
		if r.err != nil {
			log.Fatal(r.err)
		}
		cold = append(cold, r.firstToken)
		r = ask(&c, modelfiles.DemoName, url)
		if r.err != nil {
			log.Fatal(r.err)
		}
		warm = append(warm, r.firstToken)
	}
	slices.Sort(cold)
	slices.Sort(warm)
	fmt.Printf("## Cold and warm first token, embedded demo model, %d rounds\n\n", rounds)
	fmt.Println("| first token of a chat about an image | median | min | max |")
	fmt.Println("|---|---:|---:|---:|")
	fmt.Printf("| cold (the request loads the model) | %s | %s | %s |\n", pct(cold, 50), pct(cold, 0), pct(cold, 100))
	fmt.Printf("| warm (loaded) | %s | %s | %s |\n\n", pct(warm, 50), pct(warm, 0), pct(warm, 100))
}

func ask(c *openai.Client, model, url string) result {
	start := time.Now()
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: model, Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}),
			openai.TextContentPart(demo.EvalQuestion)})},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	r := result{kind: "chat"}
	for stream.Next() {
		ch := stream.Current()
		if r.firstToken == 0 && len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			r.firstToken = time.Since(start)
		}
		if ch.Usage.CompletionTokens > 0 {
			r.outTokens = ch.Usage.CompletionTokens
		}
	}
	r.err = stream.Err()
	r.latency = time.Since(start)
	return r
}

func draw(c *openai.Client, model, caption string) result {
	start := time.Now()
	img, err := c.Images.Generate(context.Background(), openai.ImageGenerateParams{Prompt: caption, Model: model})
	r := result{kind: "image", err: err, latency: time.Since(start)}
	if err == nil {
		r.outTokens = img.Usage.OutputTokens
		r.firstToken = r.latency
	}
	return r
}

// memory is the process's resident set (from /proc) and Go heap, in MiB.
func memory() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := "?"
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	return fmt.Sprintf("RSS %s, Go heap %.1f MiB", rss, float64(ms.HeapAlloc)/(1<<20))
}

func report(all []result, clients int, d time.Duration, models []string, before, after string) {
	fmt.Printf("## Load test: %d streaming clients for %s on loopback, requests spread over %d models (%s), each with its own 4 sequences\n\n", clients, d, len(models), strings.Join(models, ", "))
	fmt.Println("| requests | n | errors | req/s | output tokens/s | latency p50 | p90 | p99 | first token p50 | p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, kind := range []string{"chat", "image"} {
		var lat, first []time.Duration
		var toks int64
		errs := 0
		for _, r := range all {
			if r.kind != kind {
				continue
			}
			if r.err != nil {
				errs++
				if errs <= 3 {
					log.Printf("%s error: %v", kind, r.err)
				}
				continue
			}
			lat = append(lat, r.latency)
			first = append(first, r.firstToken)
			toks += r.outTokens
		}
		slices.Sort(lat)
		slices.Sort(first)
		fmt.Printf("| %s | %d | %d | %.1f | %.0f | %s | %s | %s | %s | %s |\n", kind, len(lat)+errs, errs,
			float64(len(lat))/d.Seconds(), float64(toks)/d.Seconds(), pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(first, 50), pct(first, 99))
	}
	fmt.Printf("\nmemory after loading: %s; after the run: %s\n", before, after)
}

func pct(v []time.Duration, p int) string {
	if len(v) == 0 {
		return "-"
	}
	return v[min(len(v)-1, len(v)*p/100)].Round(time.Millisecond).String()
}
