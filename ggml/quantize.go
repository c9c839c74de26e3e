package ggml

import (
	"fmt"
	"maps"
	"strings"

	"github.com/toklip/toklip/gguf"
)

// File types as llama.cpp records them in general.file_type (LLAMA_FTYPE_*).
var fileTypes = map[gguf.TensorType]uint32{gguf.TypeF32: 0, gguf.TypeF16: 1, gguf.TypeQ4_0: 2, gguf.TypeQ8_0: 7, gguf.TypeBF16: 32}

// FileType is the general.file_type value for a model whose weights are mostly of type t.
func FileType(t gguf.TensorType) (uint32, bool) {
	ft, ok := fileTypes[t]
	return ft, ok
}

// ParseType reads a target type name as the command line gives it: F32, F16, BF16, Q8_0, Q4_0.
func ParseType(s string) (gguf.TensorType, error) {
	for t := range fileTypes {
		if strings.EqualFold(t.String(), s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown type %q: want F32, F16, BF16, Q8_0 or Q4_0", s)
}

// QuantizedType is the type a tensor gets when its model is converted to target. Only matrix
// weights change: 1-D tensors (norms, biases) stay F32, as do norm weights and the vision and
// projector tensors under v. and mm. (they are small and sensitive, as in ollama's quantizer),
// and any name keep reports. A matrix whose rows do not divide into target's blocks falls back
// to F16, as llama.cpp does.
func QuantizedType(name string, shape []uint64, current, target gguf.TensorType, keep func(string) bool) gguf.TensorType {
	switch {
	case matrixDims(shape) < 2,
		!strings.HasSuffix(name, ".weight"),
		strings.Contains(name, "_norm."),
		strings.HasPrefix(name, "v."), strings.HasPrefix(name, "mm."),
		keep != nil && keep(name):
		return current
	case shape[0]%target.BlockSize() != 0:
		return gguf.TypeF16
	}
	return target
}

// QuantizeFile rewrites the GGUF at src to dst with its weights converted to target, by the
// rules of QuantizedType, which the architecture's checker may overrule. Tensors are converted
// one at a time as they are written; dst appears only if it passes gguf.Open's checks.
func QuantizeFile(src, dst string, target gguf.TensorType, keep func(string) bool) error {
	if _, ok := FileType(target); !ok {
		return fmt.Errorf("quantize: target type %s is not supported", target)
	}
	f, err := gguf.Open(src)
	if err != nil {
		return err
	}
	kv := maps.Clone(f.KV)
	ft, _ := FileType(target)
	kv["general.file_type"] = ft
	delete(kv, "general.parameter_count")

	planned := make([]gguf.TensorType, len(f.Tensors))
	for i, info := range f.Tensors {
		planned[i] = QuantizedType(info.Name, info.Shape, info.Type, target, keep)
	}
	if err := f.KeepRequiredTypes(planned); err != nil {
		return err
	}
	tensors := make([]*gguf.Tensor, len(f.Tensors))
	for i, info := range f.Tensors {
		to := planned[i]
		tensors[i] = &gguf.Tensor{Name: info.Name, Type: to, Shape: info.Shape, Source: func() ([]byte, error) {
			data, err := f.ReadTensorData(info)
			if err != nil || to == info.Type {
				return data, err
			}
			values, err := DecodeFloats(info.Type, data, info.Elements())
			if err != nil {
				return nil, err
			}
			return encode(to, info.Shape, values), nil
		}}
	}
	return gguf.WriteModel(dst, kv, tensors)
}

// matrixDims counts the dimensions of shape that are not 1.
func matrixDims(shape []uint64) int {
	n := 0
	for _, d := range shape {
		if d != 1 {
			n++
		}
	}
	return n
}
