package visiontok

import "math"

// PIL's resampling (libImaging/Resample.c, Pillow 9.4): separable, a horizontal pass then a
// vertical one, each output pixel a weighted sum of the input pixels under the filter. In 8-bit
// modes the weights are fixed point with 22 fractional bits and the horizontal pass is rounded to
// 8 bits before the vertical one; in mode I they stay float64 and each pass rounds to an integer.
// Every output pixel depends only on its own taps, so computing the crop's pixels alone gives
// what PIL gives for them.

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

// taps are the filter taps of n consecutive output pixels along one axis: each one's first input
// index, and its normalized weights (float64, and PIL's 8-bit fixed point).
type taps struct {
	first  []int
	weight [][]float64
	fixed  [][]int32
}

// precompute is PIL's precompute_coeffs for outputs from..from+n of an in -> out resize.
func precompute(in, out, from, n int) taps {
	scale := float64(in) / float64(out)
	filterScale := max(scale, 1) // shrinking widens the filter: the antialiasing
	support := 2 * filterScale
	ss := 1 / filterScale
	t := taps{first: make([]int, n), weight: make([][]float64, n), fixed: make([][]int32, n)}
	for i := range n {
		center := (float64(from+i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float64, max(hi-lo, 0))
		total := 0.0
		for k := range w {
			w[k] = bicubic((float64(k+lo) - center + 0.5) * ss)
			total += w[k]
		}
		fixed := make([]int32, len(w))
		for k := range w {
			if total != 0 {
				w[k] /= total
			}
			if w[k] < 0 { // normalize_coeffs_8bpc: (int)(-0.5 + w * 2^22)
				fixed[k] = int32(-0.5 + w[k]*(1<<precisionBits))
			} else {
				fixed[k] = int32(0.5 + w[k]*(1<<precisionBits))
			}
		}
		t.first[i], t.weight[i], t.fixed[i] = lo, w, fixed
	}
	return t
}

// rows is the span of input rows the taps read.
func (t taps) rows() (lo, hi int) {
	lo, hi = math.MaxInt, 0
	for i, f := range t.first {
		lo, hi = min(lo, f), max(hi, f+len(t.weight[i]))
	}
	return lo, max(hi, lo)
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

// passes plans a resize to nw x nh for the crop window: whether each pass runs (PIL skips a pass
// whose size does not change), their taps, and the input rows the vertical pass reads (the taps
// of the crop's rows, or the crop's rows themselves).
func (p *Picture) passes(nw, nh int, win cropWindow) (needV, needH bool, vt, ht taps, rowLo, rowHi int) {
	needV, needH = nh != p.Height, nw != p.Width
	rowLo, rowHi = win.top, win.top+win.size
	if needV {
		vt = precompute(p.Height, nh, win.top, win.size)
		rowLo, rowHi = vt.rows()
	}
	if needH {
		ht = precompute(p.Width, nw, win.left, win.size)
	}
	return needV, needH, vt, ht, rowLo, rowHi
}

// resample8 resizes an 8-bit picture to nw x nh and returns the crop window; premultiply
// converts RGBA (LA) rows to RGBa (La) as they are read, as PIL's resize does for those modes.
func (p *Picture) resample8(nw, nh int, win cropWindow, premultiply bool) *Picture {
	ch := p.Mode.channels()
	size := win.size
	needV, needH, vt, ht, rowLo, rowHi := p.passes(nw, nh, win)
	// Horizontal pass over the rows needed, into size columns of 8 bits.
	tmp := make([]uint8, (rowHi-rowLo)*size*ch)
	row := make([]uint8, p.Width*ch)
	for y := rowLo; y < rowHi; y++ {
		src := p.Pix[y*p.Width*ch : (y+1)*p.Width*ch]
		if premultiply {
			premultiplyRow(row, src, ch)
			src = row
		}
		dst := tmp[(y-rowLo)*size*ch : (y-rowLo+1)*size*ch]
		if !needH {
			copy(dst, src[win.left*ch:(win.left+size)*ch])
			continue
		}
		for x := range size {
			first, k := ht.first[x], ht.fixed[x]
			for c := range ch {
				acc := int32(1 << (precisionBits - 1))
				for i, w := range k {
					acc += int32(src[(first+i)*ch+c]) * w
				}
				dst[x*ch+c] = clip8(acc)
			}
		}
	}
	out := newPicture(p.Mode, size, size)
	out.Palette = p.Palette
	if !needV {
		copy(out.Pix, tmp)
		return out
	}
	stride := size * ch
	for y := range size {
		first, k := vt.first[y]-rowLo, vt.fixed[y]
		for x := range stride {
			acc := int32(1 << (precisionBits - 1))
			for i, w := range k {
				acc += int32(tmp[(first+i)*stride+x]) * w
			}
			out.Pix[y*stride+x] = clip8(acc)
		}
	}
	return out
}

// roundUp is Resample.c's ROUND_UP for the 32-bit passes: add or subtract a half, truncate.
func roundUp(f float64) int32 {
	if f >= 0 {
		return int32(f + 0.5)
	}
	return int32(f - 0.5)
}

// resampleInts is resample8 for mode I: float64 weights, each pass rounded to an integer.
func (p *Picture) resampleInts(nw, nh int, win cropWindow) *Picture {
	size := win.size
	needV, needH, vt, ht, rowLo, rowHi := p.passes(nw, nh, win)
	tmp := make([]int32, (rowHi-rowLo)*size)
	for y := rowLo; y < rowHi; y++ {
		src := p.Ints[y*p.Width : (y+1)*p.Width]
		dst := tmp[(y-rowLo)*size : (y-rowLo+1)*size]
		if !needH {
			copy(dst, src[win.left:win.left+size])
			continue
		}
		for x := range size {
			ss := 0.0
			for i, w := range ht.weight[x] {
				ss += float64(src[ht.first[x]+i]) * w
			}
			dst[x] = roundUp(ss)
		}
	}
	out := newPicture(ModeI, size, size)
	if !needV {
		copy(out.Ints, tmp)
		return out
	}
	for y := range size {
		first := vt.first[y] - rowLo
		for x := range size {
			ss := 0.0
			for i, w := range vt.weight[y] {
				ss += float64(tmp[(first+i)*size+x]) * w
			}
			out.Ints[y*size+x] = roundUp(ss)
		}
	}
	return out
}

// nearest is PIL's nearest-neighbour resize (ImagingScaleAffine, which Image.resize uses for
// modes 1 and P): the source position starts at half a step and grows by the step, summed in
// float64 one pixel at a time, so the sum is replayed from the first pixel rather than
// multiplied out (the two can round differently).
func (p *Picture) nearest(nw, nh int, win cropWindow) *Picture {
	xs := nearestIndex(p.Width, nw, win.left, win.size)
	ys := nearestIndex(p.Height, nh, win.top, win.size)
	out := newPicture(p.Mode, win.size, win.size)
	out.Palette = p.Palette
	for y, sy := range ys {
		if sy < 0 {
			continue // outside the source: PIL's fill leaves 0
		}
		for x, sx := range xs {
			if sx >= 0 {
				out.Pix[y*win.size+x] = p.Pix[sy*p.Width+sx]
			}
		}
	}
	return out
}

// nearestIndex gives the source index of outputs from..from+n of an in -> out nearest resize,
// -1 where it falls outside the source.
func nearestIndex(in, out, from, n int) []int {
	step := float64(in) / float64(out)
	pos := step * 0.5
	idx := make([]int, n)
	for o := range from + n {
		if o >= from {
			i := -1 // COORD: negative positions are outside
			if pos >= 0 {
				i = int(pos)
			}
			if i >= in {
				i = -1
			}
			idx[o-from] = i
		}
		pos += step
	}
	return idx
}
