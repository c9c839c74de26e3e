package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/projector"
)

// The golden file comes from tools/reference/make_projector_golden.py: LLaVA's projector in
// float64 PyTorch (nn.Linear, nn.GELU exact and tanh, nn.SiLU) at depths 1 to 3, seeded weights.
// Tolerance 1e-5: the graph runs in float32 (about 1e-7 relative per operation) over values of
// order 1-10 through at most three layers of 16-wide dot products (measured: 2.5e-7 at worst); a
// wrong activation form (tanh GELU for erf GELU: 1e-4 and more) or a transposed weight misses by
// far more.
const tolerance = 1e-5

type golden struct {
	In, Hidden, N int
	Cases         []struct {
		Depth      int
		Activation string
		Weights    [][]float32
		Biases     [][]float32
		Input      []float32
		Output     []float64
	}
}

// projtest is an architecture holding only a projector, so that it loads through ollama's
// backend as the backbone's does: mm.N bound by the MLP's tags, checked by ReadConfig.
type projtest struct {
	model.Base
	Projector *projector.MLP
}

func (*projtest) Forward(ml.Context, input.Batch) (ml.Tensor, error) {
	return nil, errors.New("projtest runs its projector only")
}

func init() {
	model.Register("projtest", func(c fs.Config) (model.Model, error) {
		f := gguf.FromConfig(c)
		depth, err := gguf.Key[uint32](f, "projtest.projector.block_count")
		if err != nil {
			return nil, err
		}
		return &projtest{Projector: projector.New(projector.Config{Depth: int(depth)})}, nil
	})
	gguf.RegisterArchitecture("projtest", func(f *gguf.File) error {
		hidden, err := gguf.Key[uint32](f, "projtest.embedding_length")
		if err != nil {
			return err
		}
		_, err = projector.ReadConfig(f, "projtest", int(hidden))
		return err
	})
}

func TestProjectorMatchesReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Cases {
		t.Run(fmt.Sprintf("%s-depth%d", c.Activation, c.Depth), func(t *testing.T) {
			kv := map[string]any{"general.architecture": "projtest", "projtest.embedding_length": uint32(g.Hidden),
				"projtest.projector.block_count": uint32(c.Depth), "projtest.projector.activation": c.Activation}
			var tensors []*gguf.Tensor
			in := g.In
			for i := range c.Depth {
				w, err := ggml.EncodeTensor(fmt.Sprintf("mm.%d.weight", i), gguf.TypeF32, []uint64{uint64(in), uint64(g.Hidden)}, c.Weights[i])
				if err != nil {
					t.Fatal(err)
				}
				b, err := ggml.EncodeTensor(fmt.Sprintf("mm.%d.bias", i), gguf.TypeF32, []uint64{uint64(g.Hidden)}, c.Biases[i])
				if err != nil {
					t.Fatal(err)
				}
				tensors = append(tensors, w, b)
				in = g.Hidden
			}
			path := filepath.Join(t.TempDir(), "proj.gguf")
			if err := gguf.WriteModel(path, kv, tensors); err != nil {
				t.Fatal(err)
			}
			m, f, err := ggml.LoadModel(context.Background(), path, ggml.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer ggml.Close(m)
			cfg, err := projector.ReadConfig(f, "projtest", g.Hidden)
			if err != nil || cfg.Depth != c.Depth || cfg.Activation != c.Activation || cfg.InputWidth != g.In {
				t.Fatalf("config %+v, %v", cfg, err)
			}
			ctx := m.Backend().NewContext()
			defer ctx.Close()
			x := ctx.Input().FromFloats(c.Input, g.In, g.N)
			got := ggml.Compute(ctx, m.(*projtest).Projector.Forward(ctx, x, cfg.Activation))
			if len(got) != len(c.Output) {
				t.Fatalf("%d outputs, want %d", len(got), len(c.Output))
			}
			worst := 0.0
			for i, v := range got {
				worst = max(worst, math.Abs(float64(v)-c.Output[i]))
			}
			t.Logf("max |diff| %.2e", worst)
			if worst > tolerance {
				t.Fatalf("the projector differs from the reference by %.2e", worst)
			}
		})
	}
}

// A file whose projector does not fit its model is refused with the tensor named.
func TestProjectorShapesAreChecked(t *testing.T) {
	w, err := ggml.EncodeTensor("mm.0.weight", gguf.TypeF32, []uint64{4, 8}, make([]float32, 32))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ggml.EncodeTensor("mm.0.bias", gguf.TypeF32, []uint64{6}, make([]float32, 6)) // not the hidden size 8
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]any{"general.architecture": "projtest", "projtest.embedding_length": uint32(8), "projtest.projector.block_count": uint32(1)}
	path := filepath.Join(t.TempDir(), "bad.gguf")
	if err := gguf.WriteFile(path, kv, []*gguf.Tensor{w, b}); err != nil {
		t.Fatal(err)
	}
	if _, err := gguf.Open(path); !errors.Is(err, gguf.ErrShape) || !strings.Contains(err.Error(), "mm.0.bias") {
		t.Fatalf("a bias of the wrong size: %v, want a shape error", err)
	}
	kv["projtest.projector.activation"] = "relu"
	b8, _ := ggml.EncodeTensor("mm.0.bias", gguf.TypeF32, []uint64{8}, make([]float32, 8))
	if err := gguf.WriteFile(path, kv, []*gguf.Tensor{w, b8}); err != nil {
		t.Fatal(err)
	}
	if _, err := gguf.Open(path); !errors.Is(err, gguf.ErrFormat) || !strings.Contains(err.Error(), "relu") {
		t.Fatalf("an unknown activation: %v, want a format error", err)
	}
}
