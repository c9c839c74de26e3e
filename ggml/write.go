package ggml

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	fsggml "github.com/ollama/ollama/fs/ggml"
	ggmlbackend "github.com/ollama/ollama/ml/backend/ggml"
)

// Tensor is a tensor to be written to a GGUF file. Its bytes come from Data, or, when Data is
// nil, from Source, which lets a converter stream a large model instead of holding it.
type Tensor struct {
	Name   string
	Type   TensorType
	Shape  []uint64 // ggml order: Shape[0] is the contiguous dimension
	Data   []byte
	Source func() ([]byte, error)
}

// Bytes is the encoded size of the tensor.
func (t *Tensor) Bytes() uint64 {
	return TensorInfo{Type: t.Type, Shape: t.Shape}.Elements() / t.Type.BlockSize() * t.Type.TypeSize()
}

// EncodeTensor encodes float32 values, in ggml order, as a tensor of type typ (F32, F16, BF16,
// or a quantized type, whose block size must divide the first dimension).
func EncodeTensor(name string, typ TensorType, shape []uint64, values []float32) (*Tensor, error) {
	t := &Tensor{Name: name, Type: typ, Shape: slices.Clone(shape)}
	if err := t.checkEncodable(len(values)); err != nil {
		return nil, err
	}
	t.Data = encode(typ, shape, values)
	return t, nil
}

func (t *Tensor) checkEncodable(n int) error {
	if len(t.Shape) == 0 || len(t.Shape) > maxDims {
		return fmt.Errorf("tensor %q: shape %v must have 1 to %d dimensions", t.Name, t.Shape, maxDims)
	}
	if want := (TensorInfo{Shape: t.Shape}).Elements(); want != uint64(n) {
		return fmt.Errorf("tensor %q: shape %v holds %d values, got %d", t.Name, t.Shape, want, n)
	}
	if !slices.Contains(supportedTypes, t.Type) {
		return fmt.Errorf("tensor %q: type %s is not supported", t.Name, t.Type)
	}
	if t.Shape[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("tensor %q: first dimension %d is not a multiple of the %s block size %d", t.Name, t.Shape[0], t.Type, t.Type.BlockSize())
	}
	return nil
}

func encode(typ TensorType, shape []uint64, values []float32) []byte {
	if typ == TypeF32 {
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
func DecodeFloats(typ TensorType, data []byte, elements uint64) ([]float32, error) {
	if uint64(len(data)) != elements/typ.BlockSize()*typ.TypeSize() || elements%typ.BlockSize() != 0 {
		return nil, fmt.Errorf("decode %s: %d bytes do not hold %d values", typ, len(data), elements)
	}
	if typ == TypeF32 {
		out := make([]float32, elements)
		for i := range out {
			out[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		return out, nil
	}
	if !slices.Contains(supportedTypes, typ) || elements == 0 {
		return nil, fmt.Errorf("decode: type %s is not supported", typ)
	}
	return ggmlbackend.ConvertToF32(data, uint32(typ), elements), nil
}

// WriteTo writes the tensor's bytes, checking that the source produced exactly as many as its
// shape and type need: a short tensor would shift every later one in the file.
func (t *Tensor) WriteTo(w io.Writer) (int64, error) {
	data := t.Data
	if data == nil && t.Source != nil {
		var err error
		if data, err = t.Source(); err != nil {
			return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
	}
	if uint64(len(data)) != t.Bytes() {
		return 0, fmt.Errorf("tensor %q: have %d bytes, shape %v of %s needs %d", t.Name, len(data), t.Shape, t.Type, t.Bytes())
	}
	n, err := w.Write(data)
	return int64(n), err
}

// WriteFile writes a GGUF file. kv holds full key names ("qwen2.block_count") with values of
// the Go types GGUF stores (uint32, float32, string, []string, []int32, ...), and must name
// general.architecture. The file appears at path only when it is complete: it is written to a
// temporary file in the same directory and renamed.
func WriteFile(path string, kv map[string]any, tensors []*Tensor) error {
	return writeFile(path, kv, tensors, false)
}

// WriteModel is WriteFile for a model that toklip runs: before the file appears at path, it
// must pass every check of Open, so a converter or quantizer never leaves a file that the
// engine would refuse.
func WriteModel(path string, kv map[string]any, tensors []*Tensor) error {
	return writeFile(path, kv, tensors, true)
}

func writeFile(path string, kv map[string]any, tensors []*Tensor, check bool) (err error) {
	if _, ok := kv["general.architecture"].(string); !ok {
		return fmt.Errorf("write %s: general.architecture is not set", path)
	}
	seen := map[string]bool{}
	fts := make([]*fsggml.Tensor, len(tensors))
	for i, t := range tensors {
		if seen[t.Name] {
			return fmt.Errorf("write %s: tensor %q appears twice", path, t.Name)
		}
		seen[t.Name] = true
		if len(t.Name) > maxTensorName {
			return fmt.Errorf("write %s: tensor name %q is longer than %d bytes", path, t.Name, maxTensorName)
		}
		fts[i] = &fsggml.Tensor{Name: t.Name, Kind: uint32(t.Type), Shape: slices.Clone(t.Shape), WriterTo: t}
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fsggml.WriteGGUF(tmp, fsggml.KV(kv), fts); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil { // CreateTemp makes it 0600: a model is no secret
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if check {
		if _, err = Open(tmp.Name()); err != nil {
			return fmt.Errorf("write %s: the written file does not pass its checks: %w", path, err)
		}
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadTensorData reads the encoded bytes of one tensor of f.
func (f *File) ReadTensorData(t TensorInfo) ([]byte, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data := make([]byte, t.Bytes())
	if _, err := fh.ReadAt(data, f.DataOffset+int64(t.Offset)); err != nil {
		return nil, fileErr(f.Path, "", t.Name, ErrTruncated, "reading data: %v", err)
	}
	return data, nil
}
