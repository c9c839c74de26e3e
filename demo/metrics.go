package demo

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Attributes are the names of the four things a scene is scored on.
var Attributes = []string{"shape", "color", "position", "size"}

// Tally counts, for one task and split, how often each attribute was right, and how often all were.
type Tally struct {
	N       int            `json:"n"`
	Correct map[string]int `json:"correct"`
	All     int            `json:"all_correct"`
}

// Add scores what was found against the scene asked for.
func (t *Tally) Add(want Scene, got Found) {
	if t.Correct == nil {
		t.Correct = map[string]int{}
	}
	t.N++
	all := true
	for _, a := range Attributes {
		ok := got.get(a) == want.get(a)
		if ok {
			t.Correct[a]++
		}
		all = all && ok
	}
	if all {
		t.All++
	}
}

func (f Found) get(a string) int {
	return map[string]int{"shape": f.Shape, "color": f.Color, "position": f.Position, "size": f.Size}[a]
}

func (s Scene) get(a string) int { return Found{s.Shape, s.Color, s.Position, s.Size}.get(a) }

// Percent is the share of correct answers for attribute a ("all" for every attribute at once).
func (t Tally) Percent(a string) float64 {
	if t.N == 0 {
		return 0
	}
	if a == "all" {
		return 100 * float64(t.All) / float64(t.N)
	}
	return 100 * float64(t.Correct[a]) / float64(t.N)
}

// Metrics are an evaluation's tallies by name ("understanding/heldout", "generation/unseen").
type Metrics map[string]*Tally

// Tally returns the named tally, made on first use.
func (m Metrics) Tally(name string) *Tally {
	if m[name] == nil {
		m[name] = &Tally{Correct: map[string]int{}}
	}
	return m[name]
}

// String is a table: one row per tally, one column per attribute, in percent.
func (m Metrics) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %5s", "", "n")
	for _, a := range append(Attributes, "all") {
		fmt.Fprintf(&b, " %8s", a)
	}
	b.WriteString("\n")
	for _, name := range m.names() {
		t := m[name]
		fmt.Fprintf(&b, "%-24s %5d", name, t.N)
		for _, a := range append(Attributes, "all") {
			fmt.Fprintf(&b, " %7.1f%%", t.Percent(a))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (m Metrics) names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Compare lists every metric on which m and other differ by more than tolerance points, and
// every tally one has and the other lacks.
func (m Metrics) Compare(other Metrics, tolerance float64) []string {
	var out []string
	for _, name := range m.names() {
		o, ok := other[name]
		if !ok {
			out = append(out, name+": missing from the reference")
			continue
		}
		if m[name].N != o.N {
			out = append(out, fmt.Sprintf("%s: %d scenes against %d", name, m[name].N, o.N))
			continue
		}
		for _, a := range append(Attributes, "all") {
			if d := math.Abs(m[name].Percent(a) - o.Percent(a)); d > tolerance {
				out = append(out, fmt.Sprintf("%s %s: %.1f%% against %.1f%% (%.1f points apart)", name, a, m[name].Percent(a), o.Percent(a), d))
			}
		}
	}
	for _, name := range other.names() {
		if _, ok := m[name]; !ok {
			out = append(out, name+": missing here")
		}
	}
	return out
}
