// Package ggml is toklip's side of ollama's GGML backend: loading a checked GGUF (package gguf)
// onto the backend with its panics turned into errors, the CPU report and thread count, graph
// computation one at a time across models, the few ops toklip adds, and encoding tensors with
// ggml's own converters and quantizers (F16, BF16, Q8_0, Q4_0) for the converters and `toklip
// quantize`.
package ggml

import (
	"context"
	"fmt"

	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
	"github.com/toklip/toklip/gguf"
)

// Options say how a model is placed on ggml.
type Options struct {
	Threads        int  // CPU threads for ggml's kernels; 0 means DefaultThreads()
	FlashAttention bool // use ggml's fused attention kernel
}

// LoadModel checks the file at path (Open), builds the ollama model registered for its
// architecture and loads its weights. A panic inside ollama's backend, which the checks are
// there to prevent, still comes back as an error of kind ErrInternal, never as a crash.
func LoadModel(ctx context.Context, path string, opts Options) (m model.Model, f *gguf.File, err error) {
	f, err = gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	params := ml.BackendParams{AllocMemory: true, NumThreads: threads, FlashAttention: ml.FlashAttentionDisabled}
	if opts.FlashAttention {
		params.FlashAttention = ml.FlashAttentionEnabled
	}

	defer func() {
		if r := recover(); r != nil {
			if m != nil {
				m.Backend().Close()
			}
			m, f, err = nil, nil, &gguf.FileError{Path: path, Kind: ErrInternal, Detail: fmt.Sprint(r)}
		}
	}()
	m, err = model.New(path, params)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := m.Backend().Load(ctx, nil); err != nil {
		m.Backend().Close()
		return nil, nil, fmt.Errorf("load weights of %s: %w", path, err)
	}
	return m, f, nil
}
