// Package ggml is toklip's side of ollama's GGML backend: loading a checked GGUF (package gguf)
// onto the backend with its panics turned into errors, the CPU report and thread count, graph
// computation across models (lanes.go), the few ops toklip adds, and encoding tensors with
// ggml's own converters and quantizers (F16, BF16, Q8_0, Q4_0) for the converters and `toklip
// quantize`.
package ggml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
	"github.com/toklip/toklip/gguf"
)

// Options say how a model is placed on ggml.
type Options struct {
	Threads        int  // CPU threads for ggml's kernels; 0 means DefaultThreads()
	FlashAttention bool // use ggml's fused attention kernel
	// GPULayers is how many layers go to GPUs, counted as ollama's num_gpu: AutoLayers (as many
	// as fit), AllLayers, N (the last N blocks, the output layer above the block count), or 0:
	// none, the zero value, so that a library caller gets the CPU unless it asks.
	GPULayers int
	// CachePerBlock is the bytes each block's KV cache will take, counted when placing.
	CachePerBlock uint64
	// PlainWeights keeps quantized weights in the file's layout on the CPU, where a backbone
	// would repack them (Repack): for comparisons and benchmarks.
	PlainWeights bool
	// OwnCPU computes the model's graphs on a ggml CPU backend of its own rather than the one
	// ollama shares between all models of the process, so that they run beside other models'
	// graphs, sharing the cores, instead of taking turns with them (lanes.go). For a model with
	// long graphs (TokLIP's VQ decode takes seconds) next to one with short ones (decode steps).
	OwnCPU bool
}

// LoadModel checks the file at path (Open), builds the ollama model registered for its
// architecture and loads its weights; Close closes it. A panic inside ollama's backend, which
// the checks are there to prevent, still comes back as an error of kind ErrInternal, never as a
// crash.
func LoadModel(ctx context.Context, path string, opts Options) (model.Model, *gguf.File, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	want := opts.GPULayers
	for {
		var place Placement
		if want != 0 {
			place = Place(Devices(), SizesOf(f, opts.CachePerBlock), want)
			if place.Note != "" {
				slog.Warn("placement: "+place.Note, "model", path)
			}
			if place.Offloaded() > 0 {
				slog.Info("placement: "+place.String(), "model", path)
			}
		}
		m, err := load(ctx, path, opts, place.GPULayers())
		var noMem ml.ErrNoMem
		if errors.As(err, &noMem) && place.Offloaded() > 0 {
			// The estimate missed (another process took memory, or the compute buffers are
			// larger than reserved): half the layers, down to none.
			want = place.Offloaded() / 2
			slog.Warn("placement: out of GPU memory, retrying with fewer layers", "layers", want, "model", path)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return m, f, nil
	}
}

// load builds and loads the model with its layers placed on GPUs as layers says.
func load(ctx context.Context, path string, opts Options, layers ml.GPULayersList) (m model.Model, err error) {
	threads := opts.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	params := ml.BackendParams{AllocMemory: true, NumThreads: threads, FlashAttention: ml.FlashAttentionDisabled, GPULayers: layers}
	if opts.FlashAttention {
		params.FlashAttention = ml.FlashAttentionEnabled
	}
	defer func() {
		if r := recover(); r != nil {
			if m != nil {
				m.Backend().Close()
			}
			m = nil
			if noMem, ok := r.(ml.ErrNoMem); ok { // out of memory at allocation: the caller may retry
				err = noMem
				return
			}
			err = &gguf.FileError{Path: path, Kind: ErrInternal, Detail: fmt.Sprint(r)}
		}
	}()
	m, err = model.New(path, params)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := m.Backend().Load(ctx, nil); err != nil {
		m.Backend().Close()
		return nil, fmt.Errorf("load weights of %s: %w", path, err)
	}
	if err := register(m, threads, opts.OwnCPU); err != nil {
		m.Backend().Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}
