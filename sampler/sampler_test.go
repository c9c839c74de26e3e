package sampler

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func softmax(x []float64) []float64 {
	top := slices.Max(x)
	out := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		out[i] = math.Exp(v - top)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func expectDist(t *testing.T, what string, got []Candidate, want map[int32]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d candidates %v, want %d", what, len(got), got, len(want))
	}
	for _, c := range got {
		if w, ok := want[c.ID]; !ok || math.Abs(c.P-w) > 1e-12 {
			t.Fatalf("%s: token %d has p %.15f, want %.15f", what, c.ID, c.P, w)
		}
	}
}

func TestDistributions(t *testing.T) {
	logits := []float32{1, 2, 3, 4, math.Float32frombits(0xff800000)} // the last is -inf
	p := softmax([]float64{1, 2, 3, 4})
	expectDist(t, "temperature 1", New(Params{Temperature: 1}).Distribution(slices.Clone(logits)),
		map[int32]float64{0: p[0], 1: p[1], 2: p[2], 3: p[3]})

	half := softmax([]float64{2, 4, 6, 8})
	expectDist(t, "temperature 0.5", New(Params{Temperature: 0.5}).Distribution(slices.Clone(logits)),
		map[int32]float64{0: half[0], 1: half[1], 2: half[2], 3: half[3]})

	k2 := softmax([]float64{3, 4})
	expectDist(t, "top-k 2", New(Params{Temperature: 1, TopK: 2}).Distribution(slices.Clone(logits)),
		map[int32]float64{3: k2[1], 2: k2[0]})

	// top-p 0.8: p(4) = 0.644 < 0.8, p(4)+p(3) = 0.881 >= 0.8: two tokens remain.
	expectDist(t, "top-p 0.8", New(Params{Temperature: 1, TopP: 0.8}).Distribution(slices.Clone(logits)),
		map[int32]float64{3: k2[1], 2: k2[0]})

	// min-p 0.2: keep tokens with p >= 0.2 * 0.644 = 0.129: tokens 3 (0.644) and 2 (0.237).
	expectDist(t, "min-p 0.2", New(Params{Temperature: 1, MinP: 0.2}).Distribution(slices.Clone(logits)),
		map[int32]float64{3: k2[1], 2: k2[0]})
}

// naiveDistribution is the definition, written plainly: sort every token (stable, so ties keep
// the lower id first), keep the top k, softmax, cut to the smallest head reaching top-p, drop
// tokens under min-p times the most likely, renormalize.
func naiveDistribution(logits []float32, p Params) map[int32]float64 {
	t := float64(p.Temperature)
	type tok struct {
		id int32
		l  float64
	}
	var toks []tok
	for i, l := range logits {
		if !math.IsInf(float64(l), -1) {
			toks = append(toks, tok{int32(i), float64(l) / t})
		}
	}
	sort.SliceStable(toks, func(i, j int) bool { return toks[i].l > toks[j].l })
	if p.TopK > 0 && p.TopK < len(toks) {
		toks = toks[:p.TopK]
	}
	ls := make([]float64, len(toks))
	for i, x := range toks {
		ls[i] = x.l
	}
	probs := softmax(ls)
	if p.TopP > 0 && p.TopP < 1 {
		var cum float64
		for i, q := range probs {
			if cum += q; cum >= float64(p.TopP) {
				probs = probs[:i+1]
				break
			}
		}
	}
	var s float64
	for _, q := range probs {
		if q >= float64(p.MinP)*probs[0] {
			s += q
		}
	}
	out := map[int32]float64{}
	for i, q := range probs {
		if q >= float64(p.MinP)*probs[0] {
			out[toks[i].id] = q / s
		}
	}
	return out
}

// The fast paths (a heap for top-k, a growing head for top-p) give the definition's distribution
// on vocabularies large enough to take every path, with ties among the logits.
func TestDistributionMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 60 {
		n := []int{5, 70, 600, 5000}[trial%4]
		logits := make([]float32, n)
		spread := []float64{0.5, 3, 12}[trial%3] // flat to peaked: the nucleus is many or few tokens
		for i := range logits {
			logits[i] = float32(math.Round(rng.NormFloat64()*spread*4) / 4) // quarters: many ties
		}
		logits[rng.IntN(n)] = float32(math.Inf(-1))
		p := Params{Temperature: []float32{0.7, 1, 1.5}[trial%3],
			TopK: []int{0, 1, 40, 1000}[trial/4%4], TopP: []float32{0, 0.37, 0.83, 0.993, 1}[trial%5], /* off round sums, where float order decides */
			MinP: []float32{0, 0, 0.05}[trial/3%3]}
		want := naiveDistribution(logits, p)
		expectDist(t, "random logits", New(p).Distribution(slices.Clone(logits)), want)
	}
}

func TestPenaltiesAndBias(t *testing.T) {
	s := New(Params{RepeatPenalty: 2, PresencePenalty: 0.5, FrequencyPenalty: 0.25, RepeatLastN: 3})
	logits := []float32{4, -4, 1, 2}
	s.bias(logits)
	s.penalize(logits, []int32{2, 0, 1, 1}) // the window is the last 3: 0, 1, 1
	want := []float32{4/2.0 - 0.25 - 0.5, -4*2.0 - 0.5 - 0.5, 1, 2}
	if !slices.Equal(logits, want) {
		t.Fatalf("penalized logits %v, want %v", logits, want)
	}
	b := New(Params{LogitBias: map[int32]float32{0: -200, 2: 1.5, 9: 3}})
	logits = []float32{5, 1, 1, 1}
	b.bias(logits)
	if !math.IsInf(float64(logits[0]), -1) || logits[2] != 2.5 {
		t.Fatalf("biased logits %v", logits)
	}
	if id, _ := New(Params{LogitBias: map[int32]float32{0: -200}}).Sample([]float32{5, 1, 3}, nil); id != 2 {
		t.Fatalf("greedy with token 0 banned picked %d", id)
	}
}

func TestGreedy(t *testing.T) {
	s := New(Params{})
	if id, err := s.Sample([]float32{0.5, 2, 2, -1}, nil); err != nil || id != 1 {
		t.Fatalf("greedy picked %d (%v), want the first of the tied maxima, 1", id, err)
	}
	inf := float32(math.Inf(-1))
	if _, err := s.Sample([]float32{inf, inf}, nil); err != ErrNoToken {
		t.Fatalf("all masked: %v", err)
	}
}

// Seeded sampling is reproducible, and its frequencies follow the distribution.
func TestSeededSampling(t *testing.T) {
	logits := []float32{0, 1, 2, 3}
	draw := func(seed uint64, n int) []int32 {
		s := New(Params{Temperature: 1, Seed: seed})
		out := make([]int32, n)
		for i := range out {
			out[i], _ = s.Sample(slices.Clone(logits), nil)
		}
		return out
	}
	if !slices.Equal(draw(42, 50), draw(42, 50)) {
		t.Fatal("the same seed gave different tokens")
	}
	if slices.Equal(draw(42, 50), draw(43, 50)) {
		t.Fatal("different seeds gave the same 50 tokens")
	}
	const n = 40000
	counts := make([]float64, 4)
	for _, id := range draw(7, n) {
		counts[id]++
	}
	want := softmax([]float64{0, 1, 2, 3})
	for i := range counts {
		// Four standard deviations of a binomial proportion: a true sampler fails this ~1 in 10^4.
		sd := math.Sqrt(want[i] * (1 - want[i]) / n)
		if math.Abs(counts[i]/n-want[i]) > 4*sd {
			t.Fatalf("token %d drawn %.4f of the time, want %.4f", i, counts[i]/n, want[i])
		}
	}
}

func TestAllowAndGuide(t *testing.T) {
	cond := []float32{1, 2, 3, 4, 5}
	uncond := []float32{0, 1, 1, 5, 0}
	Allow(cond, 1, 4)
	Allow(uncond, 1, 4)
	Guide(cond, uncond, 3)
	want := []float32{float32(math.Inf(-1)), 1 + 3*(2-1), 1 + 3*(3-1), 5 + 3*(4-5), float32(math.Inf(-1))}
	if !slices.Equal(cond, want) {
		t.Fatalf("guided logits %v, want %v", cond, want)
	}
	if id, _ := New(Params{}).Sample(cond, nil); id != 2 {
		t.Fatalf("greedy under guidance picked %d, want 2", id)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{{Temperature: -1}, {TopK: -2}, {TopP: 1.5}, {MinP: -0.1}, {RepeatPenalty: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v passed validation", p)
		}
	}
	if err := (Params{Temperature: 0.7, TopK: 40, TopP: 0.9}).Validate(); err != nil {
		t.Error(err)
	}
}
