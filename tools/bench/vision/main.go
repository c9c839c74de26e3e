// Command vision measures TokLIP's three paths on one image at the released shapes (S-256 and
// L-384, random weights: the ViT in F16, the VQ model in F32 as the converter writes them): VQ
// encode (encoder and quantizer), semantic encode (causal ViT and attention pool) and VQ decode,
// with the GFLOP/s each reaches and, as the machine's ceiling, the GFLOP/s of a plain ggml
// matrix product in the same run. Run it with `make bench`.
package vision

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/visiontok"
)

func released(size int) visiontok.Config {
	grid := size / 16
	return visiontok.Config{
		ImageSize: size, Grid: grid, Tokens: grid * grid,
		CodebookSize: 16384, CodebookDim: 8, Channels: 128, ChannelMult: []int{1, 1, 2, 2, 4},
		ResBlocks: 2, ZChannels: 256, Groups: 32,
		Width: 1152, Depth: 27, Heads: 16, FFN: 4304, LNEps: 1e-6,
	}
}

// Main runs the benchmark with its command-line arguments (after the subcommand).
func Main(args []string) {
	fs := flag.NewFlagSet("vision", flag.ExitOnError)
	dir := fs.String("dir", ".bench", "work folder for the random-weight files")
	runs := fs.Int("runs", 3, "timed runs per measurement")
	threads := fs.Int("threads", ggml.DefaultThreads(), "CPU threads")
	gpuLayers := fs.Int("gpu-layers", 0, "the ViT's layers on the GPU (-1 as many as fit; 0 the CPU); the matmul ceiling is the CPU's")
	sizeList := fs.String("sizes", "256,384", "released image sizes, comma-separated (256: TokLIP-S, 384: TokLIP-L)")
	fs.Parse(args)
	var sizes []int
	for _, s := range strings.Split(*sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || (n != 256 && n != 384) {
			log.Fatalf("-sizes %q: want 256 and/or 384", *sizeList)
		}
		sizes = append(sizes, n)
	}
	log.SetFlags(0)
	// ollama's engine logs every load at Info; the benchmark's own lines are what matter here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.SetOutput(os.Stderr) // slog.SetDefault sent log's lines (progress, Fatal's reason) to slog at Info: dropped

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	ceiling, err := matmulCeiling(*dir, *threads)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("TokLIP vision paths, one image, random weights (ViT F16, VQ F32), %d threads, median of %d runs\n", *threads, *runs)
	fmt.Printf("machine ceiling: ggml matmul 2048^3 F16 x F32 %.0f GFLOP/s, F32 x F32 %.0f GFLOP/s\n\n", ceiling[0], ceiling[1])
	fmt.Printf("%-6s %-16s %10s %10s %10s\n", "model", "path", "ms", "GFLOP", "GFLOP/s")
	for _, size := range sizes {
		cfg := released(size)
		path := filepath.Join(*dir, fmt.Sprintf("toklip-random-%d.gguf", size))
		if err := writeRandom(path, cfg); err != nil {
			log.Fatal(err)
		}
		v, err := visiontok.Load(context.Background(), path, visiontok.Options{Options: ggml.Options{Threads: *threads, GPULayers: *gpuLayers}})
		if err != nil {
			log.Fatal(err)
		}
		pixels := make([]float32, 3*size*size)
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		for i := range pixels {
			pixels[i] = rng.Float32()*2 - 1
		}
		var ids []int32
		name := map[int]string{256: "S-256", 384: "L-384"}[size]
		for _, p := range []struct {
			path  string
			flops float64
			run   func() error
		}{
			{"VQ encode", vqEncodeFlops(cfg), func() (err error) { ids, err = v.EncodeIDs(pixels); return err }},
			{"semantic encode", semanticFlops(cfg), func() error { _, _, err := v.Features(ids); return err }},
			{"VQ decode", vqDecodeFlops(cfg), func() error { _, err := v.Decode(ids); return err }},
		} {
			ms, err := median(*runs, p.run)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%-6s %-16s %10.0f %10.1f %10.1f\n", name, p.path, ms, p.flops/1e9, p.flops/1e9/(ms/1000))
		}
		v.Close()
	}
	fmt.Printf("\n(%s)\n", strings.Join(ggml.CPUFeatures(), " "))
}

// median runs f once to warm up, then runs times, and returns the median milliseconds.
func median(runs int, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	var ms []float64
	for range runs {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(ms)
	return ms[len(ms)/2], nil
}

// writeRandom writes a TokLIP file of cfg's shape with random weights, unless it exists.
func writeRandom(path string, cfg visiontok.Config) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	log.Printf("writing %s ...", path)
	kv := cfg.KV()
	kv["general.name"] = "toklip-random"
	kv["general.file_type"] = uint32(1)
	var tensors []*gguf.Tensor
	seed := uint64(0)
	for name, spec := range cfg.Tensors() {
		typ := gguf.TypeF16
		if spec.F32 {
			typ = gguf.TypeF32
		}
		seed++
		s, shape := seed, spec.Shape
		tensors = append(tensors, &gguf.Tensor{Name: name, Type: typ, Shape: shape, Source: func() ([]byte, error) {
			n := gguf.TensorInfo{Shape: shape}.Elements()
			// Scale by the fan-in (all but the last dimension), so activations stay O(1).
			std := 1.0
			if len(shape) > 1 {
				std = 1 / math.Sqrt(float64(n/shape[len(shape)-1]))
			}
			rng := rand.New(rand.NewPCG(s, 7))
			values := make([]float32, n)
			for i := range values {
				values[i] = float32(rng.NormFloat64() * std)
			}
			t, err := ggml.EncodeTensor(name, typ, shape, values)
			if err != nil {
				return nil, err
			}
			return t.Data, nil
		}})
	}
	return gguf.WriteFile(path, kv, tensors)
}
