package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

const (
	testCheckpoint = "../testdata/toklip-tiny.pt"
	testTokenizer  = "../testdata/tokenizer/tokenizer.json"
)

func tinyOptions() Options { return Options{Tokenizer: testTokenizer, Heads: 4, Groups: 8} }

// The checkpoint holds what a real training checkpoint holds beside the weights (optimizer
// state, a numpy scalar); the converted file holds exactly the kept state_dict tensors, and
// nothing the official loader would skip.
func TestRoundTrip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := Convert(testCheckpoint, out, tinyOptions()); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := openCheckpoint(testCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	sd, err := ck.stateDict()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for key, ref := range sd {
		name, _ := ggufName(key)
		if name == "" {
			if !strings.Contains(key, "patch_embed") && !strings.HasSuffix(key, "codebook_used") {
				t.Errorf("%s was dropped", key)
			}
			continue
		}
		info, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("%s (%s) is not in the converted file", key, name)
		}
		want, err := ck.floats(key, ref)
		if err != nil {
			t.Fatal(err)
		}
		data, err := f.ReadTensorData(info)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := ggml.EncodeTensor(name, gguf.TypeF32, info.Shape, want)
		if info.Type != gguf.TypeF32 || !bytes.Equal(data, enc.Data) {
			t.Fatalf("%s: the converted values differ from the checkpoint's", key)
		}
		kept++
	}
	if kept != len(f.Tensors) {
		t.Fatalf("kept %d state_dict tensors, the file has %d", kept, len(f.Tensors))
	}
	root, _ := asDict(ck.root)
	if _, ok := root["optimizer"]; !ok {
		t.Fatal("the test checkpoint lacks optimizer state: it does not test what it should")
	}
	if f.KV["toklip.image_size"] != uint32(128) || f.KV["tokenizer.ggml.model"] != "llama" {
		t.Fatalf("image size %v, tokenizer %v", f.KV["toklip.image_size"], f.KV["tokenizer.ggml.model"])
	}
}

func TestQuantizedViT(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny-f16.gguf")
	opts := tinyOptions()
	opts.Type = gguf.TypeF16
	if err := Convert(testCheckpoint, out, opts); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]gguf.TensorType{
		"blk.0.attn_qkv.weight": gguf.TypeF16, "s.blk.1.ffn_up.weight": gguf.TypeF16,
		"blk.0.attn_qkv.bias": gguf.TypeF32, "v.codebook.weight": gguf.TypeF32,
		"v.enc.down.0.res.0.conv1.weight": gguf.TypeF32, "v.dec.conv_out.weight": gguf.TypeF32,
	} {
		if info, _ := f.Tensor(name); info.Type != want {
			t.Errorf("%s is %s, want %s", name, info.Type, want)
		}
	}
}

// Keys the official loader would skip are errors here, each naming the key.
func TestBadStateDicts(t *testing.T) {
	ck, err := openCheckpoint(testCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	base, err := ck.stateDict()
	if err != nil {
		t.Fatal(err)
	}
	clone := func() map[string]*tensorRef {
		m := make(map[string]*tensorRef, len(base))
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		edit    func(map[string]*tensorRef)
		mention string
	}{
		{"unknown key", func(sd map[string]*tensorRef) { sd["visual.trunk.extra.weight"] = base["visual.trunk.norm.weight"] }, `"visual.trunk.extra.weight"`},
		{"missing key", func(sd map[string]*tensorRef) { delete(sd, "visual.trunk.blocks.1.mlp.fc2.bias") }, "blk.1.ffn_down.bias"},
		{"wrong shape", func(sd map[string]*tensorRef) { sd["visual.trunk.norm.bias"] = base["visual.trunk.vq_table.bias"] }, `"visual.trunk.norm.bias"`},
		{"TokLIP-XL", func(sd map[string]*tensorRef) {
			sd["visual.trunk.vq.encoder.down.0.block.0.conv1.weight"] = base["visual.trunk.norm.weight"]
		}, "TokLIP-XL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sd := clone()
			c.edit(sd)
			cfg, err := inferConfig(testCheckpoint, sd, tinyOptions())
			if err == nil {
				_, err = mapTensors(ck, sd, cfg, gguf.TypeF32)
			}
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("got %v, want an error naming %s", err, c.mention)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	notZip := filepath.Join(dir, "x.pt")
	os.WriteFile(notZip, []byte("not a checkpoint"), 0o644)
	out := filepath.Join(dir, "out.gguf")
	if err := Convert(notZip, out, tinyOptions()); err == nil || !strings.Contains(err.Error(), "not a PyTorch zip checkpoint") {
		t.Errorf("not a zip: %v", err)
	}
	noTok := tinyOptions()
	noTok.Tokenizer = ""
	if err := Convert(testCheckpoint, out, noTok); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("no tokenizer: %v", err)
	}
	wrongHeads := tinyOptions()
	wrongHeads.Heads = 5
	if err := Convert(testCheckpoint, out, wrongHeads); err == nil || !strings.Contains(err.Error(), "heads") {
		t.Errorf("64 wide in 5 heads: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed conversions left files behind: %d entries", len(entries))
	}
}
