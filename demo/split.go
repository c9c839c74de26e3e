package demo

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Unseen are the (shape, color) pairs that training never shows: a purple circle, an orange
// square, a blue triangle, a green star. Every shape and every color is seen, only not in these
// pairs, so a model that gets them right composes attributes rather than recalls scenes.
var Unseen = [][2]int{{0, 4}, {1, 5}, {2, 2}, {3, 1}}

// IsUnseen reports whether s has one of the held-out (shape, color) pairs.
func IsUnseen(s Scene) bool {
	return slices.Contains(Unseen, [2]int{s.Shape, s.Color})
}

// A Split is a set of scenes: training scenes, held-out scenes of the combinations training
// sees, and scenes of the unseen combinations.
type Split int

const (
	Train Split = iota
	HeldOut
	UnseenCombos
)

var splitNames = []string{"train", "heldout", "unseen"}

func (s Split) String() string { return splitNames[s] }

// ParseSplit reads a split's name.
func ParseSplit(name string) (Split, error) {
	if i := slices.Index(splitNames, name); i >= 0 {
		return Split(i), nil
	}
	return 0, fmt.Errorf("unknown split %q (want train, heldout or unseen)", name)
}

// Scenes draws n scenes of a split. The same split, n and seed give the same scenes; the splits
// draw from separate random streams, so a held-out scene is never a training scene (and their
// variations make two scenes of one combination differ in pixels).
func Scenes(split Split, n int, seed uint64) []Scene {
	rng := rand.New(rand.NewPCG(seed, 0x64656d6f+uint64(split)))
	out := make([]Scene, 0, n)
	for len(out) < n {
		shape, col := rng.IntN(len(Shapes)), rng.IntN(len(Colors))
		pos, size := rng.IntN(len(Positions)), rng.IntN(len(Sizes))
		s := Random(rng, shape, col, pos, size)
		if IsUnseen(s) != (split == UnseenCombos) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// An EvalSet is one part of the demo model's evaluation: a task on n scenes of a split.
type EvalSet struct {
	Task  string // "understanding": describe the scene; "generation": draw its caption
	Split Split
	N     int
	Seed  uint64
}

// Name is the set's name in metrics and file names, "understanding-heldout" for example.
func (e EvalSet) Name() string { return e.Task + "-" + e.Split.String() }

// Scenes are the set's scenes.
func (e EvalSet) Scenes() []Scene { return Scenes(e.Split, e.N, e.Seed) }

// EvalSets is the demo model's evaluation, the same for PyTorch and for toklip's engine (fixed
// seeds): 500 held-out scenes and 200 of unseen combinations to describe, 200 held-out captions and
// 100 of unseen combinations to draw.
var EvalSets = []EvalSet{
	{"understanding", HeldOut, 500, 101},
	{"understanding", UnseenCombos, 200, 102},
	{"generation", HeldOut, 200, 103},
	{"generation", UnseenCombos, 100, 104},
}

// EvalQuestion is what the understanding sets ask about each scene.
const EvalQuestion = "Describe the image."
