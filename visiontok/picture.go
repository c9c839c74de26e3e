package visiontok

import (
	"fmt"
	"image"
)

// Mode is how PIL holds a decoded image. TokLIP's transform resizes the image in this mode and
// converts it to RGB only after the resize and crop (open_clip's _convert_to_rgb comes last), so
// the mode decides the result: palette and bilevel images are resized by nearest neighbour, RGBA
// premultiplied (transparent areas come out black), 16-bit gray in integers clipped to 8 bits.
type Mode uint8

const (
	ModeRGB  Mode = iota // 8-bit RGB
	ModeRGBA             // 8-bit RGB with straight alpha
	ModeL                // 8-bit gray
	ModeLA               // 8-bit gray with alpha
	Mode1                // bilevel, stored as 0 or 255
	ModeP                // palette indices
	ModeI                // 32-bit integers (PIL's mode for 16-bit gray PNGs)
	ModeCMYK             // CMYK after PIL's inversion of Adobe JPEGs
)

var modeNames = [...]string{"RGB", "RGBA", "L", "LA", "1", "P", "I", "CMYK"}

// String is PIL's name of the mode.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// channels is the bytes per pixel of Pix (mode I keeps its values in Ints).
func (m Mode) channels() int {
	switch m {
	case ModeRGB:
		return 3
	case ModeRGBA, ModeCMYK:
		return 4
	case ModeLA:
		return 2
	case ModeI:
		return 0
	}
	return 1
}

// Picture is a decoded image as PIL holds it: its mode, and its pixels in that mode.
type Picture struct {
	Mode          Mode
	Width, Height int
	Pix           []uint8 // Mode.channels() bytes a pixel, rows packed; nil for mode I
	Ints          []int32 // mode I only
	// Palette is mode P's colours. Entries a file does not define are PIL's initial grey ramp
	// (i, i, i), which is what PIL shows for an index past the file's palette.
	Palette *[256][3]uint8
}

func newPicture(mode Mode, w, h int) *Picture {
	p := &Picture{Mode: mode, Width: w, Height: h}
	if mode == ModeI {
		p.Ints = make([]int32, w*h)
	} else {
		p.Pix = make([]uint8, w*h*mode.channels())
	}
	return p
}

// greyRamp is PIL's palette before a file's entries are written over it.
func greyRamp() *[256][3]uint8 {
	var pal [256][3]uint8
	for i := range pal {
		pal[i] = [3]uint8{uint8(i), uint8(i), uint8(i)}
	}
	return &pal
}

// resizedSize is torchvision's Resize(size) for an int size: the shorter side becomes size, the
// longer int(size * long / short), truncated (Python's true division, then int()).
func resizedSize(w, h, size int) (nw, nh int) {
	if w <= h {
		return size, int(float64(size) * float64(h) / float64(w))
	}
	return int(float64(size) * float64(w) / float64(h)), size
}

// roundHalfEven is Python's round() of n/2, which CenterCrop uses for its offsets.
func roundHalfEven(n int) int {
	q := n / 2
	if n%2 != 0 && q%2 != 0 {
		q++
	}
	return q
}

// Crop is TokLIP's eval transform up to the 8-bit image the model's input is made from:
// torchvision's Resize(size, BICUBIC) on the image in its PIL mode, CenterCrop(size), then
// convert("RGB"). It computes only the pixels inside the crop, so that an extreme aspect ratio
// costs nothing more than its crop (PIL would allocate the whole resized image); each of those
// pixels is computed exactly as PIL computes it.
func (p *Picture) Crop(size int) *image.RGBA {
	nw, nh := resizedSize(p.Width, p.Height, size)
	// CenterCrop: int(round((new - size) / 2.0)), round half to even.
	win := cropWindow{left: roundHalfEven(nw - size), top: roundHalfEven(nh - size), size: size}
	var crop *Picture
	switch {
	case nw == p.Width && nh == p.Height: // PIL returns a copy: nothing is resampled
		crop = p.window(win)
	case p.Mode == Mode1 || p.Mode == ModeP: // PIL resizes these by nearest neighbour, whatever is asked
		crop = p.nearest(nw, nh, win)
	case p.Mode == ModeI:
		crop = p.resampleInts(nw, nh, win)
	case p.Mode == ModeRGBA || p.Mode == ModeLA:
		// PIL resizes RGBA as premultiplied RGBa (LA as La) and converts back after.
		crop = p.resample8(nw, nh, win, true)
		crop.unpremultiply()
	default:
		crop = p.resample8(nw, nh, win, false)
	}
	return crop.RGB()
}

// cropWindow is the crop's place in the resized image.
type cropWindow struct{ left, top, size int }

// window copies the crop out of a picture that needs no resize.
func (p *Picture) window(win cropWindow) *Picture {
	out := newPicture(p.Mode, win.size, win.size)
	out.Palette = p.Palette
	ch := p.Mode.channels()
	for y := range win.size {
		if p.Mode == ModeI {
			copy(out.Ints[y*win.size:(y+1)*win.size], p.Ints[(win.top+y)*p.Width+win.left:])
			continue
		}
		copy(out.Pix[y*win.size*ch:(y+1)*win.size*ch], p.Pix[((win.top+y)*p.Width+win.left)*ch:])
	}
	return out
}

// RGB is PIL's convert("RGB") of every mode (Convert.c), into an opaque *image.RGBA.
func (p *Picture) RGB() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, p.Width, p.Height))
	n := p.Width * p.Height
	ch := p.Mode.channels()
	for i := range n {
		var r, g, b uint8
		switch p.Mode {
		case ModeRGB, ModeRGBA: // rgba2rgb drops alpha
			r, g, b = p.Pix[i*ch], p.Pix[i*ch+1], p.Pix[i*ch+2]
		case ModeL, ModeLA: // l2rgb, la2rgb
			r = p.Pix[i*ch]
			g, b = r, r
		case Mode1: // bit2rgb
			if p.Pix[i] != 0 {
				r, g, b = 255, 255, 255
			}
		case ModeP: // p2rgb
			c := p.Palette[p.Pix[i]]
			r, g, b = c[0], c[1], c[2]
		case ModeI: // i2rgb clips
			r = uint8(min(max(p.Ints[i], 0), 255))
			g, b = r, r
		case ModeCMYK: // cmyk2rgb: nk - c * nk / 255, each channel
			px := p.Pix[i*4 : i*4+4]
			nk := 255 - int(px[3])
			f := func(v uint8) uint8 { return clip8int(nk - mulDiv255(int(v), nk)) }
			r, g, b = f(px[0]), f(px[1]), f(px[2])
		}
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = r, g, b, 255
	}
	return out
}

// mulDiv255 is PIL's MULDIV255: a * b / 255, rounded, in integers.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clip8int(v int) uint8 {
	return uint8(min(max(v, 0), 255))
}

// premultiplyRow is PIL's RGBA -> RGBa (rgbA2rgba) and LA -> La (lA2la) on one row.
func premultiplyRow(dst, src []uint8, ch int) {
	for i := 0; i+ch <= len(src); i += ch {
		a := int(src[i+ch-1])
		for c := 0; c < ch-1; c++ {
			dst[i+c] = uint8(mulDiv255(int(src[i+c]), a))
		}
		dst[i+ch-1] = src[i+ch-1]
	}
}

// unpremultiply is PIL's RGBa -> RGBA (rgba2rgbA) and La -> LA (la2lA): alpha 0 and 255 keep the
// colour as it is (so a transparent pixel stays black), others divide with truncation.
func (p *Picture) unpremultiply() {
	ch := p.Mode.channels()
	for i := 0; i < len(p.Pix); i += ch {
		a := int(p.Pix[i+ch-1])
		if a == 0 || a == 255 {
			continue
		}
		for c := 0; c < ch-1; c++ {
			p.Pix[i+c] = clip8int(255 * int(p.Pix[i+c]) / a)
		}
	}
}

// transpose applies an EXIF orientation (2-8) as ImageOps.exif_transpose does: pixels move,
// nothing is resampled.
func (p *Picture) transpose(orientation int) *Picture {
	if orientation < 2 || orientation > 8 {
		return p
	}
	w, h := p.Width, p.Height
	dw, dh := w, h
	if orientation >= 5 { // the transposing orientations swap the sides
		dw, dh = h, w
	}
	out := newPicture(p.Mode, dw, dh)
	out.Palette = p.Palette
	ch := p.Mode.channels()
	for y := range h {
		for x := range w {
			var dx, dy int
			switch orientation {
			case 2: // mirrored: FLIP_LEFT_RIGHT
				dx, dy = w-1-x, y
			case 3: // ROTATE_180
				dx, dy = w-1-x, h-1-y
			case 4: // FLIP_TOP_BOTTOM
				dx, dy = x, h-1-y
			case 5: // TRANSPOSE
				dx, dy = y, x
			case 6: // stored turned left: ROTATE_270 (clockwise)
				dx, dy = h-1-y, x
			case 7: // TRANSVERSE
				dx, dy = h-1-y, w-1-x
			case 8: // stored turned right: ROTATE_90 (counter-clockwise)
				dx, dy = y, w-1-x
			}
			if p.Mode == ModeI {
				out.Ints[dy*dw+dx] = p.Ints[y*w+x]
				continue
			}
			copy(out.Pix[(dy*dw+dx)*ch:(dy*dw+dx+1)*ch], p.Pix[(y*w+x)*ch:])
		}
	}
	return out
}
