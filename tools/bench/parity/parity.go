// Package parity checks toklip on a GPU against the CPU on the same files (`bench parity`, run by
// tools/gpu/check.sh): a backbone's logits after a prompt and its greedy continuation, and
// TokLIP's encode (VQ ids, semantic features) and decode (pixels). Tolerances, and why:
//   - logits: max |GPU - CPU| within 2% of the largest |logit|. Both sides multiply F16 weights
//     with activations rounded to F16 (ggml's CPU vec_dot_f16, CUDA's cuBLAS/MMQ paths), so they
//     differ by the order of accumulation and F16 rounding (~5e-4 relative per operation) compounded
//     over the blocks; a wrong kernel or a misplaced layer is off by the logits' whole scale.
//   - greedy tokens: the same, except after a step where the CPU's top two logits are closer than
//     that step's measured difference (a near tie either side may take).
//   - VQ ids: at least 99% identical (an id is an argmax over 16384 codes; a near tie may flip),
//     features within 2% of their largest magnitude, decoded pixels within 3/255.
package parity

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/visiontok"
)

// Main runs the checks; it exits 1 when one fails.
func Main(args []string) {
	fs := flag.NewFlagSet("parity", flag.ExitOnError)
	lm := fs.String("lm", "", "a backbone GGUF (the backbone benchmark's F16 file)")
	vision := fs.String("vision", "", "a TokLIP GGUF (the vision benchmark's)")
	prompt := fs.Int("prompt", 512, "prompt tokens")
	steps := fs.Int("steps", 32, "greedy steps after the prompt")
	requireGPU := fs.Bool("require-gpu", true, "fail when ggml finds no GPU (else the check compares the CPU with itself)")
	fs.Parse(args)
	log.SetFlags(0)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped
	gpus := 0
	for _, d := range ggml.Devices() {
		if d.Kind == ggml.DeviceGPU {
			gpus++
			fmt.Printf("device %s: %s, %.1f GiB free, compute %d.%d\n", d.Name, d.Description, float64(d.FreeBytes)/(1<<30), d.ComputeMajor, d.ComputeMinor)
		}
	}
	if gpus == 0 && *requireGPU {
		log.Fatalf("no GPU: ggml loaded no GPU backend from %v", ggml.LibraryPathsHint())
	}
	ok := true
	if *lm != "" {
		ok = backbone(*lm, *prompt, *steps) && ok
	}
	if *vision != "" {
		ok = toklip(*vision) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

type continuation struct {
	logits [][]float32 // the prompt's last position's, then each step's
	tokens []int32
}

func run(path string, gpuLayers int, prompt []int32, steps int) (continuation, error) {
	var c continuation
	b, err := llm.Load(context.Background(), path, llm.Options{Options: ggml.Options{GPULayers: gpuLayers}, ContextLength: 1024})
	if err != nil {
		return c, err
	}
	defer b.Close()
	seq, err := b.Acquire()
	if err != nil {
		return c, err
	}
	in := make([]llm.Input, len(prompt))
	for i, id := range prompt {
		in[i] = llm.Input{Seq: seq, Token: id, Logits: i == len(prompt)-1}
	}
	logits, err := b.Forward(context.Background(), in)
	if err != nil {
		return c, err
	}
	for range steps {
		l := slices.Clone(logits[0])
		c.logits = append(c.logits, l)
		tok := int32(argmax(l))
		c.tokens = append(c.tokens, tok)
		if logits, err = b.Forward(context.Background(), []llm.Input{{Seq: seq, Token: tok, Logits: true}}); err != nil {
			return c, err
		}
	}
	return c, nil
}

func backbone(path string, n, steps int) bool {
	rng := rand.New(rand.NewPCG(3, 5))
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(150000))
	}
	cpu, err := run(path, 0, prompt, steps)
	if err != nil {
		log.Fatal(err)
	}
	gpu, err := run(path, ggml.AllLayers, prompt, steps)
	if err != nil {
		log.Fatal(err)
	}
	worst, scale := maxDiff(cpu.logits[0], gpu.logits[0])
	ok := worst <= 0.02*scale
	fmt.Printf("backbone %s: %d-token prompt, last logits max |GPU-CPU| %.3g of max |logit| %.3g (%.2f%%, limit 2%%)\n", path, n, worst, scale, 100*worst/scale)
	same := 0
	for i := range cpu.tokens {
		if cpu.tokens[i] != gpu.tokens[i] {
			d, _ := maxDiff(cpu.logits[i], gpu.logits[i])
			if margin := top2Margin(cpu.logits[i]); margin >= d {
				ok = false
				fmt.Printf("  greedy step %d: GPU took %d, CPU %d, with a top-2 margin %.3g above the difference %.3g\n", i, gpu.tokens[i], cpu.tokens[i], margin, d)
			} else {
				fmt.Printf("  greedy step %d: a near tie (margin %.3g, difference %.3g): the continuations part here\n", i, margin, d)
			}
			break
		}
		same++
	}
	fmt.Printf("  greedy continuation: %d of %d tokens the same\n", same, steps)
	return ok
}

func toklip(path string) bool {
	type result struct {
		enc *visiontok.Encoded
		img []uint8
	}
	var size int
	var pixels []float32
	var ids []int32 // the CPU's, decoded on both
	encode := func(gpuLayers int) result {
		v, err := visiontok.Load(context.Background(), path, visiontok.Options{Options: ggml.Options{GPULayers: gpuLayers}})
		if err != nil {
			log.Fatal(err)
		}
		defer v.Close()
		if pixels == nil {
			size = v.Config().ImageSize
			rng := rand.New(rand.NewPCG(1, uint64(size)))
			pixels = make([]float32, 3*size*size)
			for i := range pixels {
				pixels[i] = rng.Float32()*2 - 1
			}
		}
		enc, err := v.Encode(pixels)
		if err != nil {
			log.Fatal(err)
		}
		if ids == nil {
			ids = enc.IDs
		}
		img, err := v.Decode(ids)
		if err != nil {
			log.Fatal(err)
		}
		return result{enc, img.Pix}
	}
	cpu, gpu := encode(0), encode(ggml.AllLayers)
	same := 0
	for i := range cpu.enc.IDs {
		if cpu.enc.IDs[i] == gpu.enc.IDs[i] {
			same++
		}
	}
	var worst, scale float64
	for i := range cpu.enc.Features {
		w, s := maxDiff(cpu.enc.Features[i], gpu.enc.Features[i])
		worst, scale = max(worst, w), max(scale, s)
	}
	pix := 0
	for i := range cpu.img {
		d := int(cpu.img[i]) - int(gpu.img[i])
		pix = max(pix, d, -d)
	}
	n := len(cpu.enc.IDs)
	ok := same*100 >= 99*n && worst <= 0.02*scale && pix <= 3
	fmt.Printf("TokLIP %s (%d px): VQ ids %d of %d identical (limit 99%%); features max |GPU-CPU| %.3g of %.3g (%.2f%%, limit 2%%); decoded pixels within %d/255 (limit 3)\n",
		path, size, same, n, worst, scale, 100*worst/scale, pix)
	return ok
}

func maxDiff(a, b []float32) (worst, scale float64) {
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(a[i])))
	}
	return worst, scale
}

func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func top2Margin(v []float32) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range v {
		switch f := float64(x); {
		case f > a:
			a, b = f, a
		case f > b:
			b = f
		}
	}
	return a - b
}
