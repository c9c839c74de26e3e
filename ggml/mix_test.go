package ggml_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	_ "github.com/toklip/toklip/models/qwen2llama" // the input's architecture, for gguf's checks
)

// tools/reference/make_mix_golden.sh sets these to make testdata/mixes.json with llama.cpp's own
// llama-quantize: the input this test quantizes, and the golden from llama-quantize's outputs.
var (
	writeMixInput = flag.String("write-mix-input", "", "write the mix test's input GGUF here and stop")
	mixGoldenFrom = flag.String("mix-golden-from", "", "write testdata/mixes.json from the llama-quantize outputs MIX.gguf in this folder")
)

// mixInput writes a Qwen2-shaped model with F16 weights: 8 layers (so that llama.cpp's
// use_more_bits picks layers 0, 3, 6 and 7), rows of 256 (K-quant blocks fit) in the attention and
// the gate and up projections, rows of 320 in ffn_down (they do not: the fallbacks), a tied
// output head (the token embedding takes its rule).
func mixInput(t *testing.T, path string) {
	const hidden, ffn, vocab, layers, kv = 256, 320, 512, 8, 128
	rng := rand.New(rand.NewPCG(7, 11))
	f16 := func(name string, shape ...uint64) *gguf.Tensor {
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.02 * (1 + math.Sin(float64(i)/97)))
		}
		typ := gguf.TypeF16
		if len(shape) == 1 {
			typ = gguf.TypeF32
			for i := range v {
				v[i] += 1
			}
		}
		ten, err := ggml.EncodeTensor(name, typ, shape, v)
		if err != nil {
			t.Fatal(err)
		}
		return ten
	}
	ts := []*gguf.Tensor{f16("token_embd.weight", hidden, vocab)}
	for i := range layers {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			f16(p+"attn_norm.weight", hidden),
			f16(p+"attn_q.weight", hidden, hidden), f16(p+"attn_q.bias", hidden),
			f16(p+"attn_k.weight", hidden, kv), f16(p+"attn_k.bias", kv),
			f16(p+"attn_v.weight", hidden, kv), f16(p+"attn_v.bias", kv),
			f16(p+"attn_output.weight", hidden, hidden),
			f16(p+"ffn_norm.weight", hidden),
			f16(p+"ffn_gate.weight", hidden, ffn), f16(p+"ffn_up.weight", hidden, ffn), f16(p+"ffn_down.weight", ffn, hidden))
	}
	ts = append(ts, f16("output_norm.weight", hidden))
	kvs := map[string]any{
		"general.architecture": "qwen2", "general.file_type": uint32(1), "qwen2.block_count": uint32(layers),
		"qwen2.context_length": uint32(512), "qwen2.embedding_length": uint32(hidden), "qwen2.feed_forward_length": uint32(ffn),
		"qwen2.attention.head_count": uint32(4), "qwen2.attention.head_count_kv": uint32(2),
		"qwen2.attention.layer_norm_rms_epsilon": float32(1e-6), "qwen2.rope.freq_base": float32(1e6),
	}
	if err := gguf.WriteModel(path, kvs, ts); err != nil {
		t.Fatal(err)
	}
}

type mixTensor struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	SHA256 string `json:"sha256"`
	// RelError is a quantized tensor's relative RMS error against its F16 source.
	RelError float64 `json:"rel_error,omitempty"`
}

func describe(t *testing.T, path string) []mixTensor {
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []mixTensor
	for _, info := range f.Tensors {
		data, err := f.ReadTensorData(info)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		out = append(out, mixTensor{Name: info.Name, Type: info.Type.String(), SHA256: hex.EncodeToString(h[:])})
	}
	return out
}

// Q4_K_M and Q6_K as llama.cpp's llama-quantize makes them from the same F16 file: every
// tensor's type (the mix rules, the use_more_bits layers, the fallbacks of rows that K blocks do
// not divide) and its bytes (ggml's quantizers), compared with testdata/mixes.json, which
// tools/reference/make_mix_golden.sh made with llama-quantize.
func TestMixesMatchLlamaQuantize(t *testing.T) {
	if *writeMixInput != "" {
		mixInput(t, *writeMixInput)
		t.Skip("wrote the input")
	}
	golden := filepath.Join("testdata", "mixes.json")
	mixes := []string{"Q4_K_M", "Q6_K"}
	if *mixGoldenFrom != "" {
		want := map[string][]mixTensor{}
		source := readFloats(t, filepath.Join(*mixGoldenFrom, "in.gguf"))
		for _, m := range mixes {
			path := filepath.Join(*mixGoldenFrom, m+".gguf")
			want[m] = describe(t, path)
			q := readFloats(t, path)
			for i, w := range want[m] {
				if w.Type != "F32" && w.Type != "F16" {
					want[m][i].RelError = relError(q[w.Name], source[w.Name])
				}
			}
		}
		b, _ := json.MarshalIndent(want, "", " ")
		if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Skip("wrote the golden")
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]mixTensor
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	// ggml's quantizers are scalar C with multiply-adds, which a build with FMA (-march=native, as
	// toklip's default build) may fuse where llama.cpp's build of them (in ggml-base, without the
	// CPU flags) does not: their scale searches then round a few values differently (most K-quant
	// tensors, some Q5_0 ones). So the bytes are compared exactly in a build without FMA (make test
	// runs this test once so), and in one with FMA a tensor whose bytes differ must have no more
	// error against its source than llama-quantize's.
	fused := slices.Contains(ggml.CPUFeatures(), "FMA")
	var kErrors []string
	dir := t.TempDir()
	in := filepath.Join(dir, "in.gguf")
	mixInput(t, in)
	for _, name := range mixes {
		mix, err := ggml.ParseMix(name)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name+".gguf")
		if err := ggml.QuantizeFile(in, out, mix, ggml.QuantizeOptions{}); err != nil {
			t.Fatal(err)
		}
		got := describe(t, out)
		if len(got) != len(want[name]) {
			t.Fatalf("%s: %d tensors, llama-quantize %d", name, len(got), len(want[name]))
		}
		theirs := map[string]mixTensor{} // llama-quantize writes the tensors in its loader's order
		for _, w := range want[name] {
			theirs[w.Name] = w
		}
		types := map[string]int{}
		for _, g := range got {
			w := theirs[g.Name]
			types[g.Type]++
			switch {
			case g.Type != w.Type:
				t.Errorf("%s: %s is %s, llama-quantize's %q", name, g.Name, g.Type, w.Type)
			case g.SHA256 == w.SHA256:
			case fused && g.Type != "F32" && g.Type != "F16":
				kErrors = append(kErrors, g.Name)
			default:
				t.Errorf("%s: %s (%s) differs from llama-quantize's bytes", name, g.Name, g.Type)
			}
		}
		f, _ := gguf.Open(out)
		if ft, _ := gguf.Key[uint32](f, "general.file_type"); ft != mix.FileType {
			t.Errorf("%s: general.file_type %d, want %d", name, ft, mix.FileType)
		}
		t.Logf("%s: %v", name, types)
	}
	if len(kErrors) > 0 {
		t.Logf("FMA build: %d quantized tensors differ in bytes from llama-quantize's; their errors are checked", len(kErrors))
		checkKErrors(t, in, dir, kErrors, want)
	}
}

// checkKErrors compares each named quantized tensor's relative RMS error against its F16 source
// with that of llama-quantize's (the golden's): at most 1% above it.
func checkKErrors(t *testing.T, in, dir string, names []string, want map[string][]mixTensor) {
	source := readFloats(t, in)
	for _, mix := range []string{"Q4_K_M", "Q6_K"} {
		theirs := map[string]float64{}
		for _, w := range want[mix] {
			theirs[w.Name] = w.RelError
		}
		got := readFloats(t, filepath.Join(dir, mix+".gguf"))
		for _, name := range names {
			e, ok := theirs[name]
			if _, quantized := got[name]; !ok || e == 0 || !quantized {
				continue
			}
			if rel := relError(got[name], source[name]); rel > e*1.01 {
				t.Errorf("%s: %s: relative RMS error %.5f, llama-quantize's %.5f", mix, name, rel, e)
			}
		}
	}
}

// readFloats reads every tensor of a GGUF as float32 values.
func readFloats(t *testing.T, path string) map[string][]float32 {
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, info := range f.Tensors {
		data, err := f.ReadTensorData(info)
		if err != nil {
			t.Fatal(err)
		}
		if out[info.Name], err = ggml.DecodeFloats(info.Type, data, info.Elements()); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func relError(got, want []float32) float64 {
	var num, den float64
	for i, v := range want {
		num += float64(got[i]-v) * float64(got[i]-v)
		den += float64(v) * float64(v)
	}
	return math.Sqrt(num / den)
}
