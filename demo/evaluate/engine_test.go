package evaluate

import (
	"context"
	"slices"
	"testing"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
)

// goldenN is how many items of each evaluation set `make demo-model` keeps from the PyTorch
// evaluation's outputs, in testdata/.
const goldenN = 20

// The embedded demo model, run by the engine, gives what PyTorch gave on the same weights: the
// same answers, and drawings within 2/255 per channel (the VQ decoder in F32, summed in another
// order). The LLM's KV cache is F32 here, as PyTorch's: with the default F16 cache, greedy
// near-ties (guided margins of 1e-4 to 1e-2) break the other way for 5 of the 300 drawings of the
// full evaluation, with F32 for none of its 1000 items. One item per set may still differ. It also
// scores what the embedded model does on these items, as a smoke test of its quality (the whole
// measurement is `make eval`).
func TestEmbeddedModelAgreesWithPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo model on 80 items")
	}
	t.Setenv("TOKLIP_CACHE", t.TempDir())
	files, err := modelfiles.Demo()
	if err != nil {
		t.Fatal(err)
	}
	e, err := llm.Open(context.Background(), files.LM, files.Vision, llm.EngineOptions{Backbone: llm.Options{CacheType: llm.CacheF32}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	sets := slices.Clone(demo.EvalSets)
	for i := range sets {
		sets[i].N = goldenN
	}
	var results []Result
	m, err := Run(context.Background(), e, Options{Sets: sets, Each: func(r Result) { results = append(results, r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the embedded model on the first %d items of each set:\n%s", goldenN, m)

	golden := map[string]Outputs{}
	for _, set := range sets {
		if golden[set.Name()], err = ReadOutputs("testdata", set); err != nil {
			t.Fatal(err)
		}
	}
	differ := map[string]int{}
	for _, r := range results {
		if d := r.Differs(golden[r.Set.Name()]); d != "" {
			differ[r.Set.Name()]++
			t.Logf("%s %d (%s): %s", r.Set.Name(), r.Index, r.Scene.Caption(), d)
		}
	}
	for _, set := range sets {
		if n := differ[set.Name()]; n > 1 {
			t.Errorf("%s: %d of %d items differ from PyTorch's (at most 1 may, on a near-tie)", set.Name(), n, goldenN)
		}
	}

	// Quality on these few items, with room below what the whole evaluation measures (README; on
	// these 20 items the weakest attribute, color, is 90% right in understanding): a model that
	// has stopped working fails here even if PyTorch agrees with it.
	for name, floor := range map[string]float64{"understanding-heldout": 80, "generation-heldout": 80} {
		for _, attr := range demo.Attributes {
			if v := m[name].Percent(attr); v < floor {
				t.Errorf("%s: %s right %.0f%% of the time, want at least %.0f%%", name, attr, v, floor)
			}
		}
	}
}
