package visiontok

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
)

// GIF's first frame as PIL 9.4 opens it (GifImagePlugin): a canvas the size of the logical
// screen, grown to hold the frame if the frame reaches past it, filled with the transparent index
// (or 0), the frame's indices drawn at its offset, every index kept (the transparent one
// included: its colour shows after the conversion to RGB). The mode is "P" with the frame's
// colour table (local, else global) over a grey ramp, or "L", indices as grey levels, when that
// table is itself the grey ramp. Go's decoder does the LZW; it replaces the transparent index's
// colour and refuses a frame outside the screen, so it is given a copy of the file with the
// transparency flag cleared and the screen grown.

type gifInfo struct {
	screenW, screenH int
	frame            image.Rectangle
	table            []byte // the frame's colour table: local, else global; nil if none
	transparent      int    // -1 when none
	gcePacked        int    // offset of the first graphic control extension's flags, or -1
}

func readGIFInfo(data []byte) (gifInfo, error) {
	info := gifInfo{transparent: -1, gcePacked: -1}
	if len(data) < 13 {
		return info, errors.New("the file ends inside its header")
	}
	info.screenW, info.screenH = int(binary.LittleEndian.Uint16(data[6:])), int(binary.LittleEndian.Uint16(data[8:]))
	p := 13
	var global []byte
	if flags := data[10]; flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if p+n > len(data) {
			return info, errors.New("the file ends inside its colour table")
		}
		global, p = data[p:p+n], p+n
	}
	skipBlocks := func() error { // data sub-blocks up to the empty one
		for {
			if p >= len(data) {
				return errors.New("the file ends inside a block")
			}
			n := int(data[p])
			p += 1 + n
			if n == 0 {
				return nil
			}
		}
	}
	for p < len(data) {
		switch data[p] {
		case 0x21: // extension
			if p+2 > len(data) {
				return info, errors.New("the file ends inside an extension")
			}
			if data[p+1] == 0xF9 && info.gcePacked < 0 && p+7 <= len(data) && data[p+2] == 4 {
				info.gcePacked = p + 3
				if data[p+3]&1 != 0 {
					info.transparent = int(data[p+6])
				}
			}
			p += 2
			if err := skipBlocks(); err != nil {
				return info, err
			}
		case 0x2C: // the first image
			if p+10 > len(data) {
				return info, errors.New("the file ends inside an image descriptor")
			}
			d := data[p+1:]
			x, y := int(binary.LittleEndian.Uint16(d)), int(binary.LittleEndian.Uint16(d[2:]))
			w, h := int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			info.frame = image.Rect(x, y, x+w, y+h)
			info.table = global
			if flags := d[8]; flags&0x80 != 0 {
				n := 3 << (flags&7 + 1)
				if p+10+n > len(data) {
					return info, errors.New("the file ends inside a colour table")
				}
				info.table = data[p+10 : p+10+n]
			}
			return info, nil
		case 0x3B:
			return info, errors.New("no image before the trailer")
		default:
			return info, fmt.Errorf("unknown block 0x%02x", data[p])
		}
	}
	return info, errors.New("no image")
}

// greyTable is PIL's test for a colour table that is the grey ramp (GifImagePlugin's
// _is_palette_needed, negated): such a frame is opened as "L".
func greyTable(t []byte) bool {
	for i := 0; i+3 <= len(t); i += 3 {
		if v := byte(i / 3); t[i] != v || t[i+1] != v || t[i+2] != v {
			return false
		}
	}
	return true
}

func readGIF(data []byte) (header, func() (*Picture, error), error) {
	info, err := readGIFInfo(data)
	if err != nil {
		return header{}, nil, err
	}
	if info.table == nil {
		return header{}, nil, errors.New("a GIF without a colour table is not accepted")
	}
	w, h := max(info.screenW, info.frame.Max.X), max(info.screenH, info.frame.Max.Y)
	cost := int64(w)*int64(h) + int64(info.frame.Dx())*int64(info.frame.Dy()) // the canvas, Go's frame
	return header{width: w, height: h, cost: cost}, func() (*Picture, error) {
		patched := bytes.Clone(data)
		binary.LittleEndian.PutUint16(patched[6:], uint16(w))
		binary.LittleEndian.PutUint16(patched[8:], uint16(h))
		if info.gcePacked >= 0 {
			patched[info.gcePacked] &^= 1 // keep the transparent index's colour
		}
		img, err := gif.Decode(bytes.NewReader(patched))
		if err != nil {
			return nil, err
		}
		frame, ok := img.(*image.Paletted)
		if !ok || frame.Rect != info.frame {
			return nil, fmt.Errorf("the first frame decoded to %v, its descriptor says %v", img.Bounds(), info.frame)
		}
		mode := ModeP
		if greyTable(info.table) {
			mode = ModeL
		}
		pic := newPicture(mode, w, h)
		if info.transparent >= 0 {
			for i := range pic.Pix {
				pic.Pix[i] = uint8(info.transparent)
			}
		}
		for y := frame.Rect.Min.Y; y < frame.Rect.Max.Y; y++ {
			copy(pic.Pix[y*w+frame.Rect.Min.X:y*w+frame.Rect.Max.X], frame.Pix[(y-frame.Rect.Min.Y)*frame.Stride:])
		}
		if mode == ModeP {
			pic.Palette = greyRamp()
			for i := 0; i+3 <= len(info.table); i += 3 {
				pic.Palette[i/3] = [3]uint8{info.table[i], info.table[i+1], info.table[i+2]}
			}
		}
		return pic, nil
	}, nil
}
