// Command unified measures the engine at Qwen2.5-0.5B + TokLIP-S shapes with random weights:
// time to first token for a prompt with one image (image encode, then prefill); the time to
// draw one 256-id image with guidance, with and without semantic fusion, against 256 plain
// decode steps at batch 1 in the same run; two images drawn at once; and the time between a
// chat's streamed tokens, alone and while other requests draw and send images. Run it with
// `make bench` (after the backbone and vision benchmarks, whose random files it extends).
package unified

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/sampler"
)

// Main runs the benchmark with its command-line arguments (after the subcommand).
func Main(args []string) {
	fs := flag.NewFlagSet("unified", flag.ExitOnError)
	dir := fs.String("dir", ".bench", "work folder holding the backbone and vision benchmarks' files")
	runs := fs.Int("runs", 3, "timed runs")
	gpuLayers := fs.Int("gpu-layers", 0, "layers on the GPU, the LLM's and TokLIP's (-1 as many as fit; 0 the CPU)")
	latencyOnly := fs.Bool("latency", false, "measure only the chat's step latency beside drawing")
	fs.Parse(args)
	log.SetFlags(0)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped

	base := filepath.Join(*dir, "qwen2.5-0.5b-random-F16.gguf")
	vision := filepath.Join(*dir, "toklip-random-256.gguf")
	for _, p := range []string{base, vision} {
		if _, err := os.Stat(p); err != nil {
			log.Fatalf("%s is missing: run the backbone and vision benchmarks first (make bench does)", p)
		}
	}
	// Semantic fusion runs the causal ViT once per drawn id, so its weights' type matters as
	// much as the LLM's: the ViT is also measured with Q8_0 and Q4_0 matrices (Q4_0 repacked at
	// load; the VQ model stays F32).
	quantized := map[string]string{}
	for _, typ := range []string{"Q8_0", "Q4_0"} {
		quantized[typ] = filepath.Join(*dir, "toklip-random-256-vit-"+typ+".gguf")
		if _, err := os.Stat(quantized[typ]); err != nil {
			log.Printf("writing %s ...", quantized[typ])
			mix, _ := ggml.ParseMix(typ)
			if err := ggml.QuantizeFile(vision, quantized[typ], mix, ggml.QuantizeOptions{}); err != nil {
				log.Fatal(err)
			}
		}
	}
	fmt.Printf("unified engine: Qwen2.5-0.5B shape (F16) + TokLIP-S (VQ F32), random weights, %d threads, median of %d runs\n\n", ggml.DefaultThreads(), *runs)
	for i, c := range []struct{ fusion, vit, vision string }{
		{"semantic", "F16", vision}, {"semantic", "Q8_0", quantized["Q8_0"]}, {"semantic", "Q4_0", quantized["Q4_0"]},
		{"none", "F16", vision},
	} {
		if *latencyOnly && c.fusion != "none" {
			continue
		}
		lm := filepath.Join(*dir, "qwen2.5-0.5b-toklip-"+c.fusion+".gguf")
		if err := extend(base, lm, c.fusion); err != nil {
			log.Fatal(err)
		}
		opts := llm.EngineOptions{Backbone: llm.Options{Sequences: 4, ContextLength: 1024}}
		opts.Backbone.GPULayers, opts.Vision.GPULayers = *gpuLayers, *gpuLayers
		e, err := llm.Open(context.Background(), lm, c.vision, opts)
		if err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			ttft(e, *runs)
		}
		if *latencyOnly {
			alone, loaded, encodes, draws := stepLatency(e, 512)
			printLatency(alone, loaded, encodes, draws)
			e.Close()
			continue
		}
		plain, guided, decode := generation(e, *runs)
		fmt.Printf("fusion %-8s ViT %-4s  plain decode 256 steps %7.0f ms | guided image 256 ids %7.0f ms (%.2fx plain) | VQ decode %5.0f ms\n",
			c.fusion, c.vit, plain, guided, guided/plain, decode)
		if c.fusion == "none" {
			alone, loaded, encodes, draws := stepLatency(e, 512)
			printLatency(alone, loaded, encodes, draws)
			both, stats := concurrent(e, *runs)
			fmt.Printf("two guided images at once: %.0f ms, ids and VQ decodes included (%.2fx one image's %.0f ms); %d step calls in %d passes\n",
				both, both/(guided+decode), guided+decode, stats.Calls, stats.Passes)
		}
		e.Close()
	}
	if !*latencyOnly {
		fmt.Println()
		quantizedViT(*dir, "Q8_0", "Q4_0")
	}
}

// ttft times a chat turn with one image up to its first token: the image's TokLIP encode, then
// the prefill of the prompt (a fresh image each run, so the feature cache does not answer).
func ttft(e *llm.Engine, runs int) {
	var encode, prefill []float64
	for run := -1; run < runs; run++ {
		img := noise(int64(run + 100))
		start := time.Now()
		p, err := e.BuildPrompt([]llm.Message{{Role: "user", Content: []llm.Part{{Image: img}, {Text: "Describe this picture."}}}}, true)
		if err != nil {
			log.Fatal(err)
		}
		encoded := time.Now()
		b := e.Backbone()
		seq, err := b.Acquire()
		if err != nil {
			log.Fatal(err)
		}
		in := slices.Clone(p.Inputs)
		for i := range in {
			in[i].Seq, in[i].Logits = seq, i == len(in)-1
		}
		logits, err := b.Forward(context.Background(), in)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := sampler.New(sampler.Params{}).Sample(logits[0], nil); err != nil {
			log.Fatal(err)
		}
		done := time.Now()
		b.Release(seq)
		if run >= 0 {
			encode = append(encode, ms(encoded.Sub(start)))
			prefill = append(prefill, ms(done.Sub(encoded)))
		}
		if run == 0 {
			fmt.Printf("prompt with one image: %d tokens, %d of them image tokens\n", len(p.Inputs), p.ImageTokens)
		}
	}
	fmt.Printf("time to first token: %.0f ms = image encode %.0f ms + prefill and first token %.0f ms\n\n",
		median(encode)+median(prefill), median(encode), median(prefill))
}

// generation returns the medians of 256 plain decode steps, of drawing one image with guidance
// (both prompts' prefill and 256 guided steps), and of its VQ decode, in milliseconds.
func generation(e *llm.Engine, runs int) (plain, guided, decode float64) {
	var p, g, d []float64
	n := e.Backbone().Config().Images.PerImage()
	for run := range runs { // each run is tens of seconds: no warm-up run
		p = append(p, plainDecode(e, n))
		var lastID time.Time
		start := time.Now()
		r, err := e.Draw(context.Background(), llm.DrawRequest{Prompt: "a red circle in the top left corner", Options: llm.ImageOptions{
			Guidance: 5, Sampler: sampler.Params{Temperature: 1, TopK: 1000, Seed: uint64(run + 1)},
		}})
		if err != nil {
			log.Fatal(err)
		}
		for ev := range r.Events() {
			switch ev := ev.(type) {
			case llm.ImageStep:
				if ev.Step == ev.Total {
					lastID = time.Now()
				}
			case llm.Failed:
				log.Fatal(ev.Err)
			}
		}
		end := time.Now()
		g = append(g, ms(lastID.Sub(start)))
		d = append(d, ms(end.Sub(lastID)))
	}
	return median(p), median(g), median(d)
}

// concurrent returns the median time for drawing two images at once (continuous batching puts
// both guided pairs in each pass), and the batcher's counts over those runs.
func concurrent(e *llm.Engine, runs int) (float64, llm.BatchStats) {
	var t []float64
	before := e.BatchStats()
	for run := range runs {
		start := time.Now()
		r, err := e.Draw(context.Background(), llm.DrawRequest{Prompt: "a red circle in the top left corner", N: 2, Options: llm.ImageOptions{
			Guidance: 5, Sampler: sampler.Params{Temperature: 1, TopK: 1000, Seed: uint64(10 * run)},
		}})
		if err != nil {
			log.Fatal(err)
		}
		if _, _, err := r.Wait(); err != nil {
			log.Fatal(err)
		}
		t = append(t, ms(time.Since(start)))
	}
	after := e.BatchStats()
	return median(t), llm.BatchStats{Passes: after.Passes - before.Passes, Calls: after.Calls - before.Calls}
}

// stepLatency streams a chat answer of tokens tokens and returns the times between its tokens
// (ms), first alone, then while another client keeps drawing guided images (256 steps, then a
// VQ decode) and sending new images to encode: what a VQ decode or an image encode, seconds-long
// graphs, do to the steps of a request beside them. It also times the other client's encodes
// and draws (ms, those wholly within the loaded chat): the price of sharing the cores.
func stepLatency(e *llm.Engine, tokens int) (alone, loaded, encodes, draws []float64) {
	chat := func() []float64 {
		run, err := e.Chat(context.Background(), llm.ChatRequest{
			Messages: []llm.Message{{Role: "user", Content: []llm.Part{{Text: "Tell me a long story."}}}},
			Options:  llm.ChatOptions{MaxTokens: tokens, Sampler: sampler.Params{Temperature: 1, TopK: 50, Seed: 7}},
		})
		if err != nil {
			log.Fatal(err)
		}
		var gaps []float64
		var last time.Time
		for ev := range run.Events() {
			switch ev := ev.(type) {
			case llm.TextDelta:
				now := time.Now()
				if !last.IsZero() {
					gaps = append(gaps, ms(now.Sub(last)))
				}
				last = now
			case llm.Failed:
				log.Fatal(ev.Err)
			}
		}
		return gaps
	}
	alone = chat()

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	var measuring atomic.Bool // the other client's work is timed while the loaded chat runs
	var mu sync.Mutex
	timed := func(list *[]float64, f func() error) error {
		counting, start := measuring.Load(), time.Now()
		err := f()
		if counting && measuring.Load() && err == nil {
			mu.Lock()
			*list = append(*list, ms(time.Since(start)))
			mu.Unlock()
		}
		return err
	}
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			if err := timed(&encodes, func() error { _, err := e.EncodeImage(noise(int64(1000 + i))); return err }); err != nil {
				log.Fatal(err)
			}
			err := timed(&draws, func() error {
				r, err := e.Draw(ctx, llm.DrawRequest{Prompt: "a red circle in the top left corner", Options: llm.ImageOptions{
					Guidance: 5, Sampler: sampler.Params{Temperature: 1, TopK: 1000, Seed: uint64(i + 1)},
				}})
				if err != nil {
					return err
				}
				r.Wait()
				return ctx.Err()
			})
			if err != nil {
				return
			}
		}
	}()
	time.Sleep(2 * time.Second) // the drawing is under way
	measuring.Store(true)
	loaded = chat()
	measuring.Store(false)
	stop()
	<-done
	return alone, loaded, encodes, draws
}

func printLatency(alone, loaded, encodes, draws []float64) {
	fmt.Printf("chat step latency alone:           p50 %5.0f ms  p99 %5.0f ms  max %5.0f ms (%d steps)\n",
		percentile(alone, 50), percentile(alone, 99), slices.Max(alone), len(alone))
	fmt.Printf("chat step latency beside drawing:  p50 %5.0f ms  p99 %5.0f ms  max %5.0f ms (%d steps; another client draws images and sends new ones to encode)\n",
		percentile(loaded, 50), percentile(loaded, 99), slices.Max(loaded), len(loaded))
	mid := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return median(v)
	}
	fmt.Printf("meanwhile the other client's image encodes took %.0f ms (median of %d), its draws with the VQ decode %.0f ms (median of %d)\n",
		mid(encodes), len(encodes), mid(draws), len(draws))
}

// plainDecode times n one-token steps of one sequence after a 16-token prompt.
func plainDecode(e *llm.Engine, n int) float64 {
	b := e.Backbone()
	seq, err := b.Acquire()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Release(seq)
	prompt := make([]llm.Input, 16)
	for i := range prompt {
		prompt[i] = llm.Input{Seq: seq, Token: int32(1000 + i), Logits: i == 15}
	}
	logits, err := b.Forward(context.Background(), prompt)
	if err != nil {
		log.Fatal(err)
	}
	s := sampler.New(sampler.Params{})
	start := time.Now()
	for range n {
		tok, _ := s.Sample(logits[0], nil)
		if logits, err = b.Forward(context.Background(), []llm.Input{{Seq: seq, Token: tok % 150000, Logits: true}}); err != nil {
			log.Fatal(err)
		}
	}
	return ms(time.Since(start))
}

// extend writes base with TokLIP-S's image vocabulary added: 16384 image-token rows and the
// begin/end rows appended to token_embd, a two-layer GELU projector from 1152 to 896, and the
// image, projector and fusion keys.
func extend(base, out, fusion string) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	log.Printf("writing %s ...", out)
	f, err := gguf.ReadFile(base)
	if err != nil {
		return err
	}
	kv := maps.Clone(f.KV)
	delete(kv, "general.parameter_count")
	tokens := kv["tokenizer.ggml.tokens"].([]string)
	types := kv["tokenizer.ggml.token_type"].([]int32)
	first := len(tokens) // after the padded text vocabulary
	for i := range 16384 {
		tokens = append(tokens, fmt.Sprintf("<|img_%d|>", i))
		types = append(types, 3)
	}
	tokens = append(tokens, "<|image_start|>", "<|image_end|>")
	types = append(types, 3, 3)
	kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"] = tokens, types
	vocab := len(tokens)
	for k, v := range map[string]any{
		"qwen2.image.first_token_id": uint32(first), "qwen2.image.token_count": uint32(16384),
		"qwen2.image.begin_token_id": uint32(vocab - 2), "qwen2.image.end_token_id": uint32(vocab - 1),
		"qwen2.image.grid_size": uint32(16), "qwen2.image.fusion": fusion,
		"qwen2.projector.block_count": uint32(2), "qwen2.projector.activation": "gelu",
	} {
		kv[k] = v
	}
	rng := rand.New(rand.NewPCG(9, 9))
	randoms := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	var ts []*gguf.Tensor
	for _, info := range f.Tensors {
		info := info
		t := &gguf.Tensor{Name: info.Name, Type: info.Type, Shape: info.Shape, Source: func() ([]byte, error) { return f.ReadTensorData(info) }}
		if info.Name == "token_embd.weight" {
			hidden := info.Shape[0]
			extra, err := ggml.EncodeTensor("extra", info.Type, []uint64{hidden, uint64(vocab - int(info.Shape[1]))}, randoms(int(hidden)*(vocab-int(info.Shape[1])), 0.02))
			if err != nil {
				return err
			}
			t.Shape = []uint64{hidden, uint64(vocab)}
			t.Source = func() ([]byte, error) {
				data, err := f.ReadTensorData(info)
				return append(data, extra.Data...), err
			}
		}
		ts = append(ts, t)
	}
	for i, shape := range [][]uint64{{1152, 896}, {896, 896}} {
		w, err := ggml.EncodeTensor(fmt.Sprintf("mm.%d.weight", i), gguf.TypeF32, shape, randoms(int(shape[0]*shape[1]), 0.03))
		if err != nil {
			return err
		}
		b, _ := ggml.EncodeTensor(fmt.Sprintf("mm.%d.bias", i), gguf.TypeF32, []uint64{896}, randoms(896, 0.01))
		ts = append(ts, w, b)
	}
	return gguf.WriteFile(out, kv, ts)
}

// noise is a 320 x 240 PNG of random pixels.
func noise(seed int64) []byte {
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the p-th percentile of v (nearest rank).
func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(len(s)-1, i))]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
