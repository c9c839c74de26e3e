package backbone

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// writeCheckpoint writes a HuggingFace folder with Qwen2.5-0.5B's shapes and random BF16 weights
// (std 0.02, norms 1), unless it is already there. The tokenizer is a real Qwen one, so that
// llama.cpp loads the converted file as it would a downloaded model.
func writeCheckpoint(dir, tokenizer string) error {
	weights := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(weights); err == nil {
		return nil
	}
	if tokenizer == "" {
		return fmt.Errorf("-tokenizer is required to create %s", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tok, err := os.ReadFile(tokenizer)
	if err != nil {
		return err
	}
	cfg, _ := json.MarshalIndent(qwen25Config, "", " ")
	tc := []byte(`{"bos_token": null, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "add_bos_token": false}`)
	for name, data := range map[string][]byte{"config.json": cfg, "tokenizer.json": tok, "tokenizer_config.json": tc} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	log.Printf("writing random weights to %s ...", weights)
	return writeRandomSafetensors(weights+".tmp", shapes())
}

type tensorShape struct {
	name  string
	shape []int
	norm  bool
}

func shapes() []tensorShape {
	h, ffn, vocab := 896, 4864, 151936
	q, kv := 896, 128 // 14 heads and 2 kv heads of 64
	out := []tensorShape{{"model.embed_tokens.weight", []int{vocab, h}, false}, {"model.norm.weight", []int{h}, true}}
	for i := range 24 {
		p := fmt.Sprintf("model.layers.%d.", i)
		out = append(out,
			tensorShape{p + "input_layernorm.weight", []int{h}, true},
			tensorShape{p + "post_attention_layernorm.weight", []int{h}, true},
			tensorShape{p + "self_attn.q_proj.weight", []int{q, h}, false},
			tensorShape{p + "self_attn.q_proj.bias", []int{q}, false},
			tensorShape{p + "self_attn.k_proj.weight", []int{kv, h}, false},
			tensorShape{p + "self_attn.k_proj.bias", []int{kv}, false},
			tensorShape{p + "self_attn.v_proj.weight", []int{kv, h}, false},
			tensorShape{p + "self_attn.v_proj.bias", []int{kv}, false},
			tensorShape{p + "self_attn.o_proj.weight", []int{h, q}, false},
			tensorShape{p + "mlp.gate_proj.weight", []int{ffn, h}, false},
			tensorShape{p + "mlp.up_proj.weight", []int{ffn, h}, false},
			tensorShape{p + "mlp.down_proj.weight", []int{h, ffn}, false},
		)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func writeRandomSafetensors(tmp string, ts []tensorShape) error {
	header := map[string]any{}
	offset := 0
	for _, t := range ts {
		n := 2
		for _, d := range t.shape {
			n *= d
		}
		header[t.name] = map[string]any{"dtype": "BF16", "shape": t.shape, "data_offsets": []int{offset, offset + n}}
		offset += n
	}
	head, _ := json.Marshal(header)
	for len(head)%8 != 0 {
		head = append(head, ' ')
	}
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	binary.Write(w, binary.LittleEndian, uint64(len(head)))
	w.Write(head)
	rng := rand.New(rand.NewPCG(7, 11))
	var buf [2]byte
	for _, t := range ts {
		n := 1
		for _, d := range t.shape {
			n *= d
		}
		for range n {
			v := float32(1)
			if !t.norm {
				v = float32(rng.NormFloat64() * 0.02)
			}
			binary.LittleEndian.PutUint16(buf[:], uint16(math.Float32bits(v)>>16)) // BF16: the top half of an F32
			w.Write(buf[:])
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, tmp[:len(tmp)-len(".tmp")])
}
