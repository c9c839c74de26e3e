package ggml

import (
	"errors"
	"fmt"
	"math"
	"slices"

	ggmlbackend "github.com/ollama/ollama/ml/backend/ggml"

	"github.com/toklip/toklip/gguf"
)

// ErrInternal marks a panic inside ollama's backend, turned into an error.
var ErrInternal = errors.New("internal error in the ggml backend")

// EncodeTensor encodes float32 values, in ggml order, as a tensor of type typ (F32, F16, BF16,
// or a quantized type, whose block size must divide the first dimension), with ggml's own
// converters and quantizers: what a GGUF holds is what ggml would have made of the values.
func EncodeTensor(name string, typ gguf.TensorType, shape []uint64, values []float32) (*gguf.Tensor, error) {
	t := &gguf.Tensor{Name: name, Type: typ, Shape: slices.Clone(shape)}
	if err := t.CheckValues(len(values)); err != nil {
		return nil, err
	}
	t.Data = encode(typ, shape, values)
	return t, nil
}

func encode(typ gguf.TensorType, shape []uint64, values []float32) []byte {
	if typ == gguf.TypeF32 {
		out := make([]byte, 4*len(values))
		for i, v := range values {
			b := math.Float32bits(v)
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		}
		return out
	}
	// Quantization is row by row, so any shape is its rows: [ne0, everything else].
	rows := uint64(len(values)) / shape[0]
	return ggmlbackend.Quantize(typ, values, []uint64{shape[0], rows})
}

// DecodeFloats converts a tensor's encoded bytes back to float32.
func DecodeFloats(typ gguf.TensorType, data []byte, elements uint64) ([]float32, error) {
	if !gguf.Supported(typ) {
		return nil, fmt.Errorf("decode: type %s is not supported", typ)
	}
	if uint64(len(data)) != elements/typ.BlockSize()*typ.TypeSize() || elements%typ.BlockSize() != 0 {
		return nil, fmt.Errorf("decode %s: %d bytes do not hold %d values", typ, len(data), elements)
	}
	if elements == 0 { // an empty tensor, which the formats allow; ggml's converter wants at least one block
		return []float32{}, nil
	}
	if typ == gguf.TypeF32 {
		out := make([]float32, elements)
		for i := range out {
			out[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		return out, nil
	}
	return ggmlbackend.ConvertToF32(data, uint32(typ), elements), nil
}
