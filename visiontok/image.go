package visiontok

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// Limits bound what DecodeImage accepts. All are checked on the file's header, before a pixel
// is decoded or a buffer allocated, so that a small file claiming a huge or absurdly thin canvas
// (a decompression bomb) is refused instead of allocated.
type Limits struct {
	MaxBytes  int64 // encoded size
	MaxPixels int64 // width x height
	MaxAspect int   // longer side / shorter side, at most
}

// DefaultLimits allow a 20 MiB file of up to 40 megapixels (a 7700 x 5200 photo), no thinner
// than 1:200 (a long screenshot is 1:20).
var DefaultLimits = Limits{MaxBytes: 20 << 20, MaxPixels: 40_000_000, MaxAspect: 200}

// ErrImage marks every error about an input image, for callers that answer with a 4xx.
var ErrImage = errors.New("bad image")

// DecodeOptions are DecodeImage's settings; the zero value uses DefaultLimits and applies EXIF
// orientation.
type DecodeOptions struct {
	Limits Limits
	// IgnoreEXIF keeps the pixels as stored, as TokLIP's official pipeline does (PIL's open does
	// not rotate). By default a JPEG, PNG or WebP with an EXIF orientation is turned upright first
	// (ImageOps.exif_transpose), which is what a photo's owner sees.
	IgnoreEXIF bool
}

// format is an accepted image format, known by its first bytes.
type format string

func sniff(data []byte) format {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return "jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("BM")):
		return "bmp"
	}
	return ""
}

// header is what a format's decoder learns before it allocates: the size, the bytes its decode
// will hold at most (its own buffers and the Picture), which the decode budget reserves, and the
// EXIF orientation where PIL's getexif finds one (JPEG APP1, PNG eXIf, WebP EXIF; 1 when none).
type header struct {
	width, height int
	cost          int64
	orientation   int
}

// DecodeImage decodes a PNG, JPEG, GIF (first frame), WebP or BMP file into the mode PIL opens
// it in, with PIL's pixel values (JPEG through libjpeg-turbo with PIL's settings; the others are
// lossless, or decoded and upsampled as libwebp does), and by default turned upright by its EXIF
// orientation.
func DecodeImage(ctx context.Context, data []byte, opts DecodeOptions) (*Picture, error) {
	var pic *Picture
	err := decodeWith(ctx, data, opts, 0, func(p *Picture) error { pic = p; return nil })
	return pic, err
}

// decodeWith decodes data and gives the picture to use while the decode's memory is reserved;
// cropSize, when known, adds what Crop's intermediate rows take.
func decodeWith(ctx context.Context, data []byte, opts DecodeOptions, cropSize int64, use func(*Picture) error) (err error) {
	limits := opts.Limits
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	if int64(len(data)) > limits.MaxBytes {
		return fmt.Errorf("%w: %d bytes is over the limit of %d", ErrImage, len(data), limits.MaxBytes)
	}
	f := sniff(data)
	if f == "" {
		return fmt.Errorf("%w: not a PNG, JPEG, GIF, WebP or BMP image", ErrImage)
	}
	defer func() { // the readers return errors on bad data; this guards against one that panics
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decoding %s: %v", ErrImage, f, r)
		}
	}()
	var hdr header
	var decode func() (*Picture, error)
	switch f {
	case "png":
		hdr, decode, err = readPNG(data)
	case "jpeg":
		hdr, decode, err = readJPEG(data)
	case "gif":
		hdr, decode, err = readGIF(data)
	case "webp":
		hdr, decode, err = readWebP(data)
	case "bmp":
		hdr, decode, err = readBMP(data)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrImage, f, err)
	}
	if err := limits.check(hdr.width, hdr.height); err != nil {
		return err
	}
	o := 1
	if !opts.IgnoreEXIF && hdr.orientation >= 1 && hdr.orientation <= 8 {
		o = hdr.orientation
	}
	cost := hdr.cost
	w, h := int64(hdr.width), int64(hdr.height)
	if o >= 5 { // turned a quarter: the sides swap
		w, h = h, w
	}
	if o > 1 {
		cost += hdr.cost // the turned copy
	}
	// Crop's horizontal pass keeps the input rows under the crop, cropSize wide (16 bytes a pixel
	// covers every mode), reading one input row at a time.
	cost += h*cropSize*16 + w*4
	release, err := decodeBudget.reserve(ctx, cost)
	if err != nil {
		return err
	}
	defer release()
	pic, err := decode()
	if err != nil {
		return fmt.Errorf("%w: decoding %s: %v", ErrImage, f, err)
	}
	if pic.Width != hdr.width || pic.Height != hdr.height {
		return fmt.Errorf("%w: decoding %s: %d x %d pixels decoded, the header says %d x %d", ErrImage, f, pic.Width, pic.Height, hdr.width, hdr.height)
	}
	return use(pic.transpose(o))
}

func (l Limits) check(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %d x %d pixels: an image needs at least one pixel each way", ErrImage, w, h)
	}
	if int64(w)*int64(h) > l.MaxPixels {
		return fmt.Errorf("%w: %d x %d pixels is over the limit of %d", ErrImage, w, h, l.MaxPixels)
	}
	long, short := max(w, h), min(w, h)
	if l.MaxAspect > 0 && long > short*l.MaxAspect {
		return fmt.Errorf("%w: %d x %d pixels is thinner than the limit of 1:%d", ErrImage, w, h, l.MaxAspect)
	}
	return nil
}
