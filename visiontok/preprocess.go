package visiontok

import (
	"image"
	"math"
)

// Preprocess is TokLIP's eval transform, as torchvision runs it on a PIL image: resize the
// shorter side to size with PIL's antialiased bicubic filter, center-crop size x size, scale to
// [-1, 1]. It returns the pixels as planes (channel, then row, then column), ggml's [W, H, 3].
func Preprocess(img *image.RGBA, size int) []float32 {
	crop := ResizeCrop(img, size)
	out := make([]float32, 3*size*size)
	for c := range 3 {
		for y := range size {
			for x := range size {
				v := float32(crop.Pix[y*crop.Stride+4*x+c]) / 255 // ToTensor, in float32 as torch does
				out[(c*size+y)*size+x] = (v - 0.5) / 0.5          // Normalize(mean 0.5, std 0.5)
			}
		}
	}
	return out
}

// ResizeCrop is torchvision's Resize(size, BICUBIC) then CenterCrop(size) on a PIL image.
func ResizeCrop(img *image.RGBA, size int) *image.RGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	short, long := w, h
	if w > h {
		short, long = h, w
	}
	// torchvision: the longer side is int(size * long / short), truncated.
	newShort, newLong := size, int(float64(size)*float64(long)/float64(short))
	nw, nh := newShort, newLong
	if w > h {
		nw, nh = newLong, newShort
	}
	resized := img
	if nw != w || nh != h {
		resized = resizeBicubic(img, nw, nh)
	}
	// CenterCrop rounds the offsets with Python's round (half to even).
	top := int(math.RoundToEven(float64(nh-size) / 2))
	left := int(math.RoundToEven(float64(nw-size) / 2))
	return resized.SubImage(image.Rect(left, top, left+size, top+size)).(*image.RGBA)
}

// PIL's resampling in 8-bit mode: coefficients in fixed point with 22 fractional bits, a
// horizontal pass into an 8-bit image, then a vertical pass (Resample.c).
const precisionBits = 32 - 8 - 2

// bicubic is PIL's cubic convolution kernel with a = -0.5.
func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// taps are the filter taps of each output pixel along one axis: the first input index, the
// count, and the fixed-point weights.
type taps struct {
	first, count []int
	weights      [][]int32
}

func precompute(in, out int) taps {
	scale := float64(in) / float64(out)
	filterScale := max(scale, 1) // when shrinking the filter widens: this is the antialiasing
	support := 2 * filterScale
	ss := 1 / filterScale
	t := taps{first: make([]int, out), count: make([]int, out), weights: make([][]int32, out)}
	for o := range out {
		center := (float64(o) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float64, hi-lo)
		total := 0.0
		for i := range w {
			w[i] = bicubic((float64(i+lo) - center + 0.5) * ss)
			total += w[i]
		}
		fixed := make([]int32, len(w))
		for i := range w {
			if total != 0 {
				w[i] /= total
			}
			if w[i] < 0 {
				fixed[i] = int32(w[i]*(1<<precisionBits) - 0.5)
			} else {
				fixed[i] = int32(w[i]*(1<<precisionBits) + 0.5)
			}
		}
		t.first[o], t.count[o], t.weights[o] = lo, len(w), fixed
	}
	return t
}

func clip8(v int32) uint8 {
	if v >= 255<<precisionBits {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v >> precisionBits)
}

// resizeBicubic resizes an RGB image to w x h as PIL's Image.resize(BICUBIC) does.
func resizeBicubic(src *image.RGBA, w, h int) *image.RGBA {
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	cur := src
	if w != sw {
		t := precompute(sw, w)
		dst := image.NewRGBA(image.Rect(0, 0, w, sh))
		for y := range sh {
			row := cur.Pix[y*cur.Stride:]
			for x := range w {
				for c := range 3 {
					acc := int32(1 << (precisionBits - 1))
					for i, k := range t.weights[x] {
						acc += int32(row[4*(t.first[x]+i)+c]) * k
					}
					dst.Pix[y*dst.Stride+4*x+c] = clip8(acc)
				}
				dst.Pix[y*dst.Stride+4*x+3] = 255
			}
		}
		cur = dst
	}
	if h != sh {
		t := precompute(sh, h)
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				for c := range 3 {
					acc := int32(1 << (precisionBits - 1))
					for i, k := range t.weights[y] {
						acc += int32(cur.Pix[(t.first[y]+i)*cur.Stride+4*x+c]) * k
					}
					dst.Pix[y*dst.Stride+4*x+c] = clip8(acc)
				}
				dst.Pix[y*dst.Stride+4*x+3] = 255
			}
		}
		cur = dst
	}
	return cur
}
