package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/llm/convert"
	"github.com/toklip/toklip/sampler"
	visionconvert "github.com/toklip/toklip/visiontok/convert"
)

// The unified model and its golden outputs come from tools/reference/make_unified_golden.py: the
// test TokLIP (visiontok/testdata), a two-layer GELU projector and a small Qwen2 with 16384 image
// tokens, run in float64 PyTorch without a KV cache. Tolerances: understanding logits within
// 1e-3 (as the backbone's); greedy generation under guidance must give the same ids (the
// reference's smallest top-2 margin is ~0.04, far above float32 error); decoded pixels within 2/255.

type unifiedGolden struct {
	Guidance            float32 `json:"guidance"`
	UnderstandingTokens int     `json:"understanding_tokens"`
	UnderstandingLast   int     `json:"understanding_last"`
	UnderstandingAt     int     `json:"understanding_image_at"`
	Generation          []struct {
		Prompt  string  `json:"prompt"`
		Fusion  bool    `json:"fusion"`
		IDs     []int32 `json:"ids"`
		Decoded string  `json:"decoded"`
	} `json:"generation"`
}

// The engines live for the whole test binary (closed in TestMain): converting and loading the
// pair for each test would dominate the tests' time.
var (
	engines    = map[bool]*llm.Engine{}
	engineDirs []string
)

// engine opens the unified test model, with or without semantic fusion, once per test binary.
func engine(t *testing.T, fusion bool) *llm.Engine {
	t.Helper()
	if e, ok := engines[fusion]; ok {
		return e
	}
	lm, vision := engineFiles(t, fusion)
	opts := llm.EngineOptions{Backbone: llm.Options{Sequences: 6, CacheType: llm.CacheF32}}
	opts.Vision.Streams = 3
	e, err := llm.Open(context.Background(), lm, vision, opts)
	if err != nil {
		t.Fatal(err)
	}
	engines[fusion] = e
	return e
}

// engineFiles converts the unified test model's two files into a folder removed by TestMain.
func engineFiles(t *testing.T, fusion bool) (lm, vision string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "toklip-engine-test")
	if err != nil {
		t.Fatal(err)
	}
	engineDirs = append(engineDirs, dir)
	lm = filepath.Join(dir, "unified.gguf")
	if err := convert.Convert(filepath.Join("testdata", "unified", "hf"), lm, convert.Options{Type: gguf.TypeF32}); err != nil {
		t.Fatal(err)
	}
	if !fusion {
		lm = rewrite(t, lm, func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			kv["qwen2.image.fusion"] = "none"
			return ts
		})
	}
	vision = filepath.Join(dir, "toklip.gguf")
	vt := filepath.Join("..", "visiontok", "testdata")
	if err := visionconvert.Convert(filepath.Join(vt, "toklip-tiny.pt"), vision, visionconvert.Options{
		Tokenizer: filepath.Join(vt, "tokenizer", "tokenizer.json"), Heads: 4, Groups: 8}); err != nil {
		t.Fatal(err)
	}
	return lm, vision
}

func readUnified(t *testing.T) unifiedGolden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "unified", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g unifiedGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func testImage(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "visiontok", "testdata", "images", "gradient.png"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestUnderstandingMatchesReference(t *testing.T) {
	g := readUnified(t)
	e := engine(t, true)
	p, err := e.BuildPrompt([]llm.Message{{Role: "user", Content: []llm.Part{
		{Image: testImage(t)}, {Text: "What shape is this?"},
	}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Inputs) != g.UnderstandingTokens || p.ImageTokens != 64 || p.Inputs[g.UnderstandingAt].Feature == nil {
		t.Fatalf("prompt of %d inputs with %d image tokens, want %d and 64", len(p.Inputs), p.ImageTokens, g.UnderstandingTokens)
	}
	b := e.Backbone()
	seq := acquire(t, b)
	defer b.Release(seq)
	in := slices.Clone(p.Inputs)
	for i := range in {
		in[i].Seq, in[i].Logits = seq, i >= len(in)-g.UnderstandingLast
	}
	got := forward(t, b, in)
	d := maxDiff(t, got, (golden{dir: filepath.Join("testdata", "unified")}).floats(t, "understanding_logits.f32"))
	t.Logf("understanding logits: max |diff| %.2e over the last %d positions", d, g.UnderstandingLast)
	if d > logitTolerance {
		t.Fatalf("understanding logits differ from the reference by %.2e", d)
	}
}

func greedy(g unifiedGolden) llm.ImageOptions {
	return llm.ImageOptions{Guidance: g.Guidance, Sampler: sampler.Params{Temperature: 0}}
}

// drawOne draws one image through the engine's door, with the run's ImageStep events.
func drawOne(ctx context.Context, e *llm.Engine, prompt string, opts llm.ImageOptions) (*llm.GeneratedImage, int, []llm.ImageStep, error) {
	run, err := e.Draw(ctx, llm.DrawRequest{Prompt: prompt, Options: opts})
	if err != nil {
		return nil, 0, nil, err
	}
	var steps []llm.ImageStep
	var img *llm.GeneratedImage
	for ev := range run.Events() {
		switch ev := ev.(type) {
		case llm.ImageStep:
			steps = append(steps, ev)
		case llm.ImageDone:
			img = ev.Image
		case llm.Failed:
			return nil, 0, nil, ev.Err
		case llm.Usage:
			return img, ev.PromptTokens, steps, nil
		}
	}
	return nil, 0, nil, errors.New("the run ended without its usage")
}

func TestGuidedGenerationMatchesReference(t *testing.T) {
	g := readUnified(t)
	for _, c := range g.Generation {
		e := engine(t, c.Fusion)
		img, promptTokens, steps, err := drawOne(context.Background(), e, c.Prompt, greedy(g))
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range steps {
			if len(s.IDs) != s.Step || s.Step != i+1 || s.Total != 64 {
				t.Errorf("progress %d/%d with %d ids", s.Step, s.Total, len(s.IDs))
			}
		}
		if !slices.Equal(img.IDs, c.IDs) {
			t.Fatalf("fusion=%v %q:\n got %v\nwant %v", c.Fusion, c.Prompt, img.IDs, c.IDs)
		}
		if len(steps) != 64 || promptTokens == 0 {
			t.Fatalf("%d progress calls, %d prompt tokens", len(steps), promptTokens)
		}
		want, err := os.ReadFile(filepath.Join("testdata", "unified", c.Decoded))
		if err != nil {
			t.Fatal(err)
		}
		worst := 0
		for p := range len(want) / 3 {
			for ch := range 3 {
				d := int(img.Image.Pix[4*p+ch]) - int(want[3*p+ch])
				worst = max(worst, d, -d)
			}
		}
		if worst > 2 {
			t.Fatalf("fusion=%v %q: decoded pixels differ by %d/255", c.Fusion, c.Prompt, worst)
		}
	}
}

// Concurrent generations share passes (continuous batching, guidance pairs included) and still
// give each request its own result.
func TestConcurrentGenerationsShareBatches(t *testing.T) {
	g := readUnified(t)
	e := engine(t, true)
	before := e.BatchStats()
	var wg sync.WaitGroup
	got := make([][]int32, 0)
	var mu sync.Mutex
	for _, c := range g.Generation {
		if !c.Fusion {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, _, _, err := drawOne(context.Background(), e, c.Prompt, greedy(g))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(img.IDs, c.IDs) {
				t.Errorf("%q generated alongside another: %v, want %v", c.Prompt, img.IDs[:8], c.IDs[:8])
			}
			got = append(got, img.IDs)
		}()
	}
	wg.Wait()
	if len(got) != 2 {
		t.Fatalf("%d generations finished", len(got))
	}
	after := e.BatchStats()
	passes, calls := after.Passes-before.Passes, after.Calls-before.Calls
	t.Logf("%d step calls in %d passes", calls, passes)
	if passes > calls*3/4 { // two loops in lockstep share nearly every pass
		t.Errorf("%d step calls ran in %d passes: the two generations did not share passes", calls, passes)
	}
}

// TokLIP computes on a ggml CPU backend of its own (ggml.Options.OwnCPU), so its image encodes
// and decodes run beside the LLM's steps, each graph with the cores the other leaves: both give
// exactly what they give alone (a graph's values do not depend on its thread count: ggml splits
// the work by output rows).
func TestImagesComputeBesideLLMSteps(t *testing.T) {
	e := engine(t, true)
	v := e.Vision()
	pixels, err := v.Image(testImage(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEnc, err := v.Encode(pixels)
	if err != nil {
		t.Fatal(err)
	}
	wantImg, err := v.Decode(wantEnc.IDs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.BuildPrompt([]llm.Message{{Role: "user", Content: []llm.Part{{Text: "Tell me about circles and squares."}}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	b := e.Backbone()
	step := func() []float32 {
		seq := acquire(t, b)
		defer b.Release(seq)
		in := slices.Clone(p.Inputs)
		for i := range in {
			in[i].Seq, in[i].Logits = seq, i == len(in)-1
		}
		return forward(t, b, in)[0]
	}
	wantLogits := step()

	done := make(chan error, 1)
	go func() {
		for range 3 {
			enc, err := v.Encode(pixels)
			if err != nil {
				done <- err
				return
			}
			img, err := v.Decode(enc.IDs)
			if err != nil {
				done <- err
				return
			}
			if !slices.Equal(enc.IDs, wantEnc.IDs) || !slices.Equal(enc.Pooled, wantEnc.Pooled) || !slices.Equal(img.Pix, wantImg.Pix) {
				done <- errors.New("an image encoded and decoded beside LLM steps differs from the same image alone")
				return
			}
		}
		done <- nil
	}()
	steps := 0
	for finished := false; !finished; steps++ {
		if got := step(); !slices.Equal(got, wantLogits) {
			t.Fatalf("step %d beside image work: logits differ from the same step alone", steps)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
	}
	t.Logf("%d LLM passes beside 3 image encodes and decodes", steps)
}

// Guided images take two sequences at once: with room for one guided image, three requests at
// once all finish (taking one sequence and waiting for the second would deadlock), and a model
// with one sequence refuses to draw with a clear error instead of waiting forever.
func TestGuidedRequestsTakeBothSequencesAtOnce(t *testing.T) {
	lm, vision := engineFiles(t, true)
	g := readUnified(t)
	for _, seqs := range []int{2, 1} {
		e, err := llm.Open(context.Background(), lm, vision, llm.EngineOptions{Backbone: llm.Options{Sequences: seqs}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() {
				_, _, _, err := drawOne(ctx, e, g.Generation[0].Prompt, greedy(g))
				errs <- err
			})
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			switch {
			case seqs == 2 && err != nil:
				t.Errorf("2 sequences: %v", err)
			case seqs == 1 && (err == nil || !strings.Contains(err.Error(), "needs 2 sequences at once")):
				t.Errorf("1 sequence: got %v, want a clear refusal", err)
			}
		}
		e.Close()
	}
}

// A chat answer that opens an image switches to guided image mode and comes back to text.
func TestChatWithImages(t *testing.T) {
	e := engine(t, true)
	it := e.Backbone().Config().Images
	msgs := []llm.Message{{Role: "user", Content: []llm.Part{{Text: "draw something"}}}}
	opts := llm.ChatOptions{
		MaxTokens: 80, Images: true,
		Sampler: sampler.Params{LogitBias: map[int32]float32{it.Begin: 1000}, RepeatPenalty: 1},
		Image:   llm.ImageOptions{Guidance: 2, Sampler: sampler.Params{Temperature: 1, TopK: 50, Seed: 5}},
	}
	ans, streamed, images, err := chat(e, msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []*llm.GeneratedImage
	for _, p := range ans.Parts {
		if p.Image != nil {
			imgs = append(imgs, p.Image)
		}
	}
	// The bias forces <|image_start|> whenever it is allowed: one image fits the 80-token budget.
	if len(imgs) != 1 || images != 1 || len(imgs[0].IDs) != 64 || imgs[0].Image.Bounds().Dx() != 128 {
		t.Fatalf("answer parts %d, images %d", len(ans.Parts), len(imgs))
	}
	if ans.CompletionTokens > 80 || ans.CompletionTokens < 66 || ans.PromptTokens == 0 {
		t.Fatalf("completion %d, prompt %d tokens", ans.CompletionTokens, ans.PromptTokens)
	}
	if streamed != ans.Text() {
		t.Fatalf("streamed %q, answer text %q", streamed, ans.Text())
	}
	// The same seed draws the same image.
	again, _, _, err := chat(e, msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again.Parts {
		if p.Image != nil && !slices.Equal(p.Image.IDs, imgs[0].IDs) {
			t.Fatal("the same seed drew a different image")
		}
	}
	// Without permission to draw, the bias cannot open an image.
	opts.Images = false
	ans, _, _, err = chat(e, msgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ans.Parts {
		if p.Image != nil {
			t.Fatal("an image was drawn though images were not allowed")
		}
	}
}

// chat answers msgs once through the engine's door: the answer, the text its TextDelta events
// streamed, and how many ImageDone events came.
func chat(e *llm.Engine, msgs []llm.Message, opts llm.ChatOptions) (ans *llm.Answer, streamed string, images int, err error) {
	run, err := e.Chat(context.Background(), llm.ChatRequest{Messages: msgs, Options: opts})
	if err != nil {
		return nil, "", 0, err
	}
	for ev := range run.Events() {
		switch ev := ev.(type) {
		case llm.TextDelta:
			streamed += ev.Text
		case llm.ImageDone:
			images++
		case llm.ChoiceDone:
			ans = ev.Answer
		case llm.Failed:
			return nil, "", 0, ev.Err
		}
	}
	return ans, streamed, images, nil
}

func TestEngineRejectsMismatchedPair(t *testing.T) {
	// The text-only test backbone has no image tokens: pairing it with TokLIP is an error.
	vt := filepath.Join("..", "visiontok", "testdata")
	vision := filepath.Join(t.TempDir(), "toklip.gguf")
	if err := visionconvert.Convert(filepath.Join(vt, "toklip-tiny.pt"), vision, visionconvert.Options{
		Tokenizer: filepath.Join(vt, "tokenizer", "tokenizer.json"), Heads: 4, Groups: 8}); err != nil {
		t.Fatal(err)
	}
	_, err := llm.Open(context.Background(), convertModel(t, "llama", gguf.TypeF32), vision, llm.EngineOptions{})
	if err == nil {
		t.Fatal("a backbone without image tokens was paired with TokLIP")
	}
	text, err := llm.Open(context.Background(), convertModel(t, "llama", gguf.TypeF32), "", llm.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	if _, err := text.Draw(context.Background(), llm.DrawRequest{Prompt: "x"}); err != llm.ErrNoVision {
		t.Fatalf("drawing with a text-only model: %v", err)
	}
	var part *llm.PartError
	if _, err := text.BuildPrompt([]llm.Message{{Role: "user", Content: []llm.Part{{Image: testImage(t)}}}}, true); !errors.As(err, &part) || part.Err != llm.ErrNoVision {
		t.Fatalf("an image for a text-only model: %v", err)
	}
}

// Image logits, from the image-only head or cut from a full pass, are the image range of the
// full logits.
func TestImageLogits(t *testing.T) {
	e := engine(t, true)
	b := e.Backbone()
	it := b.Config().Images
	s1, s2 := acquire(t, b), acquire(t, b)
	defer b.Release(s1)
	defer b.Release(s2)
	prompt := []int32{10, 20, 30, it.Begin}
	forward(t, b, tokens(s1, prompt, false)[:3])
	in := tokens(s2, prompt, false)
	in[3].Logits = true
	want := forward(t, b, in)[0][it.First : int(it.First)+it.Count]
	b.Truncate(s2, 3)
	in[3].ImageLogits = true
	head := forward(t, b, in[3:])[0] // every output wants image logits: the small head
	b.Truncate(s2, 3)
	mixed := forward(t, b, append(in[3:], llm.Input{Seq: s1, Token: 40, Logits: true})) // with a full-vocabulary output
	if len(head) != it.Count || len(mixed[0]) != it.Count || len(mixed[1]) != b.Config().Vocab {
		t.Fatalf("lengths %d %d %d", len(head), len(mixed[0]), len(mixed[1]))
	}
	for i := range want {
		if math.Abs(float64(head[i]-want[i])) > 1e-4 || math.Abs(float64(mixed[0][i]-want[i])) > 1e-4 {
			t.Fatalf("image logit %d: head %v, mixed %v, full %v", i, head[i], mixed[0][i], want[i])
		}
	}
}

// Inspect reads from the headers what the loaded engine reports: what the model can do, its
// shape, its files' size; its memory (weights and KV cache) is at most what ggml allocated for
// weights, caches and compute graphs once loaded, and more than the weights alone.
func TestInspectAgreesWithTheLoadedEngine(t *testing.T) {
	lm, vision := engineFiles(t, true)
	opts := llm.EngineOptions{Backbone: llm.Options{Sequences: 6, CacheType: llm.CacheF32}}
	in, err := llm.Inspect(lm, vision, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := engine(t, true).Info()
	est, loaded := in.Memory, got.Memory
	in.Memory, got.Memory, in.GPUMemory, got.GPUMemory = 0, 0, 0, 0
	if in != got {
		t.Errorf("Inspect says %+v, the loaded engine %+v", in, got)
	}
	if est < in.FileBytes/2 || est > loaded || loaded <= 0 {
		t.Errorf("memory: estimated %d, allocated %d, files %d bytes", est, loaded, in.FileBytes)
	}
	if _, err := llm.Inspect(vision, "", opts); err == nil {
		t.Error("Inspect took a TokLIP file for a backbone")
	}
}

// Tokenize is the understanding path's discrete half and its round trip: the ids are the ones
// a prompt with the image is built from, the reconstruction the VQ decoder's of those ids (both
// halves checked against PyTorch in visiontok).
func TestTokenize(t *testing.T) {
	e := engine(t, false)
	data := testImage(t)
	tok, err := e.Tokenize(data)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := e.EncodeImage(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Vision().Config()
	if tok.Grid != cfg.Grid || !slices.Equal(tok.IDs, enc.IDs) {
		t.Fatalf("grid %d, ids %v; want %d, %v", tok.Grid, tok.IDs, cfg.Grid, enc.IDs)
	}
	rec, err := e.Vision().Decode(enc.IDs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Reconstruction.Pix, rec.Pix) || tok.Crop.Bounds().Dx() != cfg.ImageSize || tok.Crop.Bounds().Dy() != cfg.ImageSize {
		t.Errorf("reconstruction or crop (%v) differ from the vision model's", tok.Crop.Bounds())
	}
	if _, err := e.Tokenize([]byte("not an image")); err == nil {
		t.Error("a file that is no image was tokenized")
	}
}
