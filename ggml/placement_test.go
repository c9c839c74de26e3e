package ggml_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

const gib = 1 << 30

func gpu(name string, free uint64) ggml.Device {
	return ggml.Device{Name: name, Description: "test GPU", Kind: ggml.DeviceGPU, ID: name + "-id", Library: "CUDA", FreeBytes: free, TotalBytes: free}
}

// Placement on fake device lists: the last layers first (as llama.cpp's -ngl counts), the output
// layer only with every block, the GPU with the most free memory first, the reserve left free,
// and a note whenever fewer layers than asked went to a GPU.
func TestPlace(t *testing.T) {
	cpu := ggml.Device{Name: "CPU", Kind: ggml.DeviceCPU, FreeBytes: 64 * gib}
	sizes := ggml.LayerSizes{Blocks: slices.Repeat([]uint64{gib / 2}, 10), Output: gib} // 6 GiB in all
	layers := func(p ggml.Placement) [][]int {
		var out [][]int
		for _, g := range p.GPUs {
			out = append(out, g.Layers)
		}
		return out
	}
	cases := []struct {
		name    string
		devices []ggml.Device
		want    int
		layers  [][]int
		note    string
	}{
		{"no GPU, auto: the CPU, quietly", []ggml.Device{cpu}, ggml.AutoLayers, nil, ""},
		{"no GPU, asked for: the CPU, said", []ggml.Device{cpu}, 4, nil, "no GPU was found"},
		{"none asked", []ggml.Device{cpu, gpu("CUDA0", 80*gib)}, 0, nil, ""},
		{"auto on a large GPU: all", []ggml.Device{cpu, gpu("CUDA0", 80*gib)}, ggml.AutoLayers, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, ""},
		{"all", []ggml.Device{cpu, gpu("CUDA0", 80*gib)}, ggml.AllLayers, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, ""},
		{"the last 4 blocks", []ggml.Device{cpu, gpu("CUDA0", 80*gib)}, 4, [][]int{{6, 7, 8, 9}}, ""},
		{"11 is every block and the output", []ggml.Device{cpu, gpu("CUDA0", 80*gib)}, 11, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, ""},
		// 3 GiB free less the 1 GiB reserve: the output (1 GiB) and the last 2 blocks.
		{"auto on a small GPU: what fits", []ggml.Device{cpu, gpu("CUDA0", 3*gib)}, ggml.AutoLayers, [][]int{{8, 9, 10}}, "all layers asked for, 3 of 11 fit"},
		{"asked for more than fits", []ggml.Device{cpu, gpu("CUDA0", 3*gib)}, ggml.AllLayers, [][]int{{8, 9, 10}}, "3 of 11 fit"},
		{"a GPU smaller than the reserve", []ggml.Device{cpu, gpu("CUDA0", gib/2)}, ggml.AutoLayers, nil, "0 of 11 fit"},
		// 0.9 GiB usable: no room for the 1 GiB output layer (first in line), room for one block.
		{"room for a block but not the output layer", []ggml.Device{cpu, gpu("CUDA0", gib+gib*9/10)}, ggml.AutoLayers, [][]int{{9}}, "1 of 11 fit"},
		// The larger GPU first: 4 GiB usable takes the output and 6 blocks, the smaller one 2 more.
		{"two GPUs, the larger first", []ggml.Device{cpu, gpu("CUDA1", 2*gib), gpu("CUDA0", 5*gib)}, ggml.AutoLayers,
			[][]int{{4, 5, 6, 7, 8, 9, 10}, {2, 3}}, "9 of 11 fit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ggml.Place(c.devices, sizes, c.want)
			if got := layers(p); !slices.EqualFunc(got, c.layers, slices.Equal) {
				t.Fatalf("layers %v, want %v (%s)", got, c.layers, p)
			}
			if (c.note == "") != (p.Note == "") || !strings.Contains(p.Note, c.note) {
				t.Fatalf("note %q, want %q", p.Note, c.note)
			}
			if p.Offloaded() != len(slices.Concat(c.layers...)) || len(p.GPULayers()) != len(c.layers) {
				t.Fatalf("offloaded %d, %d GPU entries", p.Offloaded(), len(p.GPULayers()))
			}
			for i, g := range p.GPULayers() {
				if g.ID != p.GPUs[i].Device.ID || g.Library != "CUDA" {
					t.Fatalf("device id %+v", g.DeviceID)
				}
			}
		})
	}
}

// SizesOf counts each tensor where ollama's loader places it: blocks by their index (with the
// cache), the output layer with TokLIP's v./s. and the projector's mm. tensors, the token
// embedding on the CPU (nowhere).
func TestSizesOf(t *testing.T) {
	var ts []*gguf.Tensor
	for _, c := range []struct {
		name string
		n    int
	}{{"token_embd.weight", 100}, {"blk.0.attn_q.weight", 10}, {"blk.1.attn_q.weight", 20}, {"blk.1.ffn_up.weight", 5},
		{"output.weight", 7}, {"output_norm.weight", 1}, {"mm.0.weight", 3}, {"v.codebook.weight", 2}} {
		enc, err := ggml.EncodeTensor(c.name, gguf.TypeF32, []uint64{uint64(c.n)}, make([]float32, c.n))
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, enc)
	}
	path := filepath.Join(t.TempDir(), "sizes.gguf")
	if err := gguf.WriteFile(path, map[string]any{"general.architecture": "sizes"}, ts); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := ggml.SizesOf(f, 1000)
	if !slices.Equal(s.Blocks, []uint64{1000 + 40, 1000 + 100}) || s.Output != 4*(7+1+3+2) {
		t.Fatalf("sizes %+v", s)
	}
}
