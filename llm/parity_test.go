package llm_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/llm/convert"
	"github.com/toklip/toklip/models"
	"github.com/toklip/toklip/tokenizer"
)

// The golden files come from tools/reference/make_golden.py: a float64 PyTorch decoder, written
// from the model definitions, run on the same HuggingFace checkpoints that these tests convert.
//
// Tolerance: 1e-3 max abs on logits of magnitude ~1-10. ggml computes in float32 (matmuls
// accumulate in float32, softmax and RMSNorm in float32), which leaves errors of ~1e-5 relative
// per op; over a few layers that is well under 1e-3, while any real defect (a wrong rotation, a
// missing bias, a mask off by one) moves logits by 1e-1 or more.
const logitTolerance = 1e-3

var architectures = []string{"qwen2", "llama"}

type golden struct {
	Vocab    int     `json:"vocab"`
	Prompt   []int32 `json:"prompt"`
	Greedy   []int32 `json:"greedy"`
	Override struct {
		Tokens []int32 `json:"tokens"`
		Start  int     `json:"start"`
		Count  int     `json:"count"`
	} `json:"override"`
	ImageTokens *struct {
		FirstTokenID int32 `json:"first_token_id"`
		TokenCount   int   `json:"token_count"`
		BeginTokenID int32 `json:"begin_token_id"`
		EndTokenID   int32 `json:"end_token_id"`
		GridSize     int   `json:"grid_size"`
	} `json:"image_tokens"`
	dir string
}

func readGolden(t *testing.T, name string) golden {
	t.Helper()
	dir := filepath.Join("testdata", name)
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	g.dir = dir
	return g
}

func (g golden) floats(t *testing.T, file string) []float32 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(g.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

// convertModel converts a test checkpoint with toklip's converter, once per test binary and type.
var converted = map[string]string{}

func convertModel(t *testing.T, name string, typ gguf.TensorType) string {
	t.Helper()
	key := name + "/" + typ.String()
	if p, ok := converted[key]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "toklip-llm-test")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+"-"+typ.String()+".gguf")
	if err := convert.Convert(filepath.Join("testdata", name, "hf"), out, convert.Options{Type: typ}); err != nil {
		t.Fatalf("convert %s: %v", name, err)
	}
	converted[key] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range engines {
		e.Close()
	}
	for _, d := range engineDirs {
		os.RemoveAll(d)
	}
	for _, p := range converted {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

func load(t *testing.T, path string, opts llm.Options) *llm.Backbone {
	t.Helper()
	if opts.CacheType == "" {
		opts.CacheType = llm.CacheF32
	}
	b, err := llm.Load(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func acquire(t *testing.T, b *llm.Backbone) llm.Seq {
	t.Helper()
	s, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokens(seq llm.Seq, ids []int32, logits bool) []llm.Input {
	in := make([]llm.Input, len(ids))
	for i, id := range ids {
		in[i] = llm.Input{Seq: seq, Token: id, Logits: logits}
	}
	return in
}

func forward(t *testing.T, b *llm.Backbone, in []llm.Input) [][]float32 {
	t.Helper()
	out, err := b.Forward(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// maxDiff is the largest absolute difference between rows and a flat row-major want.
func maxDiff(t *testing.T, got [][]float32, want []float32) float64 {
	t.Helper()
	if len(got) == 0 || len(got)*len(got[0]) != len(want) {
		t.Fatalf("got %d rows, want %d values", len(got), len(want))
	}
	worst := 0.0
	for i, row := range got {
		for j, v := range row {
			worst = max(worst, math.Abs(float64(v)-float64(want[i*len(row)+j])))
		}
	}
	return worst
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

func TestPrefillMatchesReference(t *testing.T) {
	for _, name := range architectures {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			b := load(t, convertModel(t, name, gguf.TypeF32), llm.Options{})
			got := forward(t, b, tokens(acquire(t, b), g.Prompt, true))
			d := maxDiff(t, got, g.floats(t, "prefill_logits.f32"))
			t.Logf("%s prefill of %d tokens: max |logit - reference| = %.2e", name, len(g.Prompt), d)
			if d > logitTolerance {
				t.Fatalf("prefill logits differ from the reference by %.2e (tolerance %.0e)", d, logitTolerance)
			}
		})
	}
}

func TestGreedyContinuationMatchesReference(t *testing.T) {
	for _, name := range architectures {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			b := load(t, convertModel(t, name, gguf.TypeF32), llm.Options{})
			seq := acquire(t, b)
			in := tokens(seq, g.Prompt, false)
			in[len(in)-1].Logits = true
			next := argmax(forward(t, b, in)[0])
			var got []int32
			for range len(g.Greedy) {
				got = append(got, next)
				next = argmax(forward(t, b, []llm.Input{{Seq: seq, Token: next, Logits: true}})[0])
			}
			if !slices.Equal(got, g.Greedy) {
				t.Fatalf("greedy continuation\n got %v\nwant %v", got, g.Greedy)
			}
		})
	}
}

func TestEmbeddingOverrideMatchesReference(t *testing.T) {
	for _, name := range architectures {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			b := load(t, convertModel(t, name, gguf.TypeF32), llm.Options{})
			seq := acquire(t, b)
			embeds := g.floats(t, "override_embeddings.f32")
			hidden := b.Config().Hidden
			in := tokens(seq, g.Override.Tokens, true)
			for i := range g.Override.Count {
				in[g.Override.Start+i].Embedding = embeds[i*hidden : (i+1)*hidden]
			}
			d := maxDiff(t, forward(t, b, in), g.floats(t, "override_logits.f32"))
			t.Logf("%s with %d input embeddings: max diff %.2e", name, g.Override.Count, d)
			if d > logitTolerance {
				t.Fatalf("logits with input embeddings differ from the reference by %.2e", d)
			}
		})
	}
}

// Decoding one token at a time through the KV cache must give the logits of a full recompute,
// and batches split at BatchSize must give the same logits as one pass.
func TestCachedDecodeEqualsRecompute(t *testing.T) {
	for _, name := range architectures {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			path := convertModel(t, name, gguf.TypeF32)
			ids := append(slices.Clone(g.Prompt), g.Greedy...)

			full := load(t, path, llm.Options{})
			want := forward(t, full, tokens(acquire(t, full), ids, true))

			stepped := load(t, path, llm.Options{BatchSize: 7}) // the prompt runs as several passes
			seq := acquire(t, stepped)
			got := forward(t, stepped, tokens(seq, g.Prompt, true))
			for _, id := range g.Greedy {
				got = append(got, forward(t, stepped, []llm.Input{{Seq: seq, Token: id, Logits: true}})...)
			}
			flat := slices.Concat(want...)
			if d := maxDiff(t, got, flat); d > 1e-4 {
				t.Fatalf("cached step-by-step logits differ from a full recompute by %.2e", d)
			}
		})
	}
}

// Several sequences in one cache and one batch do not see each other; a released slot is reused
// clean; Truncate rewinds a sequence.
func TestSequencesInOneCache(t *testing.T) {
	g := readGolden(t, "llama")
	path := convertModel(t, "llama", gguf.TypeF32)
	a, c := g.Prompt[:12], g.Prompt[12:]

	ref := load(t, path, llm.Options{})
	s := acquire(t, ref)
	wantA := forward(t, ref, tokens(s, a, true))
	ref.Release(s)
	s = acquire(t, ref)
	wantC := forward(t, ref, tokens(s, c, true))

	b := load(t, path, llm.Options{Sequences: 3})
	s0, s1 := acquire(t, b), acquire(t, b)
	var in []llm.Input
	for i := range max(len(a), len(c)) { // interleave the two prompts in one batch
		if i < len(a) {
			in = append(in, llm.Input{Seq: s0, Token: a[i], Logits: true})
		}
		if i < len(c) {
			in = append(in, llm.Input{Seq: s1, Token: c[i], Logits: true})
		}
	}
	out := forward(t, b, in)
	var gotA, gotC [][]float32
	for i, x := range in {
		if x.Seq == s0 {
			gotA = append(gotA, out[i])
		} else {
			gotC = append(gotC, out[i])
		}
	}
	if d := maxDiff(t, gotA, slices.Concat(wantA...)); d > 1e-4 {
		t.Fatalf("sequence 0 in a shared batch differs from alone by %.2e", d)
	}
	if d := maxDiff(t, gotC, slices.Concat(wantC...)); d > 1e-4 {
		t.Fatalf("sequence 1 in a shared batch differs from alone by %.2e", d)
	}

	// Release s0 and reuse the slot for c: it must not see a's cells.
	b.Release(s0)
	s2 := acquire(t, b)
	if d := maxDiff(t, forward(t, b, tokens(s2, c, true)), slices.Concat(wantC...)); d > 1e-4 {
		t.Fatalf("a reused slot differs from a fresh one by %.2e", d)
	}
	// Rewind s1 to 4 positions and replay the rest.
	if err := b.Truncate(s1, 4); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, forward(t, b, tokens(s1, c[4:], true)), slices.Concat(wantC[4:]...)); d > 1e-4 {
		t.Fatalf("replay after Truncate differs by %.2e", d)
	}
	if b.Len(s1) != len(c) {
		t.Fatalf("Len after replay = %d, want %d", b.Len(s1), len(c))
	}
}

func TestImageTokenExtension(t *testing.T) {
	g := readGolden(t, "qwen2")
	b := load(t, convertModel(t, "qwen2", gguf.TypeF32), llm.Options{})
	it := b.Config().Images
	want := models.ImageTokens{First: g.ImageTokens.FirstTokenID, Count: g.ImageTokens.TokenCount,
		Begin: g.ImageTokens.BeginTokenID, End: g.ImageTokens.EndTokenID, Grid: g.ImageTokens.GridSize}
	if it != want || !it.Enabled() || it.PerImage() != 16 || !it.Contains(want.First+63) || it.Contains(want.First+64) {
		t.Fatalf("image tokens = %+v, want %+v", it, want)
	}
	text := load(t, convertModel(t, "llama", gguf.TypeF32), llm.Options{})
	if text.Config().Images.Enabled() {
		t.Fatalf("a model without image keys reports image tokens: %+v", text.Config().Images)
	}
}

// Quantized weights change logits by quantization error only. The bound is on the RMS error
// relative to the RMS of the reference logits, and follows each format's precision: F16 keeps
// 11 bits (~5e-4 relative), Q8_0 rounds to 1/254 of a 32-value block's maximum (~1%), Q4_0 to
// 1/14 of it (~15%); random weights make the network amplify these somewhat, hence the margins.
func TestQuantizedModelsStayClose(t *testing.T) {
	g := readGolden(t, "llama")
	want := g.floats(t, "prefill_logits.f32")
	for _, c := range []struct {
		typ gguf.TensorType
		tol float64
	}{{gguf.TypeF16, 0.003}, {gguf.TypeQ8_0, 0.05}, {gguf.TypeQ4_0, 0.5}} {
		t.Run(c.typ.String(), func(t *testing.T) {
			b := load(t, convertModel(t, "llama", c.typ), llm.Options{})
			got := slices.Concat(forward(t, b, tokens(acquire(t, b), g.Prompt, true))...)
			var errSum, refSum float64
			for i := range want {
				d := float64(got[i]) - float64(want[i])
				errSum += d * d
				refSum += float64(want[i]) * float64(want[i])
			}
			rel := math.Sqrt(errSum / refSum)
			t.Logf("%s: RMS error relative to the reference logits = %.4f", c.typ, rel)
			if rel > c.tol {
				t.Fatalf("%s logits differ from the reference by %.4f relative RMS (allowed %.3f)", c.typ, rel, c.tol)
			}
		})
	}
}

// The backbone's tokenizer, read from the GGUF keys the converter wrote, encodes as the
// checkpoint's tokenizer.json does.
func TestBackboneTokenizer(t *testing.T) {
	for _, name := range architectures {
		b := load(t, convertModel(t, name, gguf.TypeF32), llm.Options{})
		want, err := tokenizer.FromJSON(filepath.Join("testdata", name, "hf", "tokenizer.json"))
		if err != nil {
			t.Fatal(err)
		}
		text := "the quick brown fox jumps over the lazy dog, 12345 times! <|im_start|> <|eot_id|>"
		got := b.Tokenizer().Encode(text, tokenizer.EncodeOptions{})
		if !slices.Equal(got, want.Encode(text, tokenizer.EncodeOptions{})) || b.Tokenizer().Decode(got, false) != text {
			t.Fatalf("%s: backbone tokenizer gives %v", name, got)
		}
	}
}

// ggml's interleaved CPU layouts (ggml.Repack) change how a Q4_0 product is summed, not what is
// summed: the same Q4_0 blocks times the same Q8_0-quantized activations, with integer dot
// products inside each block and float sums across blocks in another order. Logits agree to
// float rounding (1e-4 of their range allows ~100 ulps of the largest), and greedy ids exactly,
// through the prefill, the image head (a view around the image range: the rows of whole
// interleaved groups) and cached decode.
func TestRepackedWeightsGiveTheSameLogits(t *testing.T) {
	if !ggml.RepackBuilt() {
		t.Skip("ggml-cpu built without GGML_USE_CPU_REPACK (make test sets it)")
	}
	if !ggml.Repackable(gguf.TypeQ4_0, []uint64{64, 64}) {
		t.Skipf("ggml has no interleaved Q4_0 kernel for this CPU (%v)", ggml.CPUFeatures())
	}
	g := readGolden(t, "qwen2")
	path := convertModel(t, "qwen2", gguf.TypeQ4_0)
	plain := load(t, path, llm.Options{Options: ggml.Options{PlainWeights: true}})
	packed := load(t, path, llm.Options{})
	// 3 blocks x 7 projections, and the output head (tied: ollama's backend's own copy of the
	// embedding, which stays plain for its row lookups).
	if plain.RepackedWeights() != 0 || packed.RepackedWeights() != 3*7+1 {
		t.Fatalf("repacked weights: %d plain, %d packed; want 0 and 22", plain.RepackedWeights(), packed.RepackedWeights())
	}
	run := func(b *llm.Backbone) (prefill, image []float32, ids []int32) {
		seq := acquire(t, b)
		prefill = slices.Concat(forward(t, b, tokens(seq, g.Prompt, true))...)
		imageIn := tokens(seq, []int32{g.Prompt[0]}, true)
		imageIn[0].ImageLogits = true
		image = forward(t, b, imageIn)[0]
		next := argmax(prefill[len(prefill)-len(prefill)/len(g.Prompt):])
		for range 12 {
			ids = append(ids, next)
			next = argmax(forward(t, b, tokens(seq, []int32{next}, true))[0])
		}
		return prefill, image, ids
	}
	wantPrefill, wantImage, wantIDs := run(plain)
	gotPrefill, gotImage, gotIDs := run(packed)
	if len(wantImage) != g.ImageTokens.TokenCount || len(gotImage) != len(wantImage) {
		t.Fatalf("image logits: %d plain, %d packed, want %d", len(wantImage), len(gotImage), g.ImageTokens.TokenCount)
	}
	for _, c := range []struct {
		what      string
		got, want []float32
	}{{"prefill", gotPrefill, wantPrefill}, {"image head", gotImage, wantImage}} {
		worst, scale := 0.0, 0.0
		for i := range c.want {
			worst = max(worst, math.Abs(float64(c.got[i]-c.want[i])))
			scale = max(scale, math.Abs(float64(c.want[i])))
		}
		t.Logf("%s: max |repacked - plain| = %.2e of max |logit| %.2f", c.what, worst, scale)
		if worst > 1e-4*scale {
			t.Errorf("%s logits of repacked weights differ from the plain ones by %.2e (max |logit| %.2f)", c.what, worst, scale)
		}
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("greedy ids with repacked weights %v, plain %v", gotIDs, wantIDs)
	}
}
