package ggml_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/model"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// A test architecture: its checker wants one tensor "w.weight" of shape [32 2], F32 or F16.
// Its ollama constructor panics, to prove that LoadModel turns a panic into an error.
func init() {
	gguf.RegisterArchitecture("quanttest", func(f *gguf.File) error {
		_, err := f.ExpectTensor("w.weight", []uint64{32, 2}, gguf.TypeF32, gguf.TypeF16)
		return err
	})
	model.Register("quanttest", func(fs.Config) (model.Model, error) { panic("constructor exploded") })
}

// validFile writes a file of the test architecture that passes every check.
func validFile(t *testing.T) string {
	t.Helper()
	w, err := ggml.EncodeTensor("w.weight", gguf.TypeF32, []uint64{32, 2}, make([]float32, 64))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "valid.gguf")
	if err := gguf.WriteModel(path, map[string]any{"general.architecture": "quanttest"}, []*gguf.Tensor{w}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadModelTurnsPanicsIntoErrors(t *testing.T) {
	_, _, err := ggml.LoadModel(context.Background(), validFile(t), ggml.Options{Threads: 1})
	if !errors.Is(err, ggml.ErrInternal) || !strings.Contains(err.Error(), "constructor exploded") {
		t.Fatalf("got %v, want an ErrInternal error carrying the panic", err)
	}
}

func TestQuantizationErrorBounds(t *testing.T) {
	n := 32 * 64
	values := make([]float32, n)
	for i := range values {
		values[i] = float32(math.Sin(float64(i)*0.37) * (1 + float64(i%7)))
	}
	for _, c := range []struct {
		typ   gguf.TensorType
		bound func(amax float64) float64
	}{
		{gguf.TypeF16, func(float64) float64 { return 0 }},
		{gguf.TypeQ8_0, func(amax float64) float64 { return amax / 127 / 2 }},
		{gguf.TypeQ4_0, func(amax float64) float64 { return amax / 8 }},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			enc, err := ggml.EncodeTensor("x.weight", c.typ, []uint64{32, uint64(n / 32)}, values)
			if err != nil {
				t.Fatal(err)
			}
			if got := uint64(len(enc.Data)); got != enc.Bytes() {
				t.Fatalf("encoded %d bytes, want %d", got, enc.Bytes())
			}
			back, err := ggml.DecodeFloats(c.typ, enc.Data, uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			for b := 0; b < n; b += 32 {
				amax := 0.0
				for _, v := range values[b : b+32] {
					amax = max(amax, math.Abs(float64(v)))
				}
				for i := b; i < b+32; i++ {
					bound := c.bound(amax)*1.01 + math.Abs(float64(values[i]))*1e-3 + 1e-6
					if d := math.Abs(float64(back[i] - values[i])); d > bound {
						t.Fatalf("value %d: %v came back as %v (error %.2e > bound %.2e)", i, values[i], back[i], d, bound)
					}
				}
			}
		})
	}
	if _, err := ggml.EncodeTensor("x.weight", gguf.TypeQ8_0, []uint64{20, 2}, make([]float32, 40)); err == nil {
		t.Fatal("encoding rows that do not fill whole blocks must fail")
	}
}

func TestQuantizedTypeRules(t *testing.T) {
	cases := []struct {
		name  string
		shape []uint64
		want  gguf.TensorType
	}{
		{"blk.0.attn_q.weight", []uint64{64, 64}, gguf.TypeQ4_0},
		{"token_embd.weight", []uint64{64, 512}, gguf.TypeQ4_0},
		{"blk.0.attn_norm.weight", []uint64{64}, gguf.TypeF32},
		{"blk.0.attn_q.bias", []uint64{64}, gguf.TypeF32},
		{"output_norm.weight", []uint64{64}, gguf.TypeF32},
		{"v.enc.conv.weight", []uint64{64, 64}, gguf.TypeF32},
		{"mm.0.weight", []uint64{64, 64}, gguf.TypeF32},
		{"blk.0.ffn_down.weight", []uint64{48, 64}, gguf.TypeF16}, // 48 is not a multiple of 32
		{"blk.0.keep.weight", []uint64{64, 64}, gguf.TypeF32},
	}
	keep := func(name string) bool { return strings.Contains(name, "keep") }
	for _, c := range cases {
		if got := ggml.QuantizedType(c.name, c.shape, gguf.TypeF32, gguf.TypeQ4_0, keep); got != c.want {
			t.Errorf("%s %v: got %s, want %s", c.name, c.shape, got, c.want)
		}
	}
}

// The architecture's checker overrules the quantizer: quanttest takes w.weight only in F32 or
// F16, so a Q8_0 rewrite keeps it as it is, and the result opens.
func TestQuantizeKeepsTypesTheArchitectureRequires(t *testing.T) {
	src := validFile(t)
	dst := filepath.Join(t.TempDir(), "q8.gguf")
	q8, err := ggml.ParseMix("q8_0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ggml.QuantizeFile(src, dst, q8, ggml.QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := f.Tensor("w.weight"); w.Type != gguf.TypeF32 {
		t.Errorf("w.weight is %s, want F32", w.Type)
	}
}
