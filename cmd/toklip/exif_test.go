package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/toklip/toklip/demo"
)

// withEXIFOrientation inserts an eXIf chunk (a little-endian TIFF directory holding only the
// orientation) after a PNG's IHDR.
func withEXIFOrientation(pngData []byte, o uint16) []byte {
	tiff := []byte("II*\x00\x08\x00\x00\x00")
	ifd := make([]byte, 2+12+4)
	binary.LittleEndian.PutUint16(ifd[0:], 1)
	binary.LittleEndian.PutUint16(ifd[2:], 0x0112)
	binary.LittleEndian.PutUint16(ifd[4:], 3)
	binary.LittleEndian.PutUint32(ifd[6:], 1)
	binary.LittleEndian.PutUint16(ifd[10:], o)
	body := append(append([]byte("eXIf"), tiff...), ifd...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)-4))
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	at := 8 + 25 // the signature, then IHDR
	return append(append(append([]byte{}, pngData[:at]...), chunk...), pngData[at:]...)
}

// A photo stored turned a quarter left with orientation 6 ("turn me right to view"): by default
// the model sees it upright, as its owner does; with -exif ignore it sees the stored pixels, as
// TokLIP's official pipeline does, and the shape is in another corner.
func TestEXIFSwitch(t *testing.T) {
	scene := demo.Scene{Shape: 1, Color: 0, Position: 0, Size: 1, Scale: 1} // top left
	upright := scene.Render()
	b := upright.Bounds()
	stored := image.NewRGBA(image.Rect(0, 0, b.Dy(), b.Dx()))
	for y := range b.Dy() {
		for x := range b.Dx() { // turned 90 degrees counter-clockwise
			stored.Set(y, b.Dx()-1-x, upright.At(x, y))
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, stored)
	path := filepath.Join(t.TempDir(), "photo.png")
	os.WriteFile(path, withEXIFOrientation(buf.Bytes(), 6), 0o644)

	for _, c := range []struct {
		flag  []string
		where string
	}{{nil, "top left corner"}, {[]string{"-exif", "ignore"}, "bottom left corner"}} {
		args := append(append([]string{"run", "-image", path}, c.flag...), "Describe the image.")
		code, out, errOut := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", args, code, errOut)
		}
		if got := demo.ReadAnswer(out); demo.Positions[got.Position] != c.where {
			t.Errorf("%v: %q, want the shape in the %s", c.flag, out, c.where)
		}
	}
}
