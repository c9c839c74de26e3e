package convert

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/toklip/toklip/ggml"
)

// The safetensors format is an 8-byte header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the data. It is read here rather than through a library because
// the one reader in our module graph (ollama's x/imagegen/safetensors) allocates whatever header
// length a file claims and ignores short reads; this one checks every claim against the file.

const maxHeader = 100 << 20 // the format's own limit on the JSON header

type stTensor struct {
	name   string
	dtype  string
	shape  []uint64 // PyTorch order: shape[0] is the slowest dimension
	file   string
	offset int64 // absolute, in file
	size   int64
}

// elements is the tensor's number of values.
func (t stTensor) elements() uint64 {
	n := uint64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

var dtypeSizes = map[string]int64{"F32": 4, "F16": 2, "BF16": 2}

// readSafetensorsHeader lists the tensors of one .safetensors file.
func readSafetensorsHeader(path string) ([]stTensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", path, err)
	}
	if n > maxHeader || int64(n) > st.Size()-8 {
		return nil, fmt.Errorf("%s: header length %d is beyond the file or the format's limit", path, n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(header, &entries); err != nil {
		return nil, fmt.Errorf("%s: header is not a JSON object: %w", path, err)
	}
	dataStart := 8 + int64(n)
	var out []stTensor
	for name, raw := range entries {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string   `json:"dtype"`
			Shape   []uint64 `json:"shape"`
			Offsets []int64  `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		t := stTensor{name: name, dtype: e.Dtype, shape: e.Shape, file: path}
		size, ok := dtypeSizes[e.Dtype]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: dtype %s is not supported (F32, F16, BF16)", path, name, e.Dtype)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || dataStart+e.Offsets[1] > st.Size() {
			return nil, fmt.Errorf("%s: tensor %q: data offsets %v lie outside the file", path, name, e.Offsets)
		}
		if want := int64(t.elements()) * size; e.Offsets[1]-e.Offsets[0] != want || len(e.Shape) == 0 {
			return nil, fmt.Errorf("%s: tensor %q: shape %v of %s needs %d bytes, the file gives %d", path, name, e.Shape, e.Dtype, want, e.Offsets[1]-e.Offsets[0])
		}
		t.offset, t.size = dataStart+e.Offsets[0], e.Offsets[1]-e.Offsets[0]
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b stTensor) int { return cmp.Compare(a.offset, b.offset) })
	return out, nil
}

// readFloats reads a tensor's values as float32, in PyTorch (row-major) order.
func (t stTensor) readFloats() ([]float32, error) {
	f, err := os.Open(t.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, t.size)
	if _, err := f.ReadAt(data, t.offset); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", t.file, t.name, err)
	}
	typ := map[string]ggml.TensorType{"F32": ggml.TypeF32, "F16": ggml.TypeF16, "BF16": ggml.TypeBF16}[t.dtype]
	return ggml.DecodeFloats(typ, data, t.elements())
}
