package visiontok

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BMP as PIL 9.4 reads it (BmpImagePlugin), uncompressed and bit-field files: 1, 4 and 8 bits
// through a palette ("P"; "1" for a black and white pair, "L" when the palette is the grey ramp),
// 16 bits as 5-5-5 or 5-6-5, 24 bits, and 32 bits ("RGB" with the fourth byte ignored, or "RGBA"
// when bit fields name an alpha byte). Run-length compressed files are refused.

type bmpInfo struct {
	width, height int
	bits          int
	topDown       bool
	compression   uint32
	masks         [4]uint32 // r, g, b, a
	palette       []byte
	palettePad    int
	offset        int
	colors        int
}

const (
	bmpRGB       = 0
	bmpBitfields = 3
)

func readBMPInfo(data []byte) (bmpInfo, error) {
	var info bmpInfo
	if len(data) < 18 {
		return info, errors.New("the file ends inside its header")
	}
	info.offset = int(binary.LittleEndian.Uint32(data[10:]))
	size := int(binary.LittleEndian.Uint32(data[14:]))
	if size < 12 || 14+size > len(data) {
		return info, fmt.Errorf("a header of %d bytes does not fit the file", size)
	}
	h := data[18 : 14+size]
	p := 14 + size
	switch size {
	case 12: // OS/2 v1
		info.width, info.height = int(binary.LittleEndian.Uint16(h)), int(binary.LittleEndian.Uint16(h[2:]))
		info.bits = int(binary.LittleEndian.Uint16(h[6:]))
		info.palettePad = 3
	case 40, 64, 108, 124:
		info.width = int(int32(binary.LittleEndian.Uint32(h)))
		height := int32(binary.LittleEndian.Uint32(h[4:]))
		info.topDown = height < 0
		info.height = int(height)
		if info.topDown {
			info.height = -int(height)
		}
		info.bits = int(binary.LittleEndian.Uint16(h[10:]))
		info.compression = binary.LittleEndian.Uint32(h[12:])
		info.colors = int(binary.LittleEndian.Uint32(h[28:]))
		info.palettePad = 4
		if info.compression == bmpBitfields {
			if size >= 52 {
				for i := range 4 {
					info.masks[i] = binary.LittleEndian.Uint32(h[36+4*i:])
				}
			} else { // a 40-byte header: three masks follow it, and no alpha
				if p+12 > len(data) {
					return info, errors.New("the file ends inside its bit fields")
				}
				for i := range 3 {
					info.masks[i] = binary.LittleEndian.Uint32(data[p+4*i:])
				}
				p += 12
			}
		}
	default:
		return info, fmt.Errorf("a header of %d bytes is not a BMP header PIL reads", size)
	}
	if info.width <= 0 || info.height <= 0 {
		return info, fmt.Errorf("%d x %d pixels", info.width, info.height)
	}
	switch info.compression {
	case bmpRGB, bmpBitfields:
	case 1, 2:
		return info, errors.New("a run-length compressed BMP is not accepted")
	default:
		return info, fmt.Errorf("BMP compression %d is not accepted", info.compression)
	}
	if info.bits <= 8 {
		if info.colors == 0 {
			info.colors = 1 << info.bits
		}
		if info.colors > 256 {
			return info, fmt.Errorf("a palette of %d colours", info.colors)
		}
		n := info.colors * info.palettePad
		if p+n > len(data) {
			return info, errors.New("the file ends inside its palette")
		}
		info.palette = data[p : p+n]
		if info.offset == 14+size { // an offset that forgot the palette, which PIL forgives
			info.offset += 4 * info.colors
		}
	}
	return info, nil
}

// bmpMode is PIL's mode and, for bit fields, where each channel's byte sits in a 32-bit pixel.
func (info bmpInfo) mode() (Mode, [4]int, error) {
	order := [4]int{2, 1, 0, -1} // BGRX
	switch info.bits {
	case 1, 4, 8:
		grey := true
		for i := range info.colors {
			v := byte(i)
			if info.colors == 2 {
				v = byte(255 * i)
			}
			e := info.palette[i*info.palettePad:]
			if e[0] != v || e[1] != v || e[2] != v {
				grey = false
			}
		}
		switch {
		case !grey:
			return ModeP, order, nil
		case info.colors == 2:
			return Mode1, order, nil
		case info.bits == 8:
			return ModeL, order, nil
		}
		return 0, order, errors.New("a grey palette below 8 bits, which PIL misreads")
	case 16:
		if info.compression == bmpBitfields && [3]uint32(info.masks[:3]) != [3]uint32{0xF800, 0x7E0, 0x1F} && [3]uint32(info.masks[:3]) != [3]uint32{0x7C00, 0x3E0, 0x1F} {
			return 0, order, errors.New("16-bit bit fields other than 5-5-5 and 5-6-5")
		}
		return ModeRGB, order, nil
	case 24:
		if info.compression == bmpBitfields && [3]uint32(info.masks[:3]) != [3]uint32{0xFF0000, 0xFF00, 0xFF} {
			return 0, order, errors.New("24-bit bit fields other than BGR")
		}
		return ModeRGB, order, nil
	case 32:
		if info.compression != bmpBitfields {
			return ModeRGB, order, nil
		}
		// PIL's table of supported masks: each channel one whole byte.
		switch info.masks {
		case [4]uint32{0xFF0000, 0xFF00, 0xFF, 0}, [4]uint32{0xFF000000, 0xFF0000, 0xFF00, 0},
			[4]uint32{0xFF000000, 0xFF0000, 0xFF00, 0xFF}, [4]uint32{0xFF, 0xFF00, 0xFF0000, 0xFF000000},
			[4]uint32{0xFF0000, 0xFF00, 0xFF, 0xFF000000}:
		case [4]uint32{}:
			return ModeRGBA, [4]int{2, 1, 0, 3}, nil // BGRA
		default:
			return 0, order, errors.New("32-bit bit fields PIL does not read")
		}
		for c, m := range info.masks {
			order[c] = -1
			for b := range 4 {
				if m == 0xFF<<(8*b) {
					order[c] = b
				}
			}
		}
		if order[3] >= 0 {
			return ModeRGBA, order, nil
		}
		return ModeRGB, order, nil
	}
	return 0, order, fmt.Errorf("%d bits a pixel is not a BMP depth PIL reads", info.bits)
}

func readBMP(data []byte) (header, func() (*Picture, error), error) {
	info, err := readBMPInfo(data)
	if err != nil {
		return header{}, nil, err
	}
	mode, order, err := info.mode()
	if err != nil {
		return header{}, nil, err
	}
	w, h := info.width, info.height
	stride := int64(((w*info.bits + 31) >> 3) &^ 3)
	if int64(info.offset)+stride*int64(h) > int64(len(data)) || info.offset < 0 {
		return header{}, nil, fmt.Errorf("the file holds %d bytes, its %d x %d pixels need %d", len(data), w, h, int64(info.offset)+stride*int64(h))
	}
	hdr := header{width: w, height: h, cost: int64(w) * int64(h) * int64(max(mode.channels(), 1))}
	return hdr, func() (*Picture, error) {
		pic := newPicture(mode, w, h)
		ch := mode.channels()
		if mode == ModeP {
			pic.Palette = greyRamp()
			for i := range info.colors {
				e := info.palette[i*info.palettePad:]
				pic.Palette[i] = [3]uint8{e[2], e[1], e[0]}
			}
		}
		for y := range h {
			src := data[info.offset+int(stride)*y:]
			dy := h - 1 - y // bottom-up, unless the height was negative
			if info.topDown {
				dy = y
			}
			dst := pic.Pix[dy*w*ch : (dy+1)*w*ch]
			for x := range w {
				switch info.bits {
				case 1, 4, 8:
					per := 8 / info.bits
					b := src[x/per]
					v := b >> (8 - info.bits*(x%per+1)) & (1<<info.bits - 1)
					if mode == Mode1 && v != 0 {
						v = 255
					}
					dst[x] = v
				case 16:
					px := int(binary.LittleEndian.Uint16(src[2*x:]))
					if info.compression == bmpBitfields && info.masks[1] == 0x7E0 { // BGR;16, 5-6-5
						dst[3*x], dst[3*x+1], dst[3*x+2] = uint8((px>>11&31)*255/31), uint8((px>>5&63)*255/63), uint8((px&31)*255/31)
					} else { // BGR;15
						dst[3*x], dst[3*x+1], dst[3*x+2] = uint8((px>>10&31)*255/31), uint8((px>>5&31)*255/31), uint8((px&31)*255/31)
					}
				case 24:
					dst[3*x], dst[3*x+1], dst[3*x+2] = src[3*x+2], src[3*x+1], src[3*x]
				case 32:
					for c := range ch {
						dst[ch*x+c] = src[4*x+order[c]]
					}
				}
			}
		}
		return pic, nil
	}, nil
}
