package sampler_test

import (
	"fmt"
	"log"
	"math"

	"github.com/toklip/toklip/sampler"
)

// Greedy decoding is the zero Params; a seeded sampler repeats itself; logit_bias bans a token.
func Example() {
	logits := []float32{1.0, 3.0, 2.5, -1.0}
	greedy, err := sampler.New(sampler.Params{}).Sample(logits, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("greedy:", greedy)

	p := sampler.Params{Temperature: 0.8, TopK: 3, Seed: 42}
	a, _ := sampler.New(p).Sample(logits, nil)
	b, _ := sampler.New(p).Sample(logits, nil)
	fmt.Println("same seed, same token:", a == b)

	banned := sampler.Params{LogitBias: map[int32]float32{1: float32(math.Inf(-1))}}
	next, _ := sampler.New(banned).Sample(logits, nil)
	fmt.Println("token 1 banned:", next)
	// Output:
	// greedy: 1
	// same seed, same token: true
	// token 1 banned: 2
}

// Guide applies classifier-free guidance in place, u + s(c - u), as image generation does with
// the conditional and unconditional logits of each step.
func ExampleGuide() {
	cond := []float32{2, 1, 0}
	uncond := []float32{1, 1, 1}
	sampler.Guide(cond, uncond, 3)
	fmt.Println(cond)
	// Output: [4 1 -2]
}
