package visiontok

import (
	"bytes"
	"encoding/binary"
)

// jpegOrientation reads the EXIF orientation (tag 0x0112 of IFD0) of a JPEG's first "Exif" APP1
// segment, where PIL's getexif finds it; 1 when absent.
func jpegOrientation(jpeg []byte) int {
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

// tiffOrientation finds the orientation in a TIFF header's first directory: a SHORT or LONG
// value from 1 to 8, else 1.
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
	ifd := int64(bo.Uint32(t[4:]))
	if ifd+2 > int64(len(t)) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for e := range n {
		off := int(ifd) + 2 + 12*e
		if off+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[off:]) != 0x0112 || bo.Uint32(t[off+4:]) != 1 {
			continue
		}
		v := 0
		switch bo.Uint16(t[off+2:]) {
		case 3: // SHORT
			v = int(bo.Uint16(t[off+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[off+8:]))
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}
