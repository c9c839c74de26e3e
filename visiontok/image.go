package visiontok

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // first frame
	_ "image/jpeg" // EXIF orientation applied below
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"
)

// Limits bound what DecodeImage accepts. Both are checked before any pixel is decoded: the byte
// count on the input, the pixel count on the header, so that a small file that claims a huge
// canvas (a decompression bomb) is refused instead of allocated.
type Limits struct {
	MaxBytes  int64 // encoded size
	MaxPixels int64 // width x height
}

// DefaultLimits allow a 20 MiB file of up to 40 megapixels (a 7700 x 5200 photo).
var DefaultLimits = Limits{MaxBytes: 20 << 20, MaxPixels: 40_000_000}

// ErrImage marks every error about an input image, for callers that answer with a 4xx.
var ErrImage = errors.New("bad image")

var formats = map[string]bool{"png": true, "jpeg": true, "gif": true, "webp": true, "bmp": true}

// DecodeImage decodes a PNG, JPEG (applying its EXIF orientation), WebP, GIF (first frame) or BMP
// image into 8-bit RGB, with transparent pixels composited on white.
func DecodeImage(data []byte, limits Limits) (img *image.RGBA, err error) {
	if int64(len(data)) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes is over the limit of %d", ErrImage, len(data), limits.MaxBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: not a PNG, JPEG, WebP, GIF or BMP image: %v", ErrImage, err)
	}
	if !formats[format] {
		return nil, fmt.Errorf("%w: format %s is not accepted (PNG, JPEG, WebP, GIF, BMP)", ErrImage, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > limits.MaxPixels {
		return nil, fmt.Errorf("%w: %d x %d pixels is over the limit of %d", ErrImage, cfg.Width, cfg.Height, limits.MaxPixels)
	}
	defer func() { // the decoders return errors on bad data; this guards against one that panics
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("%w: decoding %s: %v", ErrImage, format, r)
		}
	}()
	decoded, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %v", ErrImage, format, err)
	}
	rgb := onWhite(decoded)
	if format == "jpeg" {
		rgb = orient(rgb, exifOrientation(data))
	}
	return rgb, nil
}

// onWhite converts to opaque RGB, compositing on white: c*a + 255*(1-a) per channel.
func onWhite(src image.Image) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			blend := func(v uint8) uint8 { return uint8((uint32(v)*uint32(c.A) + 255*(255-uint32(c.A)) + 127) / 255) }
			dst.SetRGBA(x-b.Min.X, y-b.Min.Y, color.RGBA{blend(c.R), blend(c.G), blend(c.B), 255})
		}
	}
	return dst
}

// exifOrientation reads the orientation tag (0x0112) of a JPEG's EXIF block; 1 when absent.
func exifOrientation(jpeg []byte) int {
	for i := 2; i+4 <= len(jpeg) && jpeg[i] == 0xFF; {
		marker := jpeg[i+1]
		size := int(binary.BigEndian.Uint16(jpeg[i+2:]))
		if marker == 0xDA || size < 2 || i+2+size > len(jpeg) { // start of scan: no EXIF before the pixels
			return 1
		}
		seg := jpeg[i+4 : i+2+size]
		if marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		i += 2 + size
	}
	return 1
}

func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for e := 0; e < n; e++ {
		off := ifd + 2 + 12*e
		if off+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[off:]) == 0x0112 && bo.Uint16(t[off+2:]) == 3 { // orientation, a SHORT
			if v := int(bo.Uint16(t[off+8:])); v >= 1 && v <= 8 {
				return v
			}
		}
	}
	return 1
}

// orient applies an EXIF orientation, so that the image is the right way up.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o <= 1 || o > 8 {
		return src
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 { // transposing orientations swap the sides
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2: // mirrored horizontally
				dx, dy = w-1-x, y
			case 3: // rotated 180
				dx, dy = w-1-x, h-1-y
			case 4: // mirrored vertically
				dx, dy = x, h-1-y
			case 5: // transposed
				dx, dy = y, x
			case 6: // stored rotated 90 counter-clockwise: rotate 90 clockwise
				dx, dy = h-1-y, x
			case 7: // transversed
				dx, dy = h-1-y, w-1-x
			case 8: // stored rotated 90 clockwise: rotate 90 counter-clockwise
				dx, dy = y, w-1-x
			}
			dst.SetRGBA(dx, dy, src.RGBAAt(x, y))
		}
	}
	return dst
}
