package visiontok_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/toklip/toklip/visiontok"
	"github.com/toklip/toklip/visiontok/convert"
)

// The golden files come from tools/reference/make_toklip_golden.py: a float64 PyTorch TokLIP
// written from the official structure (toklip_ref.py), on the small checkpoint these tests
// convert with toklip's own converter.
//
// Tolerances, as the issue sets them: VQ ids identical on >= 99.9% of positions (a latent almost
// equidistant from two codes may flip under float32; the reference reports its closest margins);
// features and the pooled embedding within 1e-4 of the largest magnitude (float32 through a few
// layers is ~1e-6); decoded pixels within 2/255 (float32 against float64 can move a value across
// a rounding boundary, and the uint8 conversion truncates); text embeddings within 1e-4.

type golden struct {
	Config struct {
		ImageSize int `json:"image_size"`
		Grid      int `json:"grid"`
		Width     int `json:"width"`
		Context   int `json:"context"`
	} `json:"config"`
	Images map[string]struct {
		PNG            string  `json:"png"`
		SmallestMargin float64 `json:"smallest_margin"`
		NearTies       int     `json:"near_ties"`
	} `json:"images"`
	Labels    []string             `json:"labels"`
	Canonical []string             `json:"canonical"`
	ZeroShot  map[string][]float64 `json:"zero_shot"`
}

func readGolden(t testing.TB) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g golden) names() []string {
	var names []string
	for n := range g.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func f32s(t testing.TB, name string) []float32 {
	data := read(t, name)
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

func i32s(t testing.TB, name string) []int32 {
	data := read(t, name)
	out := make([]int32, len(data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

var (
	convertedPath string
	vision        *visiontok.Vision
)

// tinyModel converts the test checkpoint (F32) once and loads it once per test binary.
func tinyModel(t testing.TB) *visiontok.Vision {
	t.Helper()
	if vision != nil {
		return vision
	}
	dir, err := os.MkdirTemp("", "visiontok-test")
	if err != nil {
		t.Fatal(err)
	}
	convertedPath = filepath.Join(dir, "toklip-tiny.gguf")
	err = convert.Convert(filepath.Join("testdata", "toklip-tiny.pt"), convertedPath, convert.Options{
		Tokenizer: filepath.Join("testdata", "tokenizer", "tokenizer.json"), Heads: 4, Groups: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	vision, err = visiontok.Load(context.Background(), convertedPath, visiontok.Options{Streams: 2})
	if err != nil {
		t.Fatal(err)
	}
	return vision
}

func TestMain(m *testing.M) {
	code := m.Run()
	if vision != nil {
		vision.Close()
		os.RemoveAll(filepath.Dir(convertedPath))
	}
	os.Exit(code)
}

// pixels turns the reference's resized uint8 image into the model's input, as ToTensor and
// Normalize do.
func pixels(pre []byte, size int) []float32 {
	out := make([]float32, 3*size*size)
	for c := range 3 {
		for p := range size * size {
			out[c*size*size+p] = (float32(pre[3*p+c])/255 - 0.5) / 0.5
		}
	}
	return out
}

// relErr is the largest absolute difference relative to the largest magnitude of want.
func relErr(got, want []float32) float64 {
	worst, scale := 0.0, 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	return worst / scale
}

func TestPreprocessMatchesTorchvision(t *testing.T) {
	g := readGolden(t)
	for _, name := range g.names() {
		img, err := visiontok.DecodeImage(context.Background(), read(t, g.Images[name].PNG), visiontok.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		crop := img.Crop(g.Config.ImageSize)
		want := read(t, name+".pre.u8")
		worst := 0
		for y := range g.Config.ImageSize {
			for x := range g.Config.ImageSize {
				for c := range 3 {
					d := int(crop.Pix[y*crop.Stride+4*x+c]) - int(want[(y*g.Config.ImageSize+x)*3+c])
					worst = max(worst, d, -d)
				}
			}
		}
		if worst > 0 {
			t.Errorf("%s: resized pixels differ from torchvision by up to %d/255", name, worst)
		}
	}
}

func TestVQIDsMatchReference(t *testing.T) {
	g := readGolden(t)
	v := tinyModel(t)
	same, total := 0, 0
	for _, name := range g.names() {
		ids, err := v.EncodeIDs(pixels(read(t, name+".pre.u8"), g.Config.ImageSize))
		if err != nil {
			t.Fatal(err)
		}
		want := i32s(t, name+".ids.i32")
		for i := range want {
			total++
			if ids[i] == want[i] {
				same++
			} else {
				t.Logf("%s position %d: id %d, reference %d (smallest reference margin in this image %.1e)", name, i, ids[i], want[i], g.Images[name].SmallestMargin)
			}
		}
	}
	t.Logf("VQ ids identical on %d of %d positions", same, total)
	if float64(same) < 0.999*float64(total) {
		t.Fatalf("VQ ids identical on %d of %d positions, want >= 99.9%%", same, total)
	}
}

func TestSemanticFeaturesMatchReference(t *testing.T) {
	g := readGolden(t)
	v := tinyModel(t)
	for _, name := range g.names() {
		feats, pooled, err := v.Features(i32s(t, name+".ids.i32"))
		if err != nil {
			t.Fatal(err)
		}
		fe := relErr(slices.Concat(feats...), f32s(t, name+".features.f32"))
		pe := relErr(pooled, f32s(t, name+".pooled.f32"))
		t.Logf("%s: features %.1e, pooled %.1e relative error", name, fe, pe)
		if fe > 1e-4 || pe > 1e-4 {
			t.Errorf("%s: features %.1e, pooled %.1e relative error (allowed 1e-4)", name, fe, pe)
		}
	}
}

func TestDecodedPixelsMatchReference(t *testing.T) {
	g := readGolden(t)
	v := tinyModel(t)
	for _, name := range g.names() {
		img, err := v.Decode(i32s(t, name+".ids.i32"))
		if err != nil {
			t.Fatal(err)
		}
		want := read(t, name+".decoded.u8")
		worst, spread := 0, map[byte]bool{}
		for p := range len(want) / 3 {
			for c := range 3 {
				d := int(img.Pix[4*p+c]) - int(want[3*p+c])
				worst = max(worst, d, -d)
				spread[want[3*p+c]] = true
			}
		}
		t.Logf("%s: largest pixel difference %d/255 (%d distinct reference values)", name, worst, len(spread))
		if worst > 2 || len(spread) < 64 {
			t.Errorf("%s: decoded pixels differ by %d/255 (allowed 2), %d distinct values", name, worst, len(spread))
		}
	}
}

func TestTextTowerMatchesReference(t *testing.T) {
	g := readGolden(t)
	v := tinyModel(t)
	ids := i32s(t, "text.ids.i32")
	want := f32s(t, "text.embeddings.f32")
	ctx, width := g.Config.Context, g.Config.Width
	for i, label := range g.Labels {
		if got := visiontok.Canonicalize(label); got != g.Canonical[i] {
			t.Errorf("Canonicalize(%q) = %q, want %q", label, got, g.Canonical[i])
		}
		got, err := v.TextIDs(label)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, ids[i*ctx:(i+1)*ctx]) {
			t.Errorf("%q: ids %v, want %v", label, got, ids[i*ctx:(i+1)*ctx])
		}
		emb, err := v.TextEmbedding(label)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(emb, want[i*width:(i+1)*width]); e > 1e-4 {
			t.Errorf("%q: text embedding relative error %.1e (allowed 1e-4)", label, e)
		}
	}
	for _, name := range g.names() {
		probs, err := v.ZeroShot(f32s(t, name+".pooled.f32"), g.Labels)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range probs {
			if math.Abs(float64(p)-g.ZeroShot[name][i]) > 1e-3 {
				t.Errorf("%s: zero-shot probability of %q is %.4f, want %.4f", name, g.Labels[i], p, g.ZeroShot[name][i])
			}
		}
	}
}

// The incremental encoder, one id (or a few) at a time through the KV cache, gives the features
// of the whole-image pass.
func TestIncrementalEqualsWholeImage(t *testing.T) {
	g := readGolden(t)
	v := tinyModel(t)
	for _, name := range g.names()[:2] {
		ids := i32s(t, name+".ids.i32")
		whole, _, err := v.Features(ids)
		if err != nil {
			t.Fatal(err)
		}
		a, err := v.NewStream()
		if err != nil {
			t.Fatal(err)
		}
		b, err := v.NewStream() // a second stream in the same cache, fed in chunks
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.NewStream(); err == nil {
			t.Fatal("a third stream with two slots must be refused")
		}
		var one, chunked [][]float32
		for i, id := range ids {
			f, err := a.Add([]int32{id})
			if err != nil {
				t.Fatal(err)
			}
			one = append(one, f...)
			if i == 2 {
				f, err := b.Add(ids[:3])
				if err != nil {
					t.Fatal(err)
				}
				chunked = append(chunked, f...)
			}
		}
		f, err := b.Add(ids[3:])
		if err != nil {
			t.Fatal(err)
		}
		chunked = append(chunked, f...)
		a.Close()
		b.Close()
		if e := relErr(slices.Concat(one...), slices.Concat(whole...)); e > 1e-5 {
			t.Errorf("%s: one id at a time differs from the whole image by %.1e", name, e)
		}
		if e := relErr(slices.Concat(chunked...), slices.Concat(whole...)); e > 1e-5 {
			t.Errorf("%s: chunks differ from the whole image by %.1e", name, e)
		}
		if _, err := a.Add(ids[:1]); err == nil {
			t.Error("a closed stream accepted ids")
		}
	}
}

func TestBadInputs(t *testing.T) {
	v := tinyModel(t)
	n := v.Config().PerImage()
	if _, _, err := v.Features(make([]int32, n-1)); err == nil {
		t.Error("Features accepted too few ids")
	}
	if _, err := v.Decode(append(make([]int32, n-1), 16384)); err == nil {
		t.Error("Decode accepted an id outside the codebook")
	}
	if _, err := v.EncodeIDs(make([]float32, 10)); err == nil {
		t.Error("EncodeIDs accepted the wrong number of pixels")
	}
	if _, err := v.TextEmbeddingIDs([]int32{1, 2}); err == nil {
		t.Error("TextEmbeddingIDs accepted a short input")
	}
}
