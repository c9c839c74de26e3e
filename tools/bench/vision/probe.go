package vision

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// The ceiling is measured on a model of two weight matrices, loaded like any model, so that it
// runs on the same backend and threads as TokLIP's layers.
const probeArch = "matmul-probe"
const probeSide = 2048

type probe struct {
	model.Base
	Half ml.Tensor `gguf:"v.half"`
	Full ml.Tensor `gguf:"v.full"`
}

func (p *probe) Forward(ml.Context, input.Batch) (ml.Tensor, error) {
	return nil, errors.New("the matmul probe has no forward pass")
}

func init() {
	model.Register(probeArch, func(fs.Config) (model.Model, error) { return &probe{}, nil })
	gguf.RegisterArchitecture(probeArch, func(f *gguf.File) error {
		for _, n := range []string{"v.half", "v.full"} {
			if _, err := f.ExpectTensor(n, []uint64{probeSide, probeSide}); err != nil {
				return err
			}
		}
		return nil
	})
}

// matmulCeiling returns the GFLOP/s of [2048 x 2048] x [2048 x 2048] products with F16 and F32
// weights (median of 5).
func matmulCeiling(dir string, threads int) ([2]float64, error) {
	var out [2]float64
	path := filepath.Join(dir, "matmul-probe.gguf")
	values := make([]float32, probeSide*probeSide)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range values {
		values[i] = rng.Float32() - 0.5
	}
	shape := []uint64{probeSide, probeSide}
	half, err := ggml.EncodeTensor("v.half", gguf.TypeF16, shape, values)
	if err != nil {
		return out, err
	}
	full, err := ggml.EncodeTensor("v.full", gguf.TypeF32, shape, values)
	if err != nil {
		return out, err
	}
	if err := gguf.WriteFile(path, map[string]any{"general.architecture": probeArch}, []*gguf.Tensor{half, full}); err != nil {
		return out, err
	}
	m, _, err := ggml.LoadModel(context.Background(), path, ggml.Options{Threads: threads})
	if err != nil {
		return out, err
	}
	defer m.Backend().Close()
	p := m.(*probe)
	for i, w := range []ml.Tensor{p.Half, p.Full} {
		var secs []float64
		for run := -1; run < 5; run++ {
			ctx := m.Backend().NewContext()
			x := ctx.Input().FromFloats(values, probeSide, probeSide)
			y := w.Mulmat(ctx, x)
			start := time.Now()
			ggml.Compute(ctx, y)
			if run >= 0 {
				secs = append(secs, time.Since(start).Seconds())
			}
			ctx.Close()
		}
		slices.Sort(secs)
		out[i] = 2 * probeSide * probeSide * probeSide / secs[len(secs)/2] / 1e9
	}
	if out[0] <= 0 || out[1] <= 0 {
		return out, fmt.Errorf("matmul probe: no timing")
	}
	return out, nil
}
