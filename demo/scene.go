// Package demo is the world of toklip's demo model: simple scenes of one shape on a plain
// background, their exact captions, the split between attribute combinations seen in training
// and combinations held out, and a checker that reads attributes back from pixels alone.
//
// The scenes are drawn here, in Go, and nowhere else: the training recipe (tools/demo) asks this
// package for its data, and the evaluation reads the same scenes, so both sides see one renderer.
package demo

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"golang.org/x/image/vector"
)

// Size is the side of a scene in pixels.
const Size = 64

// The attributes a scene is made of, in the order of their ids.
var (
	Shapes    = []string{"circle", "square", "triangle", "star"}
	Colors    = []string{"red", "green", "blue", "yellow", "purple", "orange"}
	Positions = []string{"top left corner", "top right corner", "bottom left corner", "bottom right corner", "center"}
	Sizes     = []string{"small", "large"}
)

// Palette holds the RGB of each color in Colors, chosen to be far apart from each other and from
// the background.
var Palette = []color.RGBA{
	{220, 40, 40, 255},  // red
	{40, 160, 60, 255},  // green
	{40, 80, 220, 255},  // blue
	{235, 200, 30, 255}, // yellow
	{140, 60, 180, 255}, // purple
	{245, 130, 30, 255}, // orange
}

// Background is the plain background of every scene.
var Background = color.RGBA{240, 240, 240, 255}

// anchors are the centers of the positions, in pixels; extents the nominal bounding-box side of
// each size.
var (
	anchors = [][2]float64{{16, 16}, {48, 16}, {16, 48}, {48, 48}, {32, 32}}
	extents = []float64{18, 30}
)

// Scene is one object on the background: indexes into Shapes, Colors, Positions and Sizes, and
// the small random variations it is drawn with.
type Scene struct {
	Shape, Color, Position, Size int

	DX, DY float64 // offset of the center from its anchor, pixels
	Scale  float64 // size factor around the nominal extent
	Tint   [3]int  // added to the palette color, per channel
}

// Caption is the scene's exact description, as the model is taught to write it.
func (s Scene) Caption() string {
	return fmt.Sprintf("a %s %s %s in the %s", Sizes[s.Size], Colors[s.Color], Shapes[s.Shape], Positions[s.Position])
}

// Combo is the scene's attributes without its variations.
func (s Scene) Combo() Scene {
	return Scene{Shape: s.Shape, Color: s.Color, Position: s.Position, Size: s.Size, Scale: 1}
}

// Random draws a scene with the given attributes' variations: the center moves by up to 2 pixels,
// the size by up to 8%, each color channel by up to 12.
func Random(rng *rand.Rand, shape, col, pos, size int) Scene {
	tint := [3]int{}
	for i := range tint {
		tint[i] = rng.IntN(25) - 12
	}
	return Scene{Shape: shape, Color: col, Position: pos, Size: size,
		DX: rng.Float64()*4 - 2, DY: rng.Float64()*4 - 2, Scale: 0.92 + rng.Float64()*0.16, Tint: tint}
}

// Render draws the scene, anti-aliased, at Size x Size.
func (s Scene) Render() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, Size, Size))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = Background.R, Background.G, Background.B, 255
	}
	r := vector.NewRasterizer(Size, Size)
	cx, cy := anchors[s.Position][0]+s.DX, anchors[s.Position][1]+s.DY
	half := extents[s.Size] * s.Scale / 2
	polygon(r, outline(s.Shape, cx, cy, half))
	mask := image.NewAlpha(img.Bounds())
	r.Draw(mask, mask.Bounds(), image.Opaque, image.Point{})

	c := Palette[s.Color]
	fill := [3]float64{}
	for i, v := range []uint8{c.R, c.G, c.B} {
		fill[i] = float64(min(255, max(0, int(v)+s.Tint[i])))
	}
	bg := [3]float64{float64(Background.R), float64(Background.G), float64(Background.B)}
	for i, a := range mask.Pix {
		if a == 0 {
			continue
		}
		t := float64(a) / 255
		for ch := range 3 {
			img.Pix[4*i+ch] = uint8(math.Round(bg[ch]*(1-t) + fill[ch]*t))
		}
	}
	return img
}

// outline is the shape's polygon, centered at (cx, cy), fitting a box of side 2*half.
func outline(shape int, cx, cy, half float64) [][2]float64 {
	var pts [][2]float64
	switch Shapes[shape] {
	case "circle":
		for i := range 64 {
			a := 2 * math.Pi * float64(i) / 64
			pts = append(pts, [2]float64{cx + half*math.Cos(a), cy + half*math.Sin(a)})
		}
	case "square":
		s := half * 0.9 // a square fills its box: drawn a little smaller, so the sizes read alike
		pts = [][2]float64{{cx - s, cy - s}, {cx + s, cy - s}, {cx + s, cy + s}, {cx - s, cy + s}}
	case "triangle": // pointing up, base at the bottom of the box
		pts = [][2]float64{{cx, cy - half}, {cx + half, cy + half}, {cx - half, cy + half}}
	case "star": // five points, inner radius 0.45 of the outer, one point up
		for i := range 10 {
			rad := half
			if i%2 == 1 {
				rad = half * 0.45
			}
			a := -math.Pi/2 + math.Pi*float64(i)/5
			pts = append(pts, [2]float64{cx + rad*math.Cos(a), cy + rad*math.Sin(a) + half*0.1})
		}
	}
	return pts
}

func polygon(r *vector.Rasterizer, pts [][2]float64) {
	r.MoveTo(float32(pts[0][0]), float32(pts[0][1]))
	for _, p := range pts[1:] {
		r.LineTo(float32(p[0]), float32(p[1]))
	}
	r.ClosePath()
}
