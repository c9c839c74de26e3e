package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/demo/evaluate"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
)

// runEvalDemo measures the demo model: through toklip's engine by default, or, with -score, what
// the PyTorch evaluation wrote. With -compare, it fails when any metric is more than one point away
// from a reference (the PyTorch run's metrics, committed in tools/demo); with -against, it counts
// the items whose answer or drawing differs from the PyTorch run's.
func runEvalDemo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval-demo", flag.ContinueOnError)
	lmPath := fs.String("lm", "", "the LLM's GGUF (default: the embedded demo model)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (default: the embedded demo model)")
	score := fs.String("score", "", "score the outputs of tools/demo/evaluate.py in this folder instead of running the engine")
	compare := fs.String("compare", "", "metrics JSON to agree with, within -tolerance points on every metric")
	tolerance := fs.Float64("tolerance", 1, "allowed difference, in percentage points, for -compare")
	out := fs.String("o", "", "write the metrics here as JSON")
	images := fs.String("images", "", "write the drawn images into this folder as PNG files")
	outputs := fs.String("outputs", "", "write the answers and drawings into this folder, in the PyTorch evaluation's format")
	against := fs.String("against", "", "compare each answer and drawing with the outputs in this folder (the PyTorch evaluation's)")
	cache := fs.String("cache", "f16", "the LLM's KV cache type: f16 (the engine's default) or f32")
	limit := fs.Int("limit", 0, "only the first N scenes of each set (a quick look; not comparable)")
	gpu := gpuFlag(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}

	var m demo.Metrics
	var err error
	if *score != "" {
		m, err = evaluate.Score(*score)
	} else {
		opts := llm.EngineOptions{Backbone: llm.Options{CacheType: llm.CacheType(*cache)}}
		gpu.apply(&opts, nil)
		m, err = evalEngine(*lmPath, *visionPath, opts, *limit, *images, *outputs, *against, stdout)
	}
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, m.String())
	if *out != "" {
		b, err := json.MarshalIndent(m, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *compare != "" {
		b, err := os.ReadFile(*compare)
		if err != nil {
			return err
		}
		var ref demo.Metrics
		if err := json.Unmarshal(b, &ref); err != nil {
			return fmt.Errorf("%s: %w", *compare, err)
		}
		if diffs := m.Compare(ref, *tolerance); len(diffs) > 0 {
			return fmt.Errorf("the metrics differ from %s by more than %g points:\n  %s", *compare, *tolerance, strings.Join(diffs, "\n  "))
		}
		fmt.Fprintf(stdout, "every metric is within %g points of %s\n", *tolerance, *compare)
	}
	return nil
}

func evalEngine(lmPath, visionPath string, opts llm.EngineOptions, limit int, images, outputs, against string, stdout io.Writer) (demo.Metrics, error) {
	sets := slices.Clone(demo.EvalSets)
	for i := range sets {
		if limit > 0 {
			sets[i].N = min(sets[i].N, limit)
		}
	}
	others := map[string]evaluate.Outputs{}
	if against != "" {
		for _, set := range sets {
			o, err := evaluate.ReadOutputs(against, set)
			if err != nil {
				return nil, err
			}
			others[set.Name()] = o
		}
	}
	var w *evaluate.Writer
	if outputs != "" {
		var err error
		if w, err = evaluate.NewWriter(outputs); err != nil {
			return nil, err
		}
	}
	if images != "" {
		if err := os.MkdirAll(images, 0o755); err != nil {
			return nil, err
		}
	}
	lmPath, visionPath, err := modelFiles(lmPath, visionPath)
	if err != nil {
		return nil, err
	}
	e, err := llm.Open(context.Background(), lmPath, visionPath, opts)
	if err != nil {
		return nil, err
	}
	defer e.Close()

	differ := map[string]int{}
	var werr error
	m, err := evaluate.Run(context.Background(), e, evaluate.Options{Sets: sets, Each: func(r evaluate.Result) {
		if images != "" && r.Image != nil && werr == nil {
			werr = writePNG(filepath.Join(images, fmt.Sprintf("%s-%d.png", r.Set.Name(), r.Index)), r.Image)
		}
		if w != nil && werr == nil {
			werr = w.Write(r)
		}
		if o, ok := others[r.Set.Name()]; ok {
			if d := r.Differs(o); d != "" {
				differ[r.Set.Name()]++
				fmt.Fprintf(os.Stderr, "%s %d (%s): %s\n", r.Set.Name(), r.Index, r.Scene.Caption(), d)
			}
		}
		if done := r.Index + 1; done == r.Set.N || done%50 == 0 {
			fmt.Fprintf(os.Stderr, "%s: %d of %d\n", r.Set.Name(), done, r.Set.N)
		}
	}})
	if w != nil {
		if cerr := w.Close(); werr == nil {
			werr = cerr
		}
	}
	if err == nil {
		err = werr
	}
	if err == nil && against != "" {
		for _, set := range sets {
			fmt.Fprintf(stdout, "%s: %d of %d items differ from %s\n", set.Name(), differ[set.Name()], set.N, against)
		}
	}
	return m, err
}

// modelFiles is the pair of GGUF files to run: both given, or neither (the embedded demo model).
func modelFiles(lmPath, visionPath string) (string, string, error) {
	switch {
	case lmPath != "" && visionPath != "":
		return lmPath, visionPath, nil
	case lmPath != "" || visionPath != "":
		return "", "", fmt.Errorf("%w: give both -lm and -vision, or neither for the embedded %s", errUsage, modelfiles.DemoName)
	}
	f, err := modelfiles.Demo()
	return f.LM, f.Vision, err
}
