package convert

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strconv"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// The safetensors format is an 8-byte header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the data. It is read here rather than through a library because
// the one reader in our module graph (ollama's x/imagegen/safetensors) allocates whatever header
// length a file claims and ignores short reads; this one checks every claim against the file.

const (
	maxHeader   = 100 << 20 // the format's own limit on the JSON header
	minEntry    = len(`"":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}`)
	maxElements = 1 << 48 // as for GGUF: far beyond any real tensor, and its bytes fit an int64
)

type stTensor struct {
	name   string
	dtype  string
	shape  []uint64 // PyTorch order: shape[0] is the slowest dimension
	file   string
	offset int64 // absolute, in file
	size   int64
	count  uint64 // values, the product of shape
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
	return readSafetensors(path, f, st.Size())
}

// stEntry is one tensor of the JSON header.
type stEntry struct {
	Dtype   string    `json:"dtype"`
	Shape   stShape   `json:"shape"`
	Offsets stOffsets `json:"data_offsets"`
}

// maxDims limits a tensor's dimensions: model weights have at most 5 (a 3-D convolution's), and
// GGUF takes at most 4.
const maxDims = 8

// stShape and stOffsets read their JSON arrays themselves: the number of elements is counted
// before anything is made (a shape of a million dimensions, 2 bytes of JSON each, would grow a
// slice to six times its text), and each number is parsed in place, which encoding/json's own
// decoding of a field cannot do without a decoder of its own for each one.
type (
	stShape   []uint64
	stOffsets []int64
)

func (s *stShape) UnmarshalJSON(b []byte) error {
	v, err := numbers(b, maxDims, "shape", func(x string) (uint64, error) { return strconv.ParseUint(x, 10, 64) })
	*s = v
	return err
}

func (o *stOffsets) UnmarshalJSON(b []byte) error {
	v, err := numbers(b, 2, "data_offsets", func(x string) (int64, error) { return strconv.ParseInt(x, 10, 64) })
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("data_offsets has %d numbers, not [begin, end]", len(v))
	}
	*o = v
	return err
}

// numbers parses a JSON array of at most limit integers. The decoder hands over only valid
// JSON, so splitting at commas finds the elements; one that is not a plain integer (a string,
// an array, 1e3) fails to parse.
func numbers[T any](b []byte, limit int, field string, parse func(string) (T, error)) ([]T, error) {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, fmt.Errorf("%s is not an array of integers", field)
	}
	inner := bytes.TrimSpace(b[1 : len(b)-1])
	if len(inner) == 0 {
		return nil, nil
	}
	if n := bytes.Count(inner, []byte{','}) + 1; n > limit {
		return nil, fmt.Errorf("%s has %d elements; toklip reads at most %d", field, n, limit)
	}
	var out []T
	for part := range bytes.SplitSeq(inner, []byte{','}) {
		v, err := parse(string(bytes.TrimSpace(part)))
		if err != nil {
			return nil, fmt.Errorf("%s is not an array of integers: %v", field, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// readSafetensors lists the tensors of a safetensors file of size bytes held in r; name stands
// for the file in errors and is where the tensors' data is read from later. Every number of the
// header is checked against the file before it is used: the header length against the bytes
// present, each shape's product without overflow, and the data offsets as the format's
// reference implementation (HuggingFace's safetensors) checks them: sorted by offset, the
// tensors must tile the data section exactly, with no gap, no overlap, and nothing after.
func readSafetensors(name string, r io.ReaderAt, size int64) ([]stTensor, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%s: file of %d bytes is too short for a safetensors header", name, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || n > uint64(size-8) {
		return nil, fmt.Errorf("%s: header length %d is beyond the file (%d bytes) or the format's limit (%d)", name, n, size, maxHeader)
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 8); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	// The header is decoded one entry at a time, each checked before the next is read, rather
	// than into a map first: a map of entries, each in a few bytes of JSON ("a":{}), costs
	// twenty times the header's size before any of it is checked.
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: header is not a safetensors JSON object", name)
	}
	dataStart := 8 + int64(n)
	data := size - dataStart // bytes in the data section
	// The list is sized once, by the most entries the header can hold: an entry that passes its
	// checks takes at least minEntry bytes of JSON. Grown by append instead, it would cost five
	// times its final size (large slices grow by a quarter at a time).
	out := make([]stTensor, 0, n/uint64(minEntry))
	var e stEntry // reused: decoding keeps Offsets' array; Shape is new for each tensor, which keeps it
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: header is not a safetensors JSON object: %v", name, err)
		}
		key := tok.(string) // inside an object, Token returns keys as strings or fails
		if key == "__metadata__" {
			// toklip uses none of it: decoded into an empty struct, its object is checked and
			// skipped without being kept (as a map of strings, each tiny entry cost 20 times
			// its bytes).
			var meta struct{}
			if err := dec.Decode(&meta); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ is not a JSON object: %v", name, err)
			}
			continue
		}
		e.Dtype, e.Shape, e.Offsets = "", nil, e.Offsets[:0]
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", name, key, err)
		}
		t, err := checkEntry(name, key, e, data)
		if err != nil {
			return nil, err
		}
		t.offset += dataStart
		out = append(out, t)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("%s: header is not a safetensors JSON object", name)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: header has more after its JSON object", name)
	}
	slices.SortFunc(out, func(a, b stTensor) int { return cmp.Compare(a.name, b.name) })
	for i := 1; i < len(out); i++ {
		if out[i].name == out[i-1].name {
			return nil, fmt.Errorf("%s: tensor %q appears twice in the header", name, out[i].name)
		}
	}
	slices.SortFunc(out, func(a, b stTensor) int { return cmp.Or(cmp.Compare(a.offset, b.offset), cmp.Compare(a.size, b.size)) })
	end := dataStart
	for i, t := range out {
		if t.offset != end {
			prev := "the header"
			if i > 0 {
				prev = fmt.Sprintf("tensor %q", out[i-1].name)
			}
			return nil, fmt.Errorf("%s: tensor %q: data starts at byte %d, but %s ends at byte %d: the format allows no gaps or overlaps", name, t.name, t.offset, prev, end)
		}
		end += t.size
	}
	if end != size {
		return nil, fmt.Errorf("%s: the tensors' data ends at byte %d but the file has %d bytes: the format allows nothing after it", name, end, size)
	}
	return out, nil
}

// checkEntry checks one tensor of the header against the data section's size; the offset it
// returns is from the start of the data section.
func checkEntry(name, key string, e stEntry, data int64) (stTensor, error) {
	t := stTensor{name: key, shape: e.Shape, file: name}
	dsize, ok := dtypeSizes[e.Dtype]
	if !ok {
		return t, fmt.Errorf("%s: tensor %q: dtype %q is not supported (F32, F16, BF16)", name, key, e.Dtype)
	}
	for known := range dtypeSizes {
		if known == e.Dtype {
			t.dtype = known // not the decoder's copy: one string for every tensor of a dtype
		}
	}
	if len(e.Shape) == 0 {
		return t, fmt.Errorf("%s: tensor %q is a scalar (shape []); model weights are tensors", name, key)
	}
	t.count = 1
	for _, d := range e.Shape {
		hi, lo := bits.Mul64(t.count, d)
		if hi != 0 || lo > maxElements {
			return t, fmt.Errorf("%s: tensor %q: shape %v holds more than %d values", name, key, e.Shape, uint64(maxElements))
		}
		t.count = lo
	}
	if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > data {
		return t, fmt.Errorf("%s: tensor %q: data offsets %v lie outside the file (%d bytes of data)", name, key, e.Offsets, data)
	}
	// count <= 2^48 and dsize <= 4: the product fits an int64.
	if want := int64(t.count) * dsize; e.Offsets[1]-e.Offsets[0] != want {
		return t, fmt.Errorf("%s: tensor %q: shape %v of %s needs %d bytes, the file gives %d", name, key, e.Shape, e.Dtype, want, e.Offsets[1]-e.Offsets[0])
	}
	t.offset, t.size = e.Offsets[0], e.Offsets[1]-e.Offsets[0]
	return t, nil
}

// readFloats reads a tensor's values as float32, in PyTorch (row-major) order.
func (t stTensor) readFloats() ([]float32, error) {
	f, err := os.Open(t.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return t.readFloatsFrom(f)
}

// readFloatsFrom is readFloats from the file's bytes in r.
func (t stTensor) readFloatsFrom(r io.ReaderAt) ([]float32, error) {
	data := make([]byte, t.size) // checked to lie inside the file
	if _, err := r.ReadAt(data, t.offset); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", t.file, t.name, err)
	}
	typ := map[string]gguf.TensorType{"F32": gguf.TypeF32, "F16": gguf.TypeF16, "BF16": gguf.TypeBF16}[t.dtype]
	return ggml.DecodeFloats(typ, data, t.count)
}
