package demo

import (
	"image"
	"math"
	"slices"
)

// Found is what Check reads from an image: indexes into Shapes, Colors, Positions and Sizes, each
// -1 when the image shows no object.
type Found struct {
	Shape, Color, Position, Size int
}

var nothing = Found{-1, -1, -1, -1}

// Check reads a scene's attributes back from its pixels alone: the background is the median of
// the border; the object is the largest connected region that differs from it; its color is the
// palette color nearest to the region's core; its position the anchor nearest to its centroid;
// its size its bounding box's longer side; its shape from its solidity (area over convex hull
// area: a star is far from convex) and its extent (area over bounding box: square, circle,
// triangle).
func Check(img image.Image) Found {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	px := make([][3]float64, w*h)
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			px[y*w+x] = [3]float64{float64(r >> 8), float64(g >> 8), float64(bl >> 8)}
		}
	}
	bg := borderMedian(px, w, h)
	// A pixel belongs to an object when it is far from the background: 70 of the 210-280 that
	// separate the palette colors from it, so edge pixels count from about a third covered.
	in := make([]bool, len(px))
	for i, p := range px {
		in[i] = dist(p, bg) > 70
	}
	region := largestRegion(in, w, h)
	if len(region) < 20 {
		return nothing
	}

	var f Found
	f.Color = nearestColor(px, region, bg)
	var sx, sy float64
	x0, y0, x1, y1 := w, h, -1, -1
	for _, i := range region {
		x, y := i%w, i/w
		sx, sy = sx+float64(x)+0.5, sy+float64(y)+0.5
		x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
	}
	cx, cy := sx/float64(len(region))*Size/float64(w), sy/float64(len(region))*Size/float64(h)
	best := math.Inf(1)
	for i, a := range anchors {
		if d := math.Hypot(cx-a[0], cy-a[1]); d < best {
			best, f.Position = d, i
		}
	}
	bw, bh := x1-x0+1, y1-y0+1
	if float64(max(bw, bh))*Size/float64(w) > 22 { // between small (15-19 px) and large (25-32 px)
		f.Size = 1
	}
	area := float64(len(region))
	solidity := area / hullArea(region, w)
	extent := area / float64(bw*bh)
	switch {
	case solidity < 0.75:
		f.Shape = slices.Index(Shapes, "star")
	case extent > 0.88:
		f.Shape = slices.Index(Shapes, "square")
	case extent > 0.64:
		f.Shape = slices.Index(Shapes, "circle")
	default:
		f.Shape = slices.Index(Shapes, "triangle")
	}
	return f
}

func dist(a, b [3]float64) float64 {
	return math.Sqrt((a[0]-b[0])*(a[0]-b[0]) + (a[1]-b[1])*(a[1]-b[1]) + (a[2]-b[2])*(a[2]-b[2]))
}

// borderMedian is the per-channel median of the outermost pixels. An object covers less than
// half of the border, so the median is the background.
func borderMedian(px [][3]float64, w, h int) [3]float64 {
	var ch [3][]float64
	for y := range h {
		for x := range w {
			if x == 0 || y == 0 || x == w-1 || y == h-1 {
				for c := range 3 {
					ch[c] = append(ch[c], px[y*w+x][c])
				}
			}
		}
	}
	var out [3]float64
	for c := range 3 {
		slices.Sort(ch[c])
		out[c] = ch[c][len(ch[c])/2]
	}
	return out
}

// largestRegion is the largest 4-connected set of true pixels, as indexes.
func largestRegion(in []bool, w, h int) []int {
	seen := make([]bool, len(in))
	var best []int
	for start := range in {
		if !in[start] || seen[start] {
			continue
		}
		region := []int{start}
		seen[start] = true
		for k := 0; k < len(region); k++ {
			i := region[k]
			x, y := i%w, i/w
			for _, n := range [][2]int{{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}} {
				if n[0] < 0 || n[1] < 0 || n[0] >= w || n[1] >= h {
					continue
				}
				j := n[1]*w + n[0]
				if in[j] && !seen[j] {
					seen[j] = true
					region = append(region, j)
				}
			}
		}
		if len(region) > len(best) {
			best = region
		}
	}
	return best
}

// nearestColor is the palette color nearest to the mean of the region's core: its pixels at
// least three quarters as far from the background as the farthest one (edges mix with the
// background).
func nearestColor(px [][3]float64, region []int, bg [3]float64) int {
	far := 0.0
	for _, i := range region {
		far = max(far, dist(px[i], bg))
	}
	var sum [3]float64
	n := 0.0
	for _, i := range region {
		if dist(px[i], bg) >= 0.75*far {
			for c := range 3 {
				sum[c] += px[i][c]
			}
			n++
		}
	}
	mean := [3]float64{sum[0] / n, sum[1] / n, sum[2] / n}
	best, idx := math.Inf(1), 0
	for i, p := range Palette {
		if d := dist(mean, [3]float64{float64(p.R), float64(p.G), float64(p.B)}); d < best {
			best, idx = d, i
		}
	}
	return idx
}

// hullArea is the area of the convex hull of the region's pixel squares (their corners).
func hullArea(region []int, w int) float64 {
	pts := make([][2]float64, 0, 4*len(region))
	for _, i := range region {
		x, y := float64(i%w), float64(i/w)
		pts = append(pts, [2]float64{x, y}, [2]float64{x + 1, y}, [2]float64{x, y + 1}, [2]float64{x + 1, y + 1})
	}
	slices.SortFunc(pts, func(a, b [2]float64) int {
		if a[0] != b[0] {
			return int(math.Copysign(1, a[0]-b[0]))
		}
		if a[1] != b[1] {
			return int(math.Copysign(1, a[1]-b[1]))
		}
		return 0
	})
	pts = slices.Compact(pts)
	cross := func(o, a, b [2]float64) float64 { return (a[0]-o[0])*(b[1]-o[1]) - (a[1]-o[1])*(b[0]-o[0]) }
	var hull [][2]float64 // Andrew's monotone chain: lower hull, then upper
	for pass := range 2 {
		start := len(hull)
		for k := range pts {
			p := pts[k]
			if pass == 1 {
				p = pts[len(pts)-1-k]
			}
			for len(hull) >= start+2 && cross(hull[len(hull)-2], hull[len(hull)-1], p) <= 0 {
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, p)
		}
		hull = hull[:len(hull)-1]
	}
	var a float64
	for i := range hull {
		j := (i + 1) % len(hull)
		a += hull[i][0]*hull[j][1] - hull[j][0]*hull[i][1]
	}
	return math.Abs(a) / 2
}
