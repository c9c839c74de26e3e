// Package sampler turns logits into a token: logit bias, repetition/presence/frequency
// penalties, temperature (0 is greedy), top-k, top-p, min-p, and seeded randomness; plus the two
// operations of guided image generation, an allowed-range mask and classifier-free guidance.
//
// The transforms run in llama.cpp's order: bias, penalties, then the truncations (top-k, top-p,
// min-p) on the temperature-scaled distribution. ollama's sample package is not used: it does not
// compile from the module zip (its grammar support needs llama.cpp's vendored headers).
package sampler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params choose how tokens are picked. The zero value is greedy decoding.
type Params struct {
	Temperature float32 // 0 picks the most likely token
	TopK        int     // keep the k most likely tokens; 0 keeps all
	TopP        float32 // keep the smallest set whose probability reaches p; 0 or 1 keeps all
	MinP        float32 // drop tokens less likely than min_p times the most likely; 0 keeps all

	RepeatPenalty    float32 // >1 divides positive logits (multiplies negative ones) of tokens in the window
	PresencePenalty  float32 // subtracted once from the logit of every token in the window
	FrequencyPenalty float32 // subtracted per occurrence in the window
	RepeatLastN      int     // the window: the last n tokens of the history; 0 means all of it

	LogitBias map[int32]float32 // added to a token's logit; -inf (or below -100) bans it
	Seed      uint64            // the same seed gives the same tokens
}

// ErrParams marks the errors of Validate: a caller's parameters, not a failure of the sampler.
var ErrParams = errors.New("sampling parameter out of range")

// Validate reports parameters outside their ranges (an error wrapping ErrParams).
func (p Params) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrParams, fmt.Sprintf(format, args...))
	}
	switch {
	case p.Temperature < 0 || math.IsNaN(float64(p.Temperature)):
		return bad("temperature %g must be >= 0", p.Temperature)
	case p.TopK < 0:
		return bad("top_k %d must be >= 0", p.TopK)
	case p.TopP < 0 || p.TopP > 1:
		return bad("top_p %g must be in [0, 1]", p.TopP)
	case p.MinP < 0 || p.MinP > 1:
		return bad("min_p %g must be in [0, 1]", p.MinP)
	case p.RepeatPenalty < 0:
		return bad("repeat penalty %g must be >= 0", p.RepeatPenalty)
	case p.RepeatLastN < 0:
		return bad("repeat_last_n %d must be >= 0", p.RepeatLastN)
	}
	return nil
}

// Sampler picks tokens with one Params and its own random stream. It is not safe for concurrent
// use: each sequence has its own.
type Sampler struct {
	p   Params
	rng *rand.Rand
}

// New returns a sampler seeded with p.Seed.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x746f6b6c6970))}
}

// ErrNoToken is returned when every token was banned or masked away.
var ErrNoToken = errors.New("no token is left to sample")

// Sample picks a token from logits given the tokens generated so far (for the penalties).
// logits is modified.
func (s *Sampler) Sample(logits []float32, history []int32) (int32, error) {
	s.bias(logits)
	s.penalize(logits, history)
	if s.p.Temperature == 0 {
		return argmax(logits)
	}
	cands := s.Distribution(logits)
	if len(cands) == 0 {
		return 0, ErrNoToken
	}
	r := s.rng.Float64()
	for _, c := range cands {
		if r -= c.P; r < 0 {
			return c.ID, nil
		}
	}
	return cands[len(cands)-1].ID, nil
}

// Candidate is a token and its probability after the sampler's transforms.
type Candidate struct {
	ID int32
	P  float64
}

// Distribution is what Sample draws from (after bias and penalties): the tokens left by top-k,
// top-p and min-p, with probabilities that sum to 1. The order is unspecified: sorting a whole
// vocabulary (168k entries with image tokens) costs more than a decode step, so only top-k and
// top-p order what they need, most likely first (ties: the lower id first).
func (s *Sampler) Distribution(logits []float32) []Candidate {
	t := float64(s.p.Temperature)
	if t == 0 {
		t = 1
	}
	cands := make([]Candidate, 0, len(logits))
	top := math.Inf(-1)
	for id, l := range logits {
		if !math.IsInf(float64(l), -1) && !math.IsNaN(float64(l)) {
			cands = append(cands, Candidate{ID: int32(id), P: float64(l) / t})
			top = math.Max(top, float64(l)/t)
		}
	}
	sorted := false
	if k := s.p.TopK; k > 0 && k < len(cands) {
		cands, sorted = mostLikely(cands, k), true
	}
	for i := range cands {
		cands[i].P = math.Exp(cands[i].P - top)
	}
	normalize(cands)
	if p := float64(s.p.TopP); p > 0 && p < 1 {
		cands = nucleus(cands, p, sorted)
	}
	if m := float64(s.p.MinP); m > 0 && len(cands) > 0 {
		var most float64
		for _, c := range cands {
			most = math.Max(most, c.P)
		}
		floor := m * most
		cands = slices.DeleteFunc(cands, func(c Candidate) bool { return c.P < floor })
	}
	normalize(cands)
	return cands
}

// nucleus is the smallest head of cands, most likely first, whose probability reaches p. An LLM's
// nucleus is usually a few tokens, so it looks at the 64, then 512, ... most likely before
// sorting everything.
func nucleus(cands []Candidate, p float64, sorted bool) []Candidate {
	head := cands
	for k := 64; !sorted; k *= 8 {
		if k >= len(cands) {
			head = slices.Clone(cands)
			slices.SortFunc(head, func(a, b Candidate) int {
				if moreLikely(a, b) {
					return -1
				}
				return 1
			})
			break
		}
		if head = mostLikely(cands, k); sum(head) >= p {
			break
		}
	}
	var cum float64
	for i := range head {
		if cum += head[i].P; cum >= p {
			return head[:i+1]
		}
	}
	return head
}

// mostLikely returns the k most likely of cands, most likely first, through a min-heap of k:
// O(n log k) against a whole sort's O(n log n).
func mostLikely(cands []Candidate, k int) []Candidate {
	h := slices.Clone(cands[:k])
	less := func(i, j int) bool { return moreLikely(h[j], h[i]) } // the heap's root is the least likely
	down := func(i, n int) {
		for {
			c := 2*i + 1
			if c >= n {
				return
			}
			if c+1 < n && less(c+1, c) {
				c++
			}
			if !less(c, i) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i, k)
	}
	for _, c := range cands[k:] {
		if moreLikely(c, h[0]) {
			h[0] = c
			down(0, k)
		}
	}
	for n := k - 1; n > 0; n-- { // heap sort: the least likely go to the end
		h[0], h[n] = h[n], h[0]
		down(0, n)
	}
	return h
}

// moreLikely orders candidates by probability, then by id, so that ties are cut the same way
// every time.
func moreLikely(a, b Candidate) bool {
	return a.P > b.P || (a.P == b.P && a.ID < b.ID)
}

func sum(cands []Candidate) float64 {
	var s float64
	for _, c := range cands {
		s += c.P
	}
	return s
}

func normalize(cands []Candidate) {
	s := sum(cands)
	for i := range cands {
		cands[i].P /= s
	}
}

func (s *Sampler) bias(logits []float32) {
	for id, b := range s.p.LogitBias {
		if id >= 0 && int(id) < len(logits) {
			if b <= -100 {
				logits[id] = float32(math.Inf(-1))
			} else {
				logits[id] += b
			}
		}
	}
}

func (s *Sampler) penalize(logits []float32, history []int32) {
	p := s.p
	if (p.RepeatPenalty == 0 || p.RepeatPenalty == 1) && p.PresencePenalty == 0 && p.FrequencyPenalty == 0 {
		return
	}
	window := history
	if p.RepeatLastN > 0 && len(window) > p.RepeatLastN {
		window = window[len(window)-p.RepeatLastN:]
	}
	counts := map[int32]int{}
	for _, id := range window {
		if id >= 0 && int(id) < len(logits) {
			counts[id]++
		}
	}
	for id, n := range counts {
		l := logits[id]
		if p.RepeatPenalty > 0 && p.RepeatPenalty != 1 {
			if l > 0 {
				l /= p.RepeatPenalty
			} else {
				l *= p.RepeatPenalty
			}
		}
		logits[id] = l - float32(n)*p.FrequencyPenalty - p.PresencePenalty
	}
}

func argmax(logits []float32) (int32, error) {
	best := -1
	for i, l := range logits {
		if !math.IsNaN(float64(l)) && !math.IsInf(float64(l), -1) && (best < 0 || l > logits[best]) {
			best = i
		}
	}
	if best < 0 {
		return 0, ErrNoToken
	}
	return int32(best), nil
}

// Allow keeps the logits of ids in [lo, hi) and sets every other one to -inf: inside an image
// only image tokens may be sampled.
func Allow(logits []float32, lo, hi int) {
	inf := float32(math.Inf(-1))
	for i := range logits {
		if i < lo || i >= hi {
			logits[i] = inf
		}
	}
}

// Guide mixes conditional and unconditional logits by classifier-free guidance, u + s (c - u),
// into cond. Masked (-inf) entries stay masked.
func Guide(cond, uncond []float32, scale float32) {
	for i := range cond {
		if math.IsInf(float64(cond[i]), -1) || math.IsInf(float64(uncond[i]), -1) {
			cond[i] = float32(math.Inf(-1))
			continue
		}
		cond[i] = uncond[i] + scale*(cond[i]-uncond[i])
	}
}
