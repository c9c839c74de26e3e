package visiontok

import (
	"context"
	"image"
)

// Preprocess is TokLIP's eval transform: Crop (PIL's resize of the shorter side to size in the
// picture's own mode, center crop, conversion to RGB), then ToTensor and Normalize(0.5, 0.5) to
// [-1, 1]. It returns the pixels as planes (channel, then row, then column), ggml's [W, H, 3].
func Preprocess(pic *Picture, size int) []float32 {
	return Planes(pic.Crop(size))
}

// Planes turns an 8-bit RGB crop into the model's input: v / 255 in float32 as ToTensor computes
// it, then (v - 0.5) / 0.5.
func Planes(crop *image.RGBA) []float32 {
	w, h := crop.Bounds().Dx(), crop.Bounds().Dy()
	out := make([]float32, 3*w*h)
	for c := range 3 {
		for y := range h {
			for x := range w {
				v := float32(crop.Pix[y*crop.Stride+4*x+c]) / 255
				out[(c*h+y)*w+x] = (v - 0.5) / 0.5
			}
		}
	}
	return out
}

// CropImage decodes an image and makes its size x size crop (DecodeImage, then Crop), holding
// the decode memory budget until the crop is made: the decoded picture, not the file, is what
// takes memory.
func CropImage(ctx context.Context, data []byte, opts DecodeOptions, size int) (*image.RGBA, error) {
	var crop *image.RGBA
	err := decodeWith(ctx, data, opts, int64(size), func(pic *Picture) error {
		crop = pic.Crop(size)
		return nil
	})
	return crop, err
}
