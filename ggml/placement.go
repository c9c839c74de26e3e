package ggml

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ollama/ollama/ml"

	"github.com/toklip/toklip/gguf"
)

// The number of layers to offload, as ollama's num_gpu and llama.cpp's -ngl count them: the
// last N repeating blocks, and with N above the block count the output layer too.
const (
	AutoLayers = -1      // as many as fit in the GPUs' free memory
	AllLayers  = 1 << 30 // every block and the output layer
)

// GPUReserve is what placement leaves free on each GPU for what the layer sizes do not count:
// ggml's compute buffers (a few hundred MB at batch 512 for a 0.5B-7B model) and the CUDA
// context (about 300-500 MB). A load that still runs out of memory retries with fewer layers.
const GPUReserve = 1 << 30

// LayerSizes are the bytes of a model's layers where ollama's loader places them: Blocks[i] for
// blk.i (with its KV cache), Output for the output layer (output*, and the v., mm. and s.
// tensors, which the loader places with it). The token embedding stays on the CPU.
type LayerSizes struct {
	Blocks []uint64
	Output uint64
}

// SizesOf sums a file's tensors by layer, adding cachePerBlock to each block.
func SizesOf(f *gguf.File, cachePerBlock uint64) LayerSizes {
	var s LayerSizes
	for _, t := range f.Tensors {
		name := t.Name
		switch {
		case strings.HasPrefix(name, "blk."):
			i, err := strconv.Atoi(strings.SplitN(name, ".", 3)[1])
			if err != nil || i < 0 {
				continue
			}
			for len(s.Blocks) <= i {
				s.Blocks = append(s.Blocks, cachePerBlock)
			}
			s.Blocks[i] += t.Bytes()
		case strings.HasPrefix(name, "output") || strings.HasPrefix(name, "v.") || strings.HasPrefix(name, "mm.") || strings.HasPrefix(name, "s."):
			s.Output += t.Bytes()
		}
	}
	return s
}

// Placement is which layers go to which GPU; the rest run on the CPU.
type Placement struct {
	GPUs   []GPUShare
	Blocks int    // the model's repeating blocks; layer index Blocks is the output layer
	Note   string // why fewer layers than asked went to a GPU, if they did
}

// GPUShare is one GPU's part of a placement.
type GPUShare struct {
	Device Device
	Layers []int // layer indices, ascending
	Bytes  uint64
}

// Offloaded is the number of layers on GPUs, counted as num_gpu counts them.
func (p Placement) Offloaded() int {
	n := 0
	for _, g := range p.GPUs {
		n += len(g.Layers)
	}
	return n
}

// String says where the layers are: "all 25 layers on CUDA0 (NVIDIA H200)", "12 of 25 layers on
// CUDA0 ..., the rest on the CPU", "CPU".
func (p Placement) String() string {
	n, total := p.Offloaded(), p.Blocks+1
	if n == 0 {
		return "all on the CPU"
	}
	var on []string
	for _, g := range p.GPUs {
		on = append(on, fmt.Sprintf("%d on %s (%s, %.1f GiB)", len(g.Layers), g.Device.Name, g.Device.Description, float64(g.Bytes)/(1<<30)))
	}
	s := fmt.Sprintf("%d of %d layers on the GPU: %s", n, total, strings.Join(on, ", "))
	if n < total {
		s += "; the rest on the CPU"
	}
	return s
}

// GPULayers is the placement as ollama's backend takes it.
func (p Placement) GPULayers() ml.GPULayersList {
	var out ml.GPULayersList
	for _, g := range p.GPUs {
		if len(g.Layers) > 0 {
			out = append(out, ml.GPULayers{DeviceID: ml.DeviceID{ID: g.Device.ID, Library: g.Device.Library}, Layers: g.Layers})
		}
	}
	return out
}

// Place decides where want layers go (AutoLayers: as many as fit; N: the last N blocks, the
// output layer too above the block count; 0: none) on devices' GPUs, filling the GPU with the
// most free memory first, each within its free memory less GPUReserve. The layers that do not
// fit stay on the CPU, and Note says so.
func Place(devices []Device, sizes LayerSizes, want int) Placement {
	p := Placement{Blocks: len(sizes.Blocks)}
	if want == 0 {
		return p
	}
	var gpus []Device
	for _, d := range devices {
		if d.Kind == DeviceGPU || d.Kind == DeviceIGPU {
			gpus = append(gpus, d)
		}
	}
	if len(gpus) == 0 {
		if want != AutoLayers {
			p.Note = "no GPU was found (no GPU backend library in " + strings.Join(LibraryPathsHint(), ", ") + ", or its driver cannot run): running on the CPU"
		}
		return p
	}
	slices.SortStableFunc(gpus, func(a, b Device) int { return -compareU64(a.FreeBytes, b.FreeBytes) })
	total := p.Blocks + 1
	n := total
	if want != AutoLayers {
		n = min(want, total)
	}
	// The layers to offload, as llama.cpp's -ngl n takes them: the last n blocks, or, above the
	// block count, every block and the output layer.
	var order []int
	if n <= p.Blocks {
		for i := p.Blocks - n; i < p.Blocks; i++ {
			order = append(order, i)
		}
	} else {
		for i := range total {
			order = append(order, i)
		}
	}
	size := func(layer int) uint64 {
		if layer == p.Blocks {
			return sizes.Output
		}
		return sizes.Blocks[layer]
	}
	// Fill GPUs from the front of the order's end: the layers nearest the output first, so that
	// what fits is always "the last k".
	placed := make([][]int, len(gpus))
	used := make([]uint64, len(gpus))
	g, fitted := 0, 0
	for i := len(order) - 1; i >= 0 && g < len(gpus); {
		budget := uint64(0)
		if gpus[g].FreeBytes > GPUReserve {
			budget = gpus[g].FreeBytes - GPUReserve
		}
		if used[g]+size(order[i]) > budget {
			g++
			continue
		}
		placed[g] = append(placed[g], order[i])
		used[g] += size(order[i])
		fitted++
		i--
	}
	if fitted == 0 && n > p.Blocks && p.Blocks > 0 {
		// The output layer (the largest, with a big vocabulary) goes first and did not fit:
		// blocks alone may.
		q := Place(devices, sizes, p.Blocks)
		if q.Offloaded() > 0 {
			return q
		}
	}
	for i, d := range gpus {
		if len(placed[i]) > 0 {
			slices.Sort(placed[i])
			p.GPUs = append(p.GPUs, GPUShare{Device: d, Layers: placed[i], Bytes: used[i]})
		}
	}
	if fitted < n {
		var free uint64
		for _, d := range gpus {
			free += d.FreeBytes
		}
		asked := "all"
		if want != AutoLayers && want < total {
			asked = strconv.Itoa(want)
		}
		p.Note = fmt.Sprintf("%s layers asked for, %d of %d fit in the GPUs' %.1f GiB free (less %.1f GiB reserved on each): the rest run on the CPU",
			asked, fitted, total, float64(free)/(1<<30), float64(GPUReserve)/(1<<30))
	}
	return p
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LibraryPathsHint is where backend libraries are looked for, for messages (without loading them).
func LibraryPathsHint() []string {
	if paths := LibraryPaths(); len(paths) > 0 {
		return paths
	}
	return []string{"lib/ollama beside the executable's folder"}
}
