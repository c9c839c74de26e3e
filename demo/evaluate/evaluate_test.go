package evaluate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/toklip/toklip/demo"
)

// Score reads the PyTorch evaluation's files: outputs that are exactly right (the true captions,
// the scenes' own pixels) score 100% on every metric, and one wrong answer costs what it should.
func TestScore(t *testing.T) {
	dir := t.TempDir()
	for _, set := range demo.EvalSets {
		var data []byte
		for i, s := range set.Scenes() {
			if set.Task == "understanding" {
				answer := s.Caption()
				if set.Split == demo.HeldOut && i == 0 {
					answer = "nothing at all"
				}
				line, _ := json.Marshal(map[string]string{"answer": answer})
				data = append(append(data, line...), '\n')
				continue
			}
			img := s.Render()
			for p := 0; p < len(img.Pix); p += 4 {
				data = append(data, img.Pix[p:p+3]...)
			}
		}
		ext := map[string]string{"understanding": ".answers.jsonl", "generation": ".generated.u8"}[set.Task]
		if err := os.WriteFile(filepath.Join(dir, set.Name()+ext), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Score(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range demo.EvalSets {
		want := 100.0
		if set.Task == "understanding" && set.Split == demo.HeldOut {
			want = 100 * float64(set.N-1) / float64(set.N)
		}
		for _, a := range append(demo.Attributes, "all") {
			if got := m[set.Name()].Percent(a); got != want {
				t.Errorf("%s %s: %.2f%%, want %.2f%%", set.Name(), a, got, want)
			}
		}
	}
	os.Remove(filepath.Join(dir, "generation-unseen.generated.u8"))
	if _, err := Score(dir); err == nil {
		t.Error("a missing output file was not reported")
	}
}
