package visiontok

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
)

// PNG is lossless, so Go's decoder gives PIL's values; what differs is the mode. PIL opens
// (PngImagePlugin._MODES): 1-bit gray as "1", 2/4/8-bit gray as "L", 16-bit gray as "I" (the
// 16-bit values), 8-bit gray+alpha as "LA", 16-bit gray+alpha as "RGBA" (gray in R, G and B),
// truecolour as "RGB" and with alpha "RGBA" (16-bit: the high byte), palette as "P" with the
// PLTE entries over a grey ramp. A tRNS chunk changes no mode: PIL keeps it aside, and the
// conversion to RGB drops it.

// pngInfo is what the chunks before the pixels say.
type pngInfo struct {
	width, height    int
	depth, colorType uint8
	palette          [][3]uint8
	exifOrientation  int
}

// pngChunks walks the chunks, checking lengths against the data (not CRCs: the decoder does).
func pngChunks(data []byte, visit func(kind string, body []byte) bool) error {
	p := 8
	for p+8 <= len(data) {
		n := int64(binary.BigEndian.Uint32(data[p:]))
		kind := string(data[p+4 : p+8])
		if n > int64(len(data)-p-12) {
			return fmt.Errorf("the file is truncated: it ends inside chunk %q of %d bytes", kind, n)
		}
		if !visit(kind, data[p+8:p+8+int(n)]) || kind == "IEND" {
			return nil
		}
		p += 12 + int(n)
	}
	return nil
}

func readPNGInfo(data []byte) (pngInfo, error) {
	var info pngInfo
	seenIHDR := false
	err := pngChunks(data, func(kind string, body []byte) bool {
		switch kind {
		case "IHDR":
			if len(body) == 13 {
				seenIHDR = true
				info.width, info.height = int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
				info.depth, info.colorType = body[8], body[9]
			}
		case "PLTE":
			for i := 0; i+3 <= len(body) && len(info.palette) < 256; i += 3 {
				info.palette = append(info.palette, [3]uint8{body[i], body[i+1], body[i+2]})
			}
		case "eXIf":
			info.exifOrientation = tiffOrientation(body)
		}
		return true
	})
	if err != nil {
		return info, err
	}
	if !seenIHDR {
		return info, errors.New("no IHDR chunk")
	}
	if info.width > 1<<30 || info.height > 1<<30 {
		return info, fmt.Errorf("%d x %d pixels is not a size", info.width, info.height)
	}
	return info, nil
}

// pngMode is PIL's mode for a bit depth and colour type.
func pngMode(depth, colorType uint8) (Mode, error) {
	switch {
	case colorType == 0 && depth == 1:
		return Mode1, nil
	case colorType == 0 && (depth == 2 || depth == 4 || depth == 8):
		return ModeL, nil
	case colorType == 0 && depth == 16:
		return ModeI, nil
	case colorType == 2 && (depth == 8 || depth == 16):
		return ModeRGB, nil
	case colorType == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8):
		return ModeP, nil
	case colorType == 4 && depth == 8:
		return ModeLA, nil
	case colorType == 4 && depth == 16, colorType == 6 && (depth == 8 || depth == 16):
		return ModeRGBA, nil
	}
	return 0, fmt.Errorf("bit depth %d with colour type %d is not a PNG kind", depth, colorType)
}

func readPNG(data []byte) (header, func() (*Picture, error), error) {
	info, err := readPNGInfo(data)
	if err != nil {
		return header{}, nil, err
	}
	mode, err := pngMode(info.depth, info.colorType)
	if err != nil {
		return header{}, nil, err
	}
	px := int64(info.width) * int64(info.height)
	goBytes := int64(4) // Go's decoder: RGBA or NRGBA, 1 for gray and palette, 8 at 16 bits
	switch {
	case info.depth == 16:
		goBytes = 8
	case info.colorType == 0 || info.colorType == 3:
		goBytes = 1
	}
	hdr := header{width: info.width, height: info.height, cost: px * (goBytes + int64(max(mode.channels(), 4))),
		orientation: max(info.exifOrientation, 1)}
	return hdr, func() (*Picture, error) {
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return pngPicture(img, mode, info)
	}, nil
}

// pngPicture moves what Go decoded into PIL's mode.
func pngPicture(img image.Image, mode Mode, info pngInfo) (*Picture, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	pic := newPicture(mode, w, h)
	ch := mode.channels()
	// rgba16 gives a pixel's straight (not premultiplied) 16-bit channels, whatever type Go chose.
	var rgba16 func(x, y int) (r, g, b, a uint16)
	switch m := img.(type) {
	case *image.Paletted:
		if mode != ModeP {
			return nil, fmt.Errorf("decoded a palette image as %T", img)
		}
		pic.Palette = greyRamp()
		for i, c := range info.palette {
			pic.Palette[i] = c
		}
		for y := range h {
			copy(pic.Pix[y*w:(y+1)*w], m.Pix[y*m.Stride:])
		}
		return pic, nil
	case *image.Gray:
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			v := uint16(m.Pix[y*m.Stride+x]) * 0x101
			return v, v, v, 0xffff
		}
	case *image.Gray16:
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			v := binary.BigEndian.Uint16(m.Pix[y*m.Stride+2*x:])
			return v, v, v, 0xffff
		}
	case *image.RGBA: // opaque truecolour
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			p := m.Pix[y*m.Stride+4*x:]
			return uint16(p[0]) * 0x101, uint16(p[1]) * 0x101, uint16(p[2]) * 0x101, 0xffff
		}
	case *image.NRGBA:
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			p := m.Pix[y*m.Stride+4*x:]
			return uint16(p[0]) * 0x101, uint16(p[1]) * 0x101, uint16(p[2]) * 0x101, uint16(p[3]) * 0x101
		}
	case *image.RGBA64: // opaque 16-bit truecolour
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			p := m.Pix[y*m.Stride+8*x:]
			return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint16(p[4:]), 0xffff
		}
	case *image.NRGBA64:
		rgba16 = func(x, y int) (uint16, uint16, uint16, uint16) {
			p := m.Pix[y*m.Stride+8*x:]
			return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:])
		}
	default:
		return nil, fmt.Errorf("unexpected decoded type %T", img)
	}
	for y := range h {
		for x := range w {
			r, g, bl, a := rgba16(b.Min.X+x, b.Min.Y+y)
			i := y*w + x
			switch mode {
			case ModeI: // the 16-bit value itself
				pic.Ints[i] = int32(r)
			case Mode1, ModeL: // gray (Go scales 1/2/4-bit gray to 8 bits as PIL's L;2 and L;4 do)
				pic.Pix[i] = uint8(r >> 8)
			case ModeLA:
				pic.Pix[2*i], pic.Pix[2*i+1] = uint8(r>>8), uint8(a>>8)
			case ModeRGB, ModeRGBA: // 16-bit samples keep their high byte (PIL's RGB;16B)
				pic.Pix[i*ch], pic.Pix[i*ch+1], pic.Pix[i*ch+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
				if mode == ModeRGBA {
					pic.Pix[i*ch+3] = uint8(a >> 8)
				}
			}
		}
	}
	return pic, nil
}
