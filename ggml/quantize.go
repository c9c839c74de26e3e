package ggml

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// File types as llama.cpp records them in general.file_type (LLAMA_FTYPE_*).
var fileTypes = map[TensorType]uint32{TypeF32: 0, TypeF16: 1, TypeQ4_0: 2, TypeQ8_0: 7, TypeBF16: 32}

// FileType is the general.file_type value for a model whose weights are mostly of type t.
func FileType(t TensorType) (uint32, bool) {
	ft, ok := fileTypes[t]
	return ft, ok
}

// ParseType reads a target type name as the command line gives it: F32, F16, BF16, Q8_0, Q4_0.
func ParseType(s string) (TensorType, error) {
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
func QuantizedType(name string, shape []uint64, current, target TensorType, keep func(string) bool) TensorType {
	switch {
	case len(trimOnes(shape)) < 2,
		!strings.HasSuffix(name, ".weight"),
		strings.Contains(name, "_norm."),
		strings.HasPrefix(name, "v."), strings.HasPrefix(name, "mm."),
		keep != nil && keep(name):
		return current
	case shape[0]%target.BlockSize() != 0:
		return TypeF16
	}
	return target
}

// QuantizeFile rewrites the GGUF at src to dst with its weights converted to target, by the
// rules of QuantizedType, which the architecture's checker may overrule. Tensors are converted
// one at a time as they are written; dst appears only if it passes Open's checks.
func QuantizeFile(src, dst string, target TensorType, keep func(string) bool) error {
	if _, ok := FileType(target); !ok {
		return fmt.Errorf("quantize: target type %s is not supported", target)
	}
	f, err := Open(src)
	if err != nil {
		return err
	}
	kv := maps.Clone(f.KV)
	ft, _ := FileType(target)
	kv["general.file_type"] = ft
	delete(kv, "general.parameter_count")

	planned := make([]TensorType, len(f.Tensors))
	for i, info := range f.Tensors {
		planned[i] = QuantizedType(info.Name, info.Shape, info.Type, target, keep)
	}
	if err := f.keepRequiredTypes(planned); err != nil {
		return err
	}
	tensors := make([]*Tensor, len(f.Tensors))
	for i, info := range f.Tensors {
		to := planned[i]
		tensors[i] = &Tensor{Name: info.Name, Type: to, Shape: info.Shape, Source: func() ([]byte, error) {
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
	return WriteModel(dst, kv, tensors)
}

// keepRequiredTypes lets the architecture's checker overrule the general rules of QuantizedType:
// a tensor it accepts only in another type (TokLIP's text position table, read in F32) keeps the
// type it has. The checker reports one tensor at a time, so the planned file is checked again
// after each change; a failure that no type change explains is returned as is.
func (f *File) keepRequiredTypes(planned []TensorType) error {
	arch, err := Key[string](f, "general.architecture")
	if err != nil {
		return err
	}
	archMu.RLock()
	check := architectures[arch]
	archMu.RUnlock()
	view := *f
	view.Tensors = slices.Clone(f.Tensors) // byName indexes stay valid: same order
	for i := range view.Tensors {
		view.Tensors[i].Type = planned[i]
	}
	for range len(planned) + 1 {
		err := check(&view)
		var fe *FileError
		if err == nil || !errors.As(err, &fe) || fe.Kind != ErrType {
			return err
		}
		i, ok := f.byName[fe.Tensor]
		if !ok || planned[i] == f.Tensors[i].Type {
			return err
		}
		planned[i] = f.Tensors[i].Type
		view.Tensors[i].Type = planned[i]
	}
	return nil
}
