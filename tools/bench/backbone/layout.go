package backbone

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm/convert"
)

// checkLayout converts the parity-test checkpoints (llm/testdata) with toklip's converter and
// has llama.cpp continue each golden prompt greedily: the tokens must be the PyTorch reference's.
// That proves the files are in llama.cpp's layout: Qwen2's biases and NeoX rotation, Llama's
// interleaved q/k rows and rope_freqs, the tied and untied outputs.
func checkLayout(script, testdata, work string) error {
	for _, name := range []string{"qwen2", "llama"} {
		var g struct {
			Prompt []int32 `json:"prompt"`
			Greedy []int32 `json:"greedy"`
		}
		data, err := os.ReadFile(filepath.Join(testdata, name, "golden.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &g); err != nil {
			return err
		}
		path := filepath.Join(work, "layout-"+name+".gguf")
		if err := convert.Convert(filepath.Join(testdata, name, "hf"), path, convert.Options{Type: gguf.TypeF32}); err != nil {
			return err
		}
		prompt := filepath.Join(work, "layout-"+name+"-prompt.json")
		data, _ = json.Marshal(g.Prompt)
		if err := os.WriteFile(prompt, data, 0o644); err != nil {
			return err
		}
		cmd := exec.Command("node", script, "--model", path, "--prompt", prompt, "--greedy", fmt.Sprint(len(g.Greedy)), "--threads", "1")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("llama.cpp on %s: %w", path, err)
		}
		var r struct {
			Tokens []int32 `json:"tokens"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("llama.cpp on %s: %w (output %q)", path, err, out)
		}
		if !slices.Equal(r.Tokens, g.Greedy) {
			return fmt.Errorf("layout check %s: llama.cpp continues with %v, the reference with %v", name, r.Tokens, g.Greedy)
		}
		fmt.Printf("layout check: llama.cpp reproduces the reference's %d-token greedy continuation on toklip's %s file\n", len(g.Greedy), name)
	}
	return nil
}
