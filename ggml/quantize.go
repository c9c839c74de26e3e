package ggml

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
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

// Mix is what a quantized file is made of, as llama.cpp's quantize names it (its "ftype"): a
// base type for the weight matrices and, for the K-quant mixes, llama.cpp's rules that give
// some tensors more bits (Q4_K_M: the output head Q6_K, and attn_v and ffn_down Q6_K in the
// first and last eighth of the layers and every third between). A matrix whose rows do not
// divide into its type's blocks falls back as llama.cpp's does (Q4_K to Q5_0, Q6_K to Q8_0, then
// F16), so the file holds the same types as llama-quantize makes of the same input.
type Mix struct {
	Name     string
	FileType uint32 // general.file_type
	Base     gguf.TensorType
}

// Mixes are the mixes toklip makes: the plain types, and llama.cpp's Q4_K_M and Q6_K.
var Mixes = []Mix{
	{"F32", 0, gguf.TypeF32}, {"F16", 1, gguf.TypeF16}, {"BF16", 32, gguf.TypeBF16},
	{"Q8_0", 7, gguf.TypeQ8_0}, {"Q4_0", 2, gguf.TypeQ4_0}, {"Q4_K_M", 15, gguf.TypeQ4_K}, {"Q6_K", 18, gguf.TypeQ6_K},
}

// ParseMix reads a mix name as the command line gives it.
func ParseMix(s string) (Mix, error) {
	var names []string
	for _, m := range Mixes {
		if strings.EqualFold(m.Name, s) {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return Mix{}, fmt.Errorf("unknown type %q: want %s", s, strings.Join(names, ", "))
}

// Types plans the type of each tensor of f for the mix (in f's order); keep names tensors that
// stay as they are.
func (m Mix) Types(f *gguf.File, keep func(string) bool) []gguf.TensorType {
	out := make([]gguf.TensorType, len(f.Tensors))
	kmix := m.Base == gguf.TypeQ4_K || m.Base == gguf.TypeQ6_K
	layers, attnV := 0, 0
	tied := true // no output.weight: the token embedding is the output head too
	for _, t := range f.Tensors {
		if i, ok := layerOf(t.Name); ok {
			layers = max(layers, i+1)
		}
		if strings.HasSuffix(t.Name, "attn_v.weight") {
			attnV++
		}
		if t.Name == "output.weight" {
			tied = false
		}
	}
	// llama.cpp meets the tensors in its loader's order: those of no layer first, then by layer,
	// each group by name; its attn_v and ffn_down counters count in that order.
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	layer := func(i int) int {
		if l, ok := layerOf(f.Tensors[i].Name); ok {
			return l
		}
		return -1
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(layer(a), layer(b)), cmp.Compare(f.Tensors[a].Name, f.Tensors[b].Name))
	})
	seenV, seenDown := 0, 0
	for _, i := range order {
		t := f.Tensors[i]
		typ := QuantizedType(t.Name, t.Shape, t.Type, m.Base, keep)
		if !kmix || typ != m.Base {
			out[i] = typ
			continue
		}
		switch {
		case t.Name == "output.weight" || tied && t.Name == "token_embd.weight":
			// llama.cpp: Q8_0 when the rows do not fit K blocks, else Q6_K.
			typ = gguf.TypeQ6_K
			if t.Shape[0]%gguf.TypeQ6_K.BlockSize() != 0 {
				typ = gguf.TypeQ8_0
			}
		case strings.HasSuffix(t.Name, "attn_v.weight"):
			if m.Name == "Q4_K_M" && moreBits(seenV, attnV) {
				typ = gguf.TypeQ6_K
			}
			seenV++
		case strings.Contains(t.Name, "ffn_down"):
			// llama.cpp's layer here is the count of ffn_down tensors met so far.
			if m.Name == "Q4_K_M" && moreBits(seenDown, layers) {
				typ = gguf.TypeQ6_K
			}
			seenDown++
		}
		out[i] = kFallback(typ, t.Shape[0])
	}
	return out
}

// moreBits is llama.cpp's use_more_bits: the first and last eighth of the layers, and every
// third layer between.
func moreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// kFallback is the type a row of cols values takes when typ's blocks do not divide it.
func kFallback(typ gguf.TensorType, cols uint64) gguf.TensorType {
	if cols%typ.BlockSize() == 0 {
		return typ
	}
	switch typ {
	case gguf.TypeQ4_K:
		typ = gguf.TypeQ5_0
	case gguf.TypeQ6_K:
		typ = gguf.TypeQ8_0
	}
	if cols%typ.BlockSize() != 0 {
		return gguf.TypeF16
	}
	return typ
}

// layerOf is the block index of a blk.N. tensor.
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
	return n, err == nil
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
	case shape[0]%target.BlockSize() != 0 && target != gguf.TypeQ4_K && target != gguf.TypeQ6_K: // K-quants: Mix.Types falls back
		return gguf.TypeF16
	}
	return target
}

// QuantizeOptions adjust QuantizeFile: Keep (if set) names the tensors to leave as they are
// (see Mix.Types), and Progress (if set) is called as the tensors are written, with the bytes
// written and the bytes there are.
type QuantizeOptions struct {
	Keep     func(name string) bool
	Progress func(done, total int64)
}

// QuantizeFile rewrites the GGUF at src to dst with its weights converted as mix plans them
// (Mix.Types), which the architecture's checker may overrule. Tensors are converted
// one at a time as they are written; dst appears only if it passes gguf.Open's checks.
func QuantizeFile(src, dst string, mix Mix, opts QuantizeOptions) error {
	f, err := gguf.Open(src)
	if err != nil {
		return err
	}
	kv := maps.Clone(f.KV)
	kv["general.file_type"] = mix.FileType
	delete(kv, "general.parameter_count")

	planned := mix.Types(f, opts.Keep)
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
	return gguf.WriteModelProgress(dst, kv, tensors, opts.Progress)
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
