package llm_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
)

// rewrite copies the GGUF at src after mutate has edited its keys and tensors.
func rewrite(t *testing.T, src string, mutate func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor) string {
	t.Helper()
	f, err := gguf.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var ts []*gguf.Tensor
	for _, info := range f.Tensors {
		data, err := f.ReadTensorData(info)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, &gguf.Tensor{Name: info.Name, Type: info.Type, Shape: info.Shape, Data: data})
	}
	kv := maps.Clone(f.KV)
	ts = mutate(kv, ts)
	out := filepath.Join(t.TempDir(), "bad.gguf")
	if err := gguf.WriteFile(out, kv, ts); err != nil {
		t.Fatal(err)
	}
	return out
}

func without(ts []*gguf.Tensor, name string) []*gguf.Tensor {
	return slices.DeleteFunc(ts, func(t *gguf.Tensor) bool { return t.Name == name })
}

func find(ts []*gguf.Tensor, name string) *gguf.Tensor {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	panic("no tensor " + name)
}

func TestBadBackbonesGiveClearErrors(t *testing.T) {
	src := convertModel(t, "qwen2", gguf.TypeF32)
	cases := []struct {
		name    string
		mutate  func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor
		kind    error
		mention string
	}{
		{"missing tensor", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			return without(ts, "blk.1.ffn_up.weight")
		}, gguf.ErrMissingTensor, "blk.1.ffn_up.weight"},
		{"wrong shape", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			k := find(ts, "blk.0.attn_k.weight")
			k.Shape = []uint64{k.Shape[1], k.Shape[0]} // transposed: [32 64] instead of [64 32]
			return ts
		}, gguf.ErrShape, "blk.0.attn_k.weight"},
		{"norm not F32", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			n := find(ts, "blk.2.attn_norm.weight")
			n.Type, n.Data = gguf.TypeF16, n.Data[:len(n.Data)/2]
			return ts
		}, gguf.ErrType, "blk.2.attn_norm.weight"},
		{"missing key", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			delete(kv, "qwen2.embedding_length")
			return ts
		}, gguf.ErrMissingKey, "qwen2.embedding_length"},
		{"key of the wrong type", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			kv["qwen2.block_count"] = int32(3) // ollama would read this as 0 layers
			return ts
		}, gguf.ErrKeyType, "qwen2.block_count"},
		{"a block beyond block_count", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			extra := *find(ts, "blk.0.attn_norm.weight")
			extra.Name = "blk.7.attn_norm.weight" // ollama's backend panics placing it
			return append(ts, &extra)
		}, gguf.ErrPlacement, "blk.7.attn_norm.weight"},
		{"image keys incomplete", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			delete(kv, "qwen2.image.token_count")
			return ts
		}, gguf.ErrFormat, "qwen2.image.token_count"},
		{"image ids past the vocabulary", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			kv["qwen2.image.first_token_id"] = uint32(500)
			return ts
		}, gguf.ErrFormat, "qwen2.image.token_count"},
		{"unsupported rope scaling", func(kv map[string]any, ts []*gguf.Tensor) []*gguf.Tensor {
			kv["qwen2.rope.scaling.type"] = "yarn"
			return ts
		}, gguf.ErrFormat, "qwen2.rope.scaling.type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := rewrite(t, src, c.mutate)
			_, err := llm.Load(context.Background(), path, llm.Options{})
			if err == nil {
				t.Fatal("Load accepted a bad backbone")
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("error %q: want kind %q naming the file and %q", err, c.kind, c.mention)
			}
		})
	}
}

func TestForwardRejectsBadInputs(t *testing.T) {
	b := load(t, convertModel(t, "llama", gguf.TypeF32), llm.Options{Sequences: 1, ContextLength: 8})
	s := acquire(t, b)
	if _, err := b.Acquire(); !errors.Is(err, llm.ErrNoFreeSequence) {
		t.Fatalf("second Acquire with one slot: %v", err)
	}
	bad := [][]llm.Input{
		{{Seq: s, Token: 512}},
		{{Seq: s, Token: -1}},
		{{Seq: s + 1, Token: 1}},
		{{Seq: s, Embedding: make([]float32, 3)}},
	}
	for _, in := range bad {
		if _, err := b.Forward(context.Background(), in); err == nil {
			t.Fatalf("Forward accepted %+v", in)
		}
	}
	if _, err := b.Forward(context.Background(), tokens(s, make([]int32, 9), false)); !errors.Is(err, llm.ErrContextFull) {
		t.Fatalf("9 tokens in a context of 8: %v", err)
	}
	if b.Len(s) != 0 {
		t.Fatalf("a refused Forward changed the sequence: Len = %d", b.Len(s))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Forward(ctx, tokens(s, []int32{1, 2}, true)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Forward: %v", err)
	}
}
