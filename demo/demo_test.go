package demo

import (
	"testing"
)

// The checker reads back every attribute of rendered scenes, of every split: it is the judge of
// generated images, so its own error must be far below the 10% the generation target allows.
func TestCheckReadsRenderedScenes(t *testing.T) {
	for _, split := range []Split{Train, HeldOut, UnseenCombos} {
		wrong := map[string]int{}
		scenes := Scenes(split, 400, 1)
		for _, s := range scenes {
			f := Check(s.Render())
			for name, pair := range map[string][2]int{"shape": {f.Shape, s.Shape}, "color": {f.Color, s.Color},
				"position": {f.Position, s.Position}, "size": {f.Size, s.Size}} {
				if pair[0] != pair[1] {
					wrong[name]++
					if wrong[name] <= 3 {
						t.Logf("%s: %q read as %+v", split, s.Caption(), f)
					}
				}
			}
		}
		for name, n := range wrong {
			t.Errorf("%s: %s wrong in %d of %d scenes", split, name, n, len(scenes))
		}
	}
}

func TestChecksBlankImage(t *testing.T) {
	s := Scene{Scale: 1}
	img := s.Render()
	for i := 0; i < len(img.Pix); i += 4 { // paint the object over with the background
		img.Pix[i], img.Pix[i+1], img.Pix[i+2] = Background.R, Background.G, Background.B
	}
	if f := Check(img); f != nothing {
		t.Errorf("a blank image read as %+v", f)
	}
}

func TestSplits(t *testing.T) {
	train, held, unseen := Scenes(Train, 2000, 7), Scenes(HeldOut, 500, 7), Scenes(UnseenCombos, 200, 7)
	for _, s := range append(train, held...) {
		if IsUnseen(s) {
			t.Fatalf("%q is an unseen combination in a seen split", s.Caption())
		}
	}
	for _, s := range unseen {
		if !IsUnseen(s) {
			t.Fatalf("%q in the unseen split", s.Caption())
		}
	}
	if a, b := Scenes(HeldOut, 5, 7), Scenes(HeldOut, 5, 7); a[3] != b[3] {
		t.Error("the same seed drew different scenes")
	}
	if train[0] == held[0] {
		t.Error("two splits drew the same first scene")
	}
}

func TestReadAnswer(t *testing.T) {
	for text, want := range map[string]Found{
		"A large red circle in the top left corner.": {0, 0, 0, 1},
		"In the center.": {-1, -1, 4, -1},
		"a small purple star in the bottom right corner": {3, 4, 3, 0},
		"Blue.":                     {-1, 2, -1, -1},
		"I see nothing":             {-1, -1, -1, -1},
		"a squared circle, reddish": {0, -1, -1, -1}, // whole words only: "squared" is no square
	} {
		if got := ReadAnswer(text); got != want {
			t.Errorf("ReadAnswer(%q) = %+v, want %+v", text, got, want)
		}
	}
}

func TestTallyAndCompare(t *testing.T) {
	s := Scene{Shape: 1, Color: 2, Position: 3, Size: 1}
	a, b := Metrics{}, Metrics{}
	a.Tally("x").Add(s, Found{1, 2, 3, 1})
	a.Tally("x").Add(s, Found{1, 0, 3, 1})
	b.Tally("x").Add(s, Found{1, 2, 3, 1})
	b.Tally("x").Add(s, Found{1, 2, 3, 1})
	if p := a["x"].Percent("color"); p != 50 {
		t.Errorf("color %v%%, want 50%%", p)
	}
	if p := a["x"].Percent("all"); p != 50 {
		t.Errorf("all %v%%, want 50%%", p)
	}
	if d := a.Compare(b, 1); len(d) != 2 { // color and all differ by 50 points
		t.Errorf("differences %v, want color and all", d)
	}
	if d := a.Compare(a, 0); len(d) != 0 {
		t.Errorf("a tally differs from itself: %v", d)
	}
}
