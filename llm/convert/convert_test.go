package convert_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm/convert"
)

func testdata(name string) string { return filepath.Join("..", "testdata", name, "hf") }

func convertTo(t *testing.T, dir string, typ gguf.TensorType) (*gguf.File, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := convert.Convert(dir, out, convert.Options{Type: typ}); err != nil {
		if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
			t.Fatalf("a failed conversion left %s behind", entries[0].Name())
		}
		return nil, err
	}
	return gguf.Open(out)
}

func TestTokenizerMetadata(t *testing.T) {
	var tok struct {
		Model struct {
			Merges [][]string `json:"merges"`
		} `json:"model"`
		AddedTokens []struct {
			ID      uint32 `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	for _, c := range []struct {
		name, pre string
		bos, eos  string
		addBOS    bool
	}{
		{"qwen2", "qwen2", "", "<|im_end|>", false},
		{"llama", "llama-bpe", "<|begin_of_text|>", "<|eot_id|>", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(testdata(c.name), "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &tok); err != nil {
				t.Fatal(err)
			}
			f, err := convertTo(t, testdata(c.name), gguf.TypeF32)
			if err != nil {
				t.Fatal(err)
			}
			tokens := f.KV["tokenizer.ggml.tokens"].([]string)
			types := f.KV["tokenizer.ggml.token_type"].([]int32)
			merges := f.KV["tokenizer.ggml.merges"].([]string)
			if len(tokens) != 512 || len(types) != 512 {
				t.Fatalf("%d tokens, %d types; want the model's 512 rows", len(tokens), len(types))
			}
			if len(merges) != len(tok.Model.Merges) || merges[0] != strings.Join(tok.Model.Merges[0], " ") {
				t.Fatalf("merges: %d, first %q", len(merges), merges[0])
			}
			ids := map[string]uint32{}
			for _, a := range tok.AddedTokens {
				ids[a.Content] = a.ID
				if tokens[a.ID] != a.Content || types[a.ID] != 3 {
					t.Fatalf("added token %q at %d: got %q of type %d", a.Content, a.ID, tokens[a.ID], types[a.ID])
				}
			}
			if types[511] != 5 || tokens[511] != "[PAD511]" {
				t.Fatalf("unused row 511: %q type %d", tokens[511], types[511])
			}
			if f.KV["tokenizer.ggml.pre"] != c.pre || f.KV["tokenizer.ggml.model"] != "gpt2" {
				t.Fatalf("pre %v, model %v", f.KV["tokenizer.ggml.pre"], f.KV["tokenizer.ggml.model"])
			}
			if f.KV["tokenizer.ggml.eos_token_id"] != ids[c.eos] || f.KV["tokenizer.ggml.add_bos_token"] != c.addBOS {
				t.Fatalf("eos %v (want %d), add_bos %v", f.KV["tokenizer.ggml.eos_token_id"], ids[c.eos], f.KV["tokenizer.ggml.add_bos_token"])
			}
			if c.bos != "" && f.KV["tokenizer.ggml.bos_token_id"] != ids[c.bos] {
				t.Fatalf("bos %v, want %d", f.KV["tokenizer.ggml.bos_token_id"], ids[c.bos])
			}
			if tmpl, _ := f.KV["tokenizer.chat_template"].(string); !strings.Contains(tmpl, "messages") {
				t.Fatalf("chat template %q", tmpl)
			}
		})
	}
}

func TestTiedOutputAndTypes(t *testing.T) {
	f, err := convertTo(t, testdata("qwen2"), gguf.TypeQ8_0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Fatal("a tied model must not carry output.weight")
	}
	for name, want := range map[string]gguf.TensorType{
		"token_embd.weight": gguf.TypeQ8_0, "blk.0.attn_q.weight": gguf.TypeQ8_0,
		"blk.0.attn_q.bias": gguf.TypeF32, "blk.0.attn_norm.weight": gguf.TypeF32,
		"blk.0.ffn_up.weight": gguf.TypeQ8_0, "blk.0.ffn_down.weight": gguf.TypeQ8_0,
	} {
		if info, ok := f.Tensor(name); !ok || info.Type != want {
			t.Errorf("%s: type %s, want %s", name, info.Type, want)
		}
	}
	if ft := f.KV["general.file_type"]; ft != uint32(7) {
		t.Errorf("general.file_type = %v, want 7 (Q8_0)", ft)
	}
	g, err := convertTo(t, testdata("llama"), gguf.TypeF32)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Tensor("output.weight"); !ok {
		t.Fatal("an untied model must carry output.weight")
	}
	if rf, ok := g.Tensor("rope_freqs.weight"); !ok || rf.Shape[0] != 8 {
		t.Fatalf("Llama-3 scaling must give rope_freqs.weight of 8 factors: %+v", rf)
	}
}

// copyDir copies a checkpoint folder so a test can damage it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadCheckpoints(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(dir string)
		mention string
	}{
		{"unsupported architecture", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["architectures"] = []string{"MambaForCausalLM"} })
		}, "MambaForCausalLM"},
		{"missing layer", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 4 })
		}, "blk.3.attn_norm.weight"},
		{"unknown tensor", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 2 })
		}, "model.layers.2"},
		{"vocabulary larger than the model", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["vocab_size"] = 100 })
		}, "outside the model's vocabulary"},
		{"yarn scaling", func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) {
				m["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4}
			})
		}, "yarn"},
		{"safetensors header past the end", func(dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(data, 1<<40)
			os.WriteFile(p, data, 0o644)
		}, "header length"},
		{"safetensors data cut short", func(dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-100], 0o644)
		}, "outside the file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, testdata("qwen2"))
			c.damage(dir)
			_, err := convertTo(t, dir, gguf.TypeF32)
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.mention)
			}
		})
	}
}
