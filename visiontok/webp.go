package visiontok

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"

	"golang.org/x/image/webp"
)

// WebP as PIL 9.4 opens it: through libwebp's animation decoder, which asks for RGBA with
// libwebp's defaults. Lossless pixels are ARGB values, which Go's decoder gives as they are. Lossy
// pixels are VP8's Y, U and V planes (Go's decoder gives them as libwebp does: VP8 decoding is
// exact by its specification), turned into RGB by libwebp's "fancy" upsampler (each chroma sample
// spread over its 2x2 luma block with 9-3-3-1 weights, edges mirrored) and its 14-bit fixed-point
// YUV -> RGB (dsp/upsampling.c and dsp/yuv.h), both written again below. The mode is "RGBA" when
// libwebp's WebPGetFeatures says the file has alpha, else "RGB".

type webpInfo struct {
	width, height int
	lossless      bool
	hasAlpha      bool
	exif          []byte
}

func readWebPInfo(data []byte) (webpInfo, error) {
	var info webpInfo
	if len(data) < 12 {
		return info, errors.New("the file ends inside its header")
	}
	p := 12
	var vp8x []byte
	for p+8 <= len(data) {
		kind := string(data[p : p+4])
		n := int64(binary.LittleEndian.Uint32(data[p+4:]))
		if n > int64(len(data)-p-8) {
			return info, fmt.Errorf("chunk %q of %d bytes runs past the end of the file", kind, n)
		}
		body := data[p+8 : p+8+int(n)]
		switch kind {
		case "VP8X":
			if len(body) < 10 {
				return info, errors.New("a VP8X chunk shorter than 10 bytes")
			}
			vp8x = body
			if body[0]&0x02 != 0 {
				return info, errors.New("an animated WebP is not accepted: send one frame as a still image")
			}
			info.hasAlpha = body[0]&0x10 != 0
		case "ALPH":
			info.hasAlpha = true
		case "EXIF":
			info.exif = body
		case "VP8 ":
			if len(body) < 10 || body[3] != 0x9d || body[4] != 0x01 || body[5] != 0x2a {
				return info, errors.New("a VP8 chunk without its frame header")
			}
			info.width, info.height = int(binary.LittleEndian.Uint16(body[6:])&0x3fff), int(binary.LittleEndian.Uint16(body[8:])&0x3fff)
		case "VP8L":
			if len(body) < 5 || body[0] != 0x2f {
				return info, errors.New("a VP8L chunk without its header")
			}
			bits := binary.LittleEndian.Uint32(body[1:])
			info.lossless = true
			info.width, info.height = int(bits&0x3fff)+1, int(bits>>14&0x3fff)+1
			info.hasAlpha = bits>>28&1 != 0 // libwebp takes VP8L's own flag, over VP8X's
		}
		p += 8 + int(n) + int(n&1) // chunks are padded to even sizes
	}
	if info.width == 0 {
		return info, errors.New("no VP8 or VP8L image")
	}
	if vp8x != nil {
		cw := int(uint32(vp8x[4])|uint32(vp8x[5])<<8|uint32(vp8x[6])<<16) + 1
		ch := int(uint32(vp8x[7])|uint32(vp8x[8])<<8|uint32(vp8x[9])<<16) + 1
		if cw != info.width || ch != info.height {
			return info, fmt.Errorf("the canvas is %d x %d, its image %d x %d", cw, ch, info.width, info.height)
		}
	}
	return info, nil
}

func readWebP(data []byte) (header, func() (*Picture, error), error) {
	info, err := readWebPInfo(data)
	if err != nil {
		return header{}, nil, err
	}
	px := int64(info.width) * int64(info.height)
	cost := px * (3 + 4) // Go's planes (and alpha), the Picture
	if info.lossless {
		cost = px * (4 + 4 + 4) // Go's ARGB, its NRGBA, the Picture
	}
	orientation := tiffOrientation(bytes.TrimPrefix(info.exif, []byte("Exif\x00\x00")))
	return header{width: info.width, height: info.height, cost: cost, orientation: orientation}, func() (*Picture, error) {
		img, err := webp.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		mode := ModeRGB
		if info.hasAlpha {
			mode = ModeRGBA
		}
		switch m := img.(type) {
		case *image.NRGBA:
			return nrgbaPicture(m, mode), nil
		case *image.YCbCr:
			return fancyUpsample(m, nil, 0, mode)
		case *image.NYCbCrA:
			return fancyUpsample(&m.YCbCr, m.A, m.AStride, mode)
		}
		return nil, fmt.Errorf("unexpected decoded type %T", img)
	}, nil
}

func nrgbaPicture(m *image.NRGBA, mode Mode) *Picture {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	pic := newPicture(mode, w, h)
	ch := mode.channels()
	for y := range h {
		row := m.Pix[y*m.Stride:]
		for x := range w {
			copy(pic.Pix[(y*w+x)*ch:(y*w+x+1)*ch], row[4*x:4*x+ch])
		}
	}
	return pic
}

// libwebp's YUV -> RGB (dsp/yuv.h): 14-bit fixed point, as its SSE2 code computes it.
func mulHi(v, coeff int) int { return (v * coeff) >> 8 }

func yuvClip8(v int) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func yuvToRGB(y, u, v uint8) (r, g, b uint8) {
	yy, uu, vv := mulHi(int(y), 19077), int(u), int(v)
	return yuvClip8(yy + mulHi(vv, 26149) - 14234),
		yuvClip8(yy - mulHi(uu, 6419) - mulHi(vv, 13320) + 8708),
		yuvClip8(yy + mulHi(uu, 33050) - 17685)
}

// fancyUpsample is libwebp's EmitFancyRGB over the whole picture: row 0 from chroma row 0 alone,
// then pairs of rows between two chroma rows, and for an even height the last row from the last
// chroma row alone.
func fancyUpsample(m *image.YCbCr, alpha []uint8, astride int, mode Mode) (*Picture, error) {
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return nil, fmt.Errorf("unexpected chroma subsampling %v", m.SubsampleRatio)
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	pic := newPicture(mode, w, h)
	ch := mode.channels()
	yRow := func(r int) []uint8 { return m.Y[r*m.YStride : r*m.YStride+w] }
	cRow := func(plane []uint8, r int) []uint8 { return plane[r*m.CStride : r*m.CStride+(w+1)/2] }
	emit := func(row int, luma []uint8, u, v []uint8) {
		out := pic.Pix[row*w*ch : (row+1)*w*ch]
		for x := range w {
			r, g, b := yuvToRGB(luma[x], u[x], v[x])
			out[x*ch], out[x*ch+1], out[x*ch+2] = r, g, b
			if ch == 4 {
				out[x*ch+3] = 255
				if alpha != nil {
					out[x*ch+3] = alpha[row*astride+x]
				}
			}
		}
	}
	u0, v0 := make([]uint8, w), make([]uint8, w) // the upsampled chroma of the top row of a pair
	u1, v1 := make([]uint8, w), make([]uint8, w) // and of the bottom row
	upsample(cRow(m.Cb, 0), cRow(m.Cb, 0), u0, nil, w)
	upsample(cRow(m.Cr, 0), cRow(m.Cr, 0), v0, nil, w)
	emit(0, yRow(0), u0, v0)
	last := (h+1)/2 - 1
	for r := 1; r < h; r += 2 {
		top, cur := (r-1)/2, min((r+1)/2, last)
		if r+1 < h {
			upsample(cRow(m.Cb, top), cRow(m.Cb, cur), u0, u1, w)
			upsample(cRow(m.Cr, top), cRow(m.Cr, cur), v0, v1, w)
			emit(r, yRow(r), u0, v0)
			emit(r+1, yRow(r+1), u1, v1)
		} else { // the last row of an even height: its chroma row mirrored
			upsample(cRow(m.Cb, cur), cRow(m.Cb, cur), u0, nil, w)
			upsample(cRow(m.Cr, cur), cRow(m.Cr, cur), v0, nil, w)
			emit(r, yRow(r), u0, v0)
		}
	}
	return pic, nil
}

// upsample is one chroma plane of libwebp's UpsampleRgbLinePair: the chroma of the luma rows
// between chroma rows top and cur, len pixels wide; the bottom row is skipped when bottom is nil.
func upsample(top, cur []uint8, topOut, bottomOut []uint8, n int) {
	tl, l := int(top[0]), int(cur[0])
	topOut[0] = uint8((3*tl + l + 2) >> 2)
	if bottomOut != nil {
		bottomOut[0] = uint8((3*l + tl + 2) >> 2)
	}
	for x := 1; x <= (n-1)>>1; x++ {
		t, c := int(top[x]), int(cur[x])
		avg := tl + t + l + c + 8
		diag12 := (avg + 2*(t+l)) >> 3
		diag03 := (avg + 2*(tl+c)) >> 3
		topOut[2*x-1] = uint8((diag12 + tl) >> 1)
		topOut[2*x] = uint8((diag03 + t) >> 1)
		if bottomOut != nil {
			bottomOut[2*x-1] = uint8((diag03 + l) >> 1)
			bottomOut[2*x] = uint8((diag12 + c) >> 1)
		}
		tl, l = t, c
	}
	if n&1 == 0 {
		topOut[n-1] = uint8((3*tl + l + 2) >> 2)
		if bottomOut != nil {
			bottomOut[n-1] = uint8((3*l + tl + 2) >> 2)
		}
	}
}
