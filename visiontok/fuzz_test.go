package visiontok_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toklip/toklip/internal/alloc"
	"github.com/toklip/toklip/visiontok"
)

// fuzzLimits keep a fuzzed image small, so that what a decode may allocate is bounded by them.
var fuzzLimits = visiontok.Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 18, MaxAspect: 200}

// Any bytes either decode to a picture within the limits, whose crop has the asked size and
// equals what the engine's path (CropImage) makes, or fail with ErrImage; never a panic or a
// crash in libjpeg, and never an allocation beyond what the limits allow.
func FuzzDecodeImage(f *testing.F) {
	for _, dir := range []string{"inputs", "images", "formats"} {
		entries, _ := os.ReadDir(filepath.Join("testdata", dir))
		for _, e := range entries {
			if filepath.Ext(e.Name()) == ".json" || strings.HasSuffix(e.Name(), ".pre.png") {
				continue
			}
			if data, err := os.ReadFile(filepath.Join("testdata", dir, e.Name())); err == nil && len(data) < 64<<10 {
				f.Add(data, false)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, ignoreEXIF bool) {
		opts := visiontok.DecodeOptions{Limits: fuzzLimits, IgnoreEXIF: ignoreEXIF}
		var pic *visiontok.Picture
		var err error
		var crop, viaEngine []byte
		n := alloc.Bytes(func() {
			if pic, err = visiontok.DecodeImage(context.Background(), data, opts); err == nil {
				crop = pic.Crop(16).Pix
			}
		})
		if err != nil {
			if !errors.Is(err, visiontok.ErrImage) {
				t.Fatalf("an error that is not ErrImage: %v", err)
			}
			return
		}
		// The decoders' buffers, the picture, its turned copy: at most 32 bytes a pixel allowed.
		if n > 32*uint64(fuzzLimits.MaxPixels)+8*uint64(len(data))+1<<20 {
			t.Fatalf("%d bytes allocated for a %d x %d image of %d bytes", n, pic.Width, pic.Height, len(data))
		}
		if int64(pic.Width)*int64(pic.Height) > fuzzLimits.MaxPixels || pic.Width <= 0 || pic.Height <= 0 {
			t.Fatalf("a %d x %d picture passed the limits", pic.Width, pic.Height)
		}
		if len(crop) != 16*16*4 {
			t.Fatalf("crop of %d bytes", len(crop))
		}
		c, err := visiontok.CropImage(context.Background(), data, opts, 16)
		if err != nil {
			t.Fatalf("DecodeImage accepted what CropImage refuses: %v", err)
		}
		viaEngine = c.Pix
		if string(viaEngine) != string(crop) {
			t.Fatal("CropImage and DecodeImage + Crop differ")
		}
	})
}
