package visiontok_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/toklip/toklip/visiontok"
)

var (
	red   = color.RGBA{255, 0, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
	green = color.RGBA{0, 255, 0, 255}
)

// pattern is the image of tools/reference/make_image_samples.py: left half red, right half blue,
// bottom-right quarter green.
func pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := red
			if x >= w/2 {
				c = blue
				if y >= h/2 {
					c = green
				}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

func decode(t *testing.T, data []byte) *image.RGBA {
	t.Helper()
	pic, err := visiontok.DecodeImage(context.Background(), data, visiontok.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pic.RGB()
}

func TestFormats(t *testing.T) {
	want := pattern(24, 16)
	var pngBuf, bmpBuf bytes.Buffer
	png.Encode(&pngBuf, want)
	bmp.Encode(&bmpBuf, want)
	for name, data := range map[string][]byte{"png": pngBuf.Bytes(), "bmp": bmpBuf.Bytes(), "webp": read(t, "formats/pattern.webp")} {
		got := decode(t, data)
		if got.Bounds().Size() != want.Bounds().Size() {
			t.Fatalf("%s: size %v", name, got.Bounds().Size())
		}
		for y := range 16 {
			for x := range 24 {
				if got.RGBAAt(x, y) != want.RGBAAt(x, y) {
					t.Fatalf("%s: pixel (%d,%d) = %v, want %v", name, x, y, got.RGBAAt(x, y), want.RGBAAt(x, y))
				}
			}
		}
	}
}

func TestGIFFirstFrame(t *testing.T) {
	pal := color.Palette{red, blue}
	frame := func(c uint8) *image.Paletted {
		f := image.NewPaletted(image.Rect(0, 0, 8, 8), pal)
		for i := range f.Pix {
			f.Pix[i] = c
		}
		return f
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{frame(0), frame(1)}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, buf.Bytes()).RGBAAt(3, 3); got != red {
		t.Fatalf("animated GIF decodes to %v, want the first frame's red", got)
	}
}

// TokLIP's transform converts to RGB after the resize: a transparent pixel keeps its colour when
// the image needs no resize (alpha is dropped) and turns black when it is resized (PIL resizes
// RGBA premultiplied).
func TestAlphaAsTheOfficialPipelineSeesIt(t *testing.T) {
	for _, c := range []struct {
		size int
		want color.RGBA
	}{{8, color.RGBA{255, 0, 0, 255}}, {4, color.RGBA{0, 0, 0, 255}}} {
		img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
		for i := 0; i < len(img.Pix); i += 4 {
			copy(img.Pix[i:], []uint8{255, 0, 0, 0}) // red, fully transparent
		}
		var buf bytes.Buffer
		png.Encode(&buf, img)
		crop, err := visiontok.CropImage(context.Background(), buf.Bytes(), visiontok.DecodeOptions{}, c.size)
		if err != nil {
			t.Fatal(err)
		}
		if got := crop.RGBAAt(1, 1); got != c.want {
			t.Errorf("8x8 transparent red cropped to %d: %v, want %v", c.size, got, c.want)
		}
	}
}

// withOrientation inserts an EXIF APP1 segment with the given orientation after the JPEG's SOI.
func withOrientation(jpg []byte, o uint16, bigEndian bool) []byte {
	var bo binary.ByteOrder = binary.LittleEndian
	tiff := []byte("II*\x00\x08\x00\x00\x00")
	if bigEndian {
		bo = binary.BigEndian
		tiff = []byte("MM\x00*\x00\x00\x00\x08")
	}
	ifd := make([]byte, 2+12+4)
	bo.PutUint16(ifd[0:], 1)      // one entry
	bo.PutUint16(ifd[2:], 0x0112) // orientation
	bo.PutUint16(ifd[4:], 3)      // SHORT
	bo.PutUint32(ifd[6:], 1)
	bo.PutUint16(ifd[10:], o)
	app1 := append([]byte("Exif\x00\x00"), append(tiff, ifd...)...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(app1)+2))
	seg = append(seg, app1...)
	return append(append(append([]byte{}, jpg[:2]...), seg...), jpg[2:]...)
}

func TestJPEGOrientation(t *testing.T) {
	var stored bytes.Buffer
	if err := jpeg.Encode(&stored, pattern(40, 20), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	pic, err := visiontok.DecodeImage(context.Background(), withOrientation(stored.Bytes(), 6, false), visiontok.DecodeOptions{IgnoreEXIF: true})
	if err != nil || pic.Width != 40 || pic.Height != 20 {
		t.Fatalf("orientation 6 ignored: %v, %v", pic, err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pattern(40, 20), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// Where the stored image's red left half and green bottom-right quarter end up, per orientation.
	cases := []struct {
		o            uint16
		w, h         int
		redAt        image.Point
		greenAt      image.Point
		littleEndian bool
	}{
		{1, 40, 20, image.Pt(5, 10), image.Pt(35, 15), true},
		{3, 40, 20, image.Pt(35, 10), image.Pt(5, 5), false},
		{6, 20, 40, image.Pt(10, 5), image.Pt(5, 35), true}, // rotate 90 clockwise: left goes to the top
		{8, 20, 40, image.Pt(10, 35), image.Pt(15, 5), false},
		{2, 40, 20, image.Pt(35, 10), image.Pt(5, 15), true},
	}
	for _, c := range cases {
		got := decode(t, withOrientation(buf.Bytes(), c.o, !c.littleEndian))
		if got.Bounds().Dx() != c.w || got.Bounds().Dy() != c.h {
			t.Fatalf("orientation %d: size %v, want %dx%d", c.o, got.Bounds().Size(), c.w, c.h)
		}
		if p := got.RGBAAt(c.redAt.X, c.redAt.Y); !near(p, red, 12) {
			t.Errorf("orientation %d: %v is %v, want red", c.o, c.redAt, p)
		}
		if p := got.RGBAAt(c.greenAt.X, c.greenAt.Y); !near(p, green, 12) {
			t.Errorf("orientation %d: %v is %v, want green", c.o, c.greenAt, p)
		}
	}
}

// pngHeader is a PNG that claims w x h pixels and has no pixel data: what a decompression bomb
// looks like to a decoder that believes its header.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	out := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d")
	out = append(out, chunk...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(chunk))
}

func TestBadImages(t *testing.T) {
	var good bytes.Buffer
	png.Encode(&good, pattern(64, 64))
	tiff := []byte("II*\x00\x08\x00\x00\x00\x00\x00")
	cases := []struct {
		name    string
		data    []byte
		limits  visiontok.Limits
		mention string
	}{
		{"too many bytes", good.Bytes(), visiontok.Limits{MaxBytes: 100, MaxPixels: 1 << 30}, "over the limit of 100"},
		{"decompression bomb", pngHeader(100000, 100000), visiontok.DefaultLimits, "100000 x 100000 pixels"},
		{"too many pixels", good.Bytes(), visiontok.Limits{MaxBytes: 1 << 30, MaxPixels: 1000}, "64 x 64 pixels"},
		{"too thin", pngHeader(1000000, 1), visiontok.DefaultLimits, "thinner than the limit of 1:200"},
		{"truncated", good.Bytes()[:good.Len()/2], visiontok.DefaultLimits, "truncated"},
		{"not an image", []byte("hello, world"), visiontok.DefaultLimits, "not a PNG, JPEG"},
		{"empty", nil, visiontok.DefaultLimits, "not a PNG, JPEG"},
		{"zero pixels", pngHeader(0, 10), visiontok.DefaultLimits, "0 x 10 pixels"},
		{"tiff", tiff, visiontok.DefaultLimits, "not a PNG, JPEG"},
		{"truncated jpeg", truncatedJPEG(t), visiontok.DefaultLimits, "truncated"},
		{"animated webp", []byte("RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x07\x00\x00"), visiontok.DefaultLimits, "animated WebP"},
		{"rle bmp", rleBMP(), visiontok.DefaultLimits, "run-length"},
	}
	for _, c := range cases {
		pic, err := visiontok.DecodeImage(context.Background(), c.data, visiontok.DecodeOptions{Limits: c.limits})
		if err == nil || pic != nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, visiontok.ErrImage) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: error %q, want ErrImage mentioning %q", c.name, err, c.mention)
		}
	}
}

func truncatedJPEG(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pattern(64, 64), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:buf.Len()-40] // inside the scan
}

// rleBMP is the header of an 8-bit run-length compressed BMP.
func rleBMP() []byte {
	b := make([]byte, 54+1024+16)
	copy(b, "BM")
	binary.LittleEndian.PutUint32(b[10:], 54+1024)
	binary.LittleEndian.PutUint32(b[14:], 40)
	binary.LittleEndian.PutUint32(b[18:], 4)
	binary.LittleEndian.PutUint32(b[22:], 4)
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint16(b[28:], 8)
	binary.LittleEndian.PutUint32(b[30:], 1) // BI_RLE8
	return b
}

// A PNG of 1,000,000 x 1 pixels once made the server allocate a 256,000,000-pixel resize and die.
// With the aspect limit off, its crop costs no more than its crop.
func TestThinImageCropsWithinItsCrop(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1_000_000, 1))
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 4 % 251)
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	crop, err := visiontok.CropImage(context.Background(), buf.Bytes(), visiontok.DecodeOptions{
		Limits: visiontok.Limits{MaxBytes: 1 << 30, MaxPixels: 1 << 30}}, 256)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if crop.Bounds().Dx() != 256 || crop.Bounds().Dy() != 256 {
		t.Fatalf("crop %v", crop.Bounds())
	}
	// The decoded image is 4 MB (Go's) + 3 MB (the picture); the crop 256 KB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
		t.Errorf("a 1,000,000 x 1 image allocated %d MB to crop", n>>20)
	}
}
