package visiontok_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"testing"

	"github.com/toklip/toklip/visiontok"
)

// The inputs of every kind and what the official pipeline (PIL 9.4 + torchvision 0.14) makes of
// them come from tools/reference/make_image_goldens.py. The bar is exact: the 8-bit crop the
// model input is made from equal to PIL's on every value (0/255), and so the VQ ids of the small
// test model equal to the float64 reference's on every position.

type inputGolden struct {
	Size   int `json:"size"`
	Inputs map[string]struct {
		Mode    string      `json:"mode"`
		Size    [2]int      `json:"size"`
		Pre     *cropGolden `json:"pre"`
		Rotated *cropGolden `json:"rotated"`
	} `json:"inputs"`
}

type cropGolden struct {
	Crop           string  `json:"crop"`
	IDs            []int32 `json:"ids"`
	SmallestMargin float64 `json:"smallest_margin"`
}

func readInputGolden(t *testing.T) inputGolden {
	t.Helper()
	var g inputGolden
	if err := json.Unmarshal(read(t, "inputs/inputs.json"), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// crop decodes and crops a test input the way the engine does (data, when given, instead of the
// file).
func crop(t *testing.T, name string, ignoreEXIF bool, size int, data ...[]byte) *image.RGBA {
	t.Helper()
	if len(data) == 0 {
		data = append(data, read(t, filepath.Join("inputs", name)))
	}
	c, err := visiontok.CropImage(context.Background(), data[0], visiontok.DecodeOptions{IgnoreEXIF: ignoreEXIF}, size)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// compareCrop counts the values that differ from the golden crop and the largest difference.
func compareCrop(t *testing.T, got *image.RGBA, file string) (differ, maxDiff int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(read(t, filepath.Join("inputs", file))))
	if err != nil {
		t.Fatal(err)
	}
	want := img.(*image.RGBA)
	if got.Bounds().Size() != want.Bounds().Size() {
		t.Fatalf("%s: crop %v, want %v", file, got.Bounds().Size(), want.Bounds().Size())
	}
	for y := range want.Bounds().Dy() {
		for x := range want.Bounds().Dx() {
			for c := range 3 {
				d := int(got.Pix[y*got.Stride+4*x+c]) - int(want.Pix[y*want.Stride+4*x+c])
				if d != 0 {
					differ++
					maxDiff = max(maxDiff, d, -d)
				}
			}
		}
	}
	return differ, maxDiff
}

func TestInputsMatchPIL(t *testing.T) {
	g := readInputGolden(t)
	for name, in := range g.Inputs {
		t.Run(name, func(t *testing.T) {
			pic, err := visiontok.DecodeImage(context.Background(), read(t, filepath.Join("inputs", name)), visiontok.DecodeOptions{IgnoreEXIF: true})
			if err != nil {
				t.Fatal(err)
			}
			if pic.Mode.String() != in.Mode || pic.Width != in.Size[0] || pic.Height != in.Size[1] {
				t.Errorf("decoded as %s %dx%d, PIL opens %s %dx%d", pic.Mode, pic.Width, pic.Height, in.Mode, in.Size[0], in.Size[1])
			}
			if n, d := compareCrop(t, crop(t, name, true, g.Size), in.Pre.Crop); n != 0 {
				t.Errorf("EXIF ignored: %d values differ from PIL's, by up to %d/255", n, d)
			}
			if in.Rotated != nil {
				if n, d := compareCrop(t, crop(t, name, false, g.Size), in.Rotated.Crop); n != 0 {
					t.Errorf("EXIF applied: %d values differ from PIL's exif_transpose, by up to %d/255", n, d)
				}
			}
		})
	}
}

// The model's ids of every crop equal the float64 reference's: the inputs are identical, and the
// VQ path agrees with PyTorch (parity_test.go); the reference's smallest top-2 code margin on
// these crops is 1.7e-5, far above float32's error there.
func TestInputsVQIDs(t *testing.T) {
	g := readInputGolden(t)
	v := tinyModel(t)
	positions := 0
	for name, in := range g.Inputs {
		for _, c := range []struct {
			golden     *cropGolden
			ignoreEXIF bool
		}{{in.Pre, true}, {in.Rotated, false}} {
			if c.golden == nil {
				continue
			}
			ids, err := v.EncodeIDs(visiontok.Planes(crop(t, name, c.ignoreEXIF, g.Size)))
			if err != nil {
				t.Fatal(err)
			}
			differ := 0
			for i := range ids {
				if ids[i] != c.golden.IDs[i] {
					differ++
				}
			}
			positions += len(ids)
			if differ > 0 || len(ids) != len(c.golden.IDs) {
				t.Errorf("%s (EXIF ignored %v): %d of %d ids differ from the reference (smallest margin %.1e)", name, c.ignoreEXIF, differ, len(ids), c.golden.SmallestMargin)
			}
		}
	}
	t.Logf("%d inputs, %d id positions", len(g.Inputs), positions)
}

// Go's own JPEG decoder, which toklip used before, misses PIL's pixels on these photos: the
// reason JPEG goes through libjpeg-turbo. This also shows that the comparison above can fail.
func TestGoJPEGDecoderDiffers(t *testing.T) {
	g := readInputGolden(t)
	img, err := jpeg.Decode(bytes.NewReader(read(t, "inputs/photo-q90-420.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	png.Encode(&buf, img) // through PNG: the same pixels as RGB, decoded by the path under test
	n, d := compareCrop(t, crop(t, "", true, g.Size, buf.Bytes()), g.Inputs["photo-q90-420.jpg"].Pre.Crop)
	if n == 0 {
		t.Fatal("Go's image/jpeg gives PIL's crop exactly; the libjpeg-turbo path would not be needed")
	}
	t.Logf("image/jpeg: %d of %d values differ from PIL's, by up to %d/255", n, 3*g.Size*g.Size, d)
}
