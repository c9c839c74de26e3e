package visiontok_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/visiontok"
)

// A Q4_0 ViT (toklip quantize) is repacked into ggml's interleaved layout at load, and gives the
// features its file layout gives: the same blocks and the same Q8_0 activations, only the order
// of the float sums differs.
func TestRepackedViTGivesTheSameFeatures(t *testing.T) {
	if !ggml.RepackBuilt() {
		t.Skip("ggml-cpu built without GGML_USE_CPU_REPACK (make test sets it)")
	}
	if !ggml.Repackable(gguf.TypeQ4_0, []uint64{64, 64}) {
		t.Skipf("ggml has no interleaved Q4_0 kernel for this CPU (%v)", ggml.CPUFeatures())
	}
	tinyModel(t) // converts the test model
	path := filepath.Join(t.TempDir(), "toklip-tiny-Q4_0.gguf")
	mix, err := ggml.ParseMix("Q4_0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ggml.QuantizeFile(convertedPath, path, mix, ggml.QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	load := func(opts ggml.Options) *visiontok.Vision {
		v, err := visiontok.Load(context.Background(), path, visiontok.Options{Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		return v
	}
	plain, packed := load(ggml.Options{PlainWeights: true}), load(ggml.Options{})
	// 2 blocks x attn_qkv and attn_out: the FFN's 239 rows and columns are not whole Q4_0
	// blocks or 8-row groups, so those matrices stay as they are.
	if plain.RepackedWeights() != 0 || packed.RepackedWeights() != 4 {
		t.Fatalf("repacked weights: %d plain, %d packed; want 0 and 4", plain.RepackedWeights(), packed.RepackedWeights())
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ids := make([]int32, plain.Config().Tokens)
	for i := range ids {
		ids[i] = int32(rng.IntN(plain.Config().CodebookSize))
	}
	want, wantPooled, err := plain.Features(ids)
	if err != nil {
		t.Fatal(err)
	}
	got, gotPooled, err := packed.Features(ids)
	if err != nil {
		t.Fatal(err)
	}
	worst, scale := 0.0, 0.0
	compare := func(got, want []float32) {
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
			scale = max(scale, math.Abs(float64(want[i])))
		}
	}
	for i := range want {
		compare(got[i], want[i])
	}
	compare(gotPooled, wantPooled)
	t.Logf("max |repacked - plain| = %.2e of max |feature| %.2f", worst, scale)
	if worst > 1e-4*scale {
		t.Errorf("features of the repacked ViT differ from the plain one's by %.2e (max |feature| %.2f)", worst, scale)
	}
}
