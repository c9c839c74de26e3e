package ggml

import (
	"math"

	"github.com/ollama/ollama/ml"
)

// GELUTanh is GELU with the tanh approximation, x * sigmoid(2c(x + 0.044715 x^3)) with
// c = sqrt(2/pi), in float32 ops. ggml's own GELU reads an F16 table, whose ~1e-3 relative
// error is above what the parity tests allow.
func GELUTanh(ctx ml.Context, x ml.Tensor) ml.Tensor {
	inner := x.Add(ctx, x.Mul(ctx, x).Mul(ctx, x).Scale(ctx, 0.044715)).Scale(ctx, 2*math.Sqrt(2/math.Pi))
	return x.Mul(ctx, inner.Sigmoid(ctx))
}
