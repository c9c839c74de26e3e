// Command load is make bench's load test of the OpenAI-style server: N clients (the official Go
// client, streaming, with usage) for a fixed time on loopback against the embedded demo model,
// each asking about an image in a loop, one request in four drawing an image instead. It reports
// throughput, latency percentiles, errors and the process's memory before and after.
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
	"github.com/toklip/toklip/llm"
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
	flag.Parse()

	files, err := modelfiles.Demo()
	if err != nil {
		log.Fatal(err)
	}
	e, err := llm.Open(context.Background(), files.LM, files.Vision, llm.EngineOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: server.New(e, server.Options{Model: modelfiles.DemoName, MaxQueue: 4 * *clients}).Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
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
				if k%4 == 3 {
					results <- draw(&c, scenes[i].Caption())
				} else {
					results <- ask(&c, urls[i])
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
	report(all, *clients, *duration, before, after)
}

func ask(c *openai.Client, url string) result {
	start := time.Now()
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: modelfiles.DemoName, Temperature: openai.Float(0),
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

func draw(c *openai.Client, caption string) result {
	start := time.Now()
	img, err := c.Images.Generate(context.Background(), openai.ImageGenerateParams{Prompt: caption, Model: modelfiles.DemoName})
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

func report(all []result, clients int, d time.Duration, before, after string) {
	fmt.Printf("## Load test: %d streaming clients for %s on loopback, embedded demo model\n\n", clients, d)
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
