package ggml

import (
	"math"
	"sync"

	"github.com/ollama/ollama/ml"
)

// GELUTanh is GELU with the tanh approximation, x * sigmoid(2c(x + 0.044715 x^3)) with
// c = sqrt(2/pi), in float32 ops. ggml's own GELU reads an F16 table, whose ~1e-3 relative
// error is above what the parity tests allow.
func GELUTanh(ctx ml.Context, x ml.Tensor) ml.Tensor {
	inner := x.Add(ctx, x.Mul(ctx, x).Mul(ctx, x).Scale(ctx, 0.044715)).Scale(ctx, 2*math.Sqrt(2/math.Pi))
	return x.Mul(ctx, inner.Sigmoid(ctx))
}

// computeMu serializes graph computation across models: ollama's ggml layer creates one ggml
// backend per device for the whole process (ml/backend/ggml: the package-level backends map), and
// a CPU backend's work buffer and thread pool are not safe for two graphs at once. Two models
// computing concurrently (the LLM and TokLIP's incremental encoder in one generation step, say)
// would otherwise corrupt each other's results.
var computeMu sync.Mutex

// Compute runs the graph that produces t and returns t's values.
func Compute(ctx ml.Context, t ml.Tensor) []float32 {
	computeMu.Lock()
	defer computeMu.Unlock()
	ctx.Forward(t).Compute(t)
	return t.Floats()
}

// Reserve sizes the backend's compute buffers for the graph that produces t.
func Reserve(ctx ml.Context, t ml.Tensor) {
	computeMu.Lock()
	defer computeMu.Unlock()
	ctx.Forward(t).Reserve()
}
