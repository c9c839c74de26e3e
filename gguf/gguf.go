// Package gguf is the GGUF file format in pure Go: reading a header with every count, length and
// offset checked against limits and against the bytes the file holds (a small hostile header
// cannot make it allocate more than a small multiple of itself), typed access to keys, the
// architecture checkers that say what a runnable file must hold, and writing files that read back
// to the same metadata and tensors. It has no cgo, so the packages that only read model metadata
// (the tokenizer, the model store) build without a C compiler; ggml's backend, quantizers and
// loading live in package ggml.
package gguf

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"unicode/utf8"

	fsggml "github.com/ollama/ollama/fs/ggml"
)

// Limits on what a GGUF header may claim. ollama's decoder allocates whatever a file claims
// (a string length of 2^60 is a make([]byte, 2^60)), so every count is checked here first,
// against these limits and against the bytes the file actually has left.
const (
	maxKeyLength     = 1 << 16 // the GGUF specification's limit on key length
	maxStringLength  = 1 << 28 // chat templates are kilobytes; 256 MiB is far beyond any real value
	maxArrayLength   = 1 << 26 // vocabularies and merge lists are well under 1M entries
	maxKeyValues     = 1 << 16
	maxTensors       = 1 << 20
	maxTensorName    = 63 // GGML_MAX_NAME is 64 bytes with the terminating NUL; longer names are truncated silently
	maxDims          = 4  // GGML_MAX_DIMS
	maxElements      = 1 << 48
	defaultAlignment = 32
)

const ggufMagic = 0x46554747 // "GGUF" read as a little-endian uint32

// GGUF value types, as numbered by the specification.
const (
	typeUint8 uint32 = iota
	typeInt8
	typeUint16
	typeInt16
	typeUint32
	typeInt32
	typeFloat32
	typeBool
	typeString
	typeArray
	typeUint64
	typeInt64
	typeFloat64
)

// TensorType is ggml's tensor element type, shared with ollama's fs/ggml package.
type TensorType = fsggml.TensorType

// The tensor types toklip reads and writes.
const (
	TypeF32  = fsggml.TensorTypeF32
	TypeF16  = fsggml.TensorTypeF16
	TypeBF16 = fsggml.TensorTypeBF16
	TypeQ8_0 = fsggml.TensorTypeQ8_0
	TypeQ4_0 = fsggml.TensorTypeQ4_0
	TypeQ5_0 = fsggml.TensorTypeQ5_0
	TypeQ4_K = fsggml.TensorTypeQ4_K
	TypeQ6_K = fsggml.TensorTypeQ6_K
)

// supportedTypes are the tensor types ollama's backend and toklip's kernels handle. Any other
// id reaches ggml_new_tensor, which aborts the whole process on a type it does not know.
var supportedTypes = []TensorType{
	fsggml.TensorTypeF32, fsggml.TensorTypeF16, fsggml.TensorTypeBF16,
	fsggml.TensorTypeQ4_0, fsggml.TensorTypeQ4_1, fsggml.TensorTypeQ5_0, fsggml.TensorTypeQ5_1,
	fsggml.TensorTypeQ8_0, fsggml.TensorTypeQ2_K, fsggml.TensorTypeQ3_K, fsggml.TensorTypeQ4_K,
	fsggml.TensorTypeQ5_K, fsggml.TensorTypeQ6_K,
}

// Supported says whether toklip reads and writes tensors of type t.
func Supported(t TensorType) bool { return slices.Contains(supportedTypes, t) }

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name   string
	Type   TensorType
	Shape  []uint64 // ggml order: Shape[0] is the contiguous dimension
	Offset uint64   // from the start of the data section
}

// Elements is the number of values in the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data in the file.
func (t TensorInfo) Bytes() uint64 {
	return t.Elements() / t.Type.BlockSize() * t.Type.TypeSize()
}

// File is the header of a GGUF file that passed the structural checks: every count is sane,
// every tensor has a supported type and lies wholly inside the file, no two tensors overlap.
type File struct {
	Path       string
	Version    uint32
	KV         map[string]any // GGUF values as Go types: uint32, float32, string, []string, []int32, ...
	Tensors    []TensorInfo   // in file order
	DataOffset int64          // where the data section starts
	Size       int64          // the file's size in bytes

	byName map[string]int
	src    io.ReaderAt // where tensor data is read from when the file did not come from Path
}

// ReadFile reads and checks the header of the GGUF file at path. It reads no tensor data.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open model file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fileErr(path, "", "", ErrFormat, "is not a regular file")
	}
	return decode(path, f, st.Size())
}

// Read is ReadFile for GGUF bytes that are not a file of their own (a blob in memory or inside
// another container): r holds size bytes, and name stands for the file in errors. The File
// keeps r to read tensor data from.
func Read(name string, r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fileErr(name, "", "", ErrFormat, "size %d is negative", size)
	}
	f, err := decode(name, io.NewSectionReader(r, 0, size), size)
	if err != nil {
		return nil, err
	}
	f.src = r
	return f, nil
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Architecture is the value of general.architecture, or "" when it is missing or not a string.
func (f *File) Architecture() string {
	s, _ := f.KV["general.architecture"].(string)
	return s
}

// reader reads little-endian GGUF values and knows how many bytes the file has left, so that
// no claimed length is believed before it is checked against what can actually follow.
//
// What reading a header allocates must stay proportional to the bytes the header has (the
// fuzz test FuzzReadGGUF holds it to a small multiple): values are decoded straight from
// bufio's buffer (next), arrays into typed slices without boxing each element in an interface,
// and a string is copied once, from the buffer into its string.
type reader struct {
	r    *bufio.Reader
	pos  int64
	size int64
	path string
}

func (r *reader) remaining() int64 { return r.size - r.pos }

func (r *reader) truncated() error {
	return fileErr(r.path, "", "", ErrTruncated, "file ends at byte %d, inside the header", r.size)
}

// next returns the next n bytes, n at most the buffer's size; they are valid until the next
// call of any reader method.
func (r *reader) next(n int) ([]byte, error) {
	if int64(n) > r.remaining() {
		return nil, r.truncated()
	}
	b, err := r.r.Peek(n)
	if err != nil {
		return nil, fileErr(r.path, "", "", ErrTruncated, "reading header at byte %d: %v", r.pos, err)
	}
	r.r.Discard(n) // cannot fail: Peek has buffered n bytes; it leaves them in place
	r.pos += int64(n)
	return b, nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64() (uint64, error) {
	b, err := r.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) str(limit int) (string, error) {
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fileErr(r.path, "", "", ErrLimit, "string of %d bytes is longer than the limit of %d", n, limit)
	}
	if int64(n) > r.remaining() {
		return "", fileErr(r.path, "", "", ErrTruncated, "string of %d bytes runs past the end of the file", n)
	}
	if int(n) <= r.r.Size() {
		b, err := r.next(int(n))
		return string(b), err
	}
	// Longer than the buffer (a chat template, a merges blob): its bytes are in the file.
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return "", fileErr(r.path, "", "", ErrTruncated, "reading header at byte %d: %v", r.pos, err)
	}
	r.pos += int64(n)
	return string(b), nil
}

func decode(path string, rd io.Reader, size int64) (*File, error) {
	// A buffer no larger than the file: a tiny header must not cost 64 KiB.
	r := &reader{r: bufio.NewReaderSize(rd, int(min(size, 1<<16))), size: size, path: path}
	if size < 4 {
		return nil, fileErr(path, "", "", ErrTruncated, "file has %d bytes, too short for a GGUF header", size)
	}
	magic, err := r.u32()
	if err != nil {
		return nil, err
	}
	if magic != ggufMagic {
		return nil, fileErr(path, "", "", ErrFormat, "bad magic %q: not a GGUF file", binary.LittleEndian.AppendUint32(nil, magic))
	}
	version, err := r.u32()
	if err != nil {
		return nil, err
	}
	if version != 2 && version != 3 {
		return nil, fileErr(path, "", "", ErrFormat, "GGUF version %d is not supported (want 2 or 3)", version)
	}
	nTensors, err := r.u64()
	if err != nil {
		return nil, err
	}
	nKV, err := r.u64()
	if err != nil {
		return nil, err
	}
	// Each key-value takes at least 8+1+4+1 bytes and each tensor info 8+1+4+8+4+8.
	if nKV > maxKeyValues || nKV > uint64(r.remaining()/14) {
		return nil, fileErr(path, "", "", ErrLimit, "header claims %d key-values, more than the file can hold", nKV)
	}

	f := &File{Path: path, Version: version, Size: size, KV: make(map[string]any, nKV)}
	for range nKV {
		key, err := r.str(maxKeyLength)
		if err != nil {
			return nil, err
		}
		if key == "" || !utf8.ValidString(key) {
			return nil, fileErr(path, key, "", ErrFormat, "key is empty or not UTF-8")
		}
		if _, dup := f.KV[key]; dup {
			return nil, fileErr(path, key, "", ErrFormat, "key appears twice")
		}
		t, err := r.u32()
		if err != nil {
			return nil, err
		}
		v, err := r.value(t, true)
		if err != nil {
			return nil, withKey(err, key)
		}
		f.KV[key] = v
	}

	if nTensors > maxTensors || nTensors > uint64(r.remaining()/33) {
		return nil, fileErr(path, "", "", ErrLimit, "header claims %d tensors, more than the file can hold", nTensors)
	}
	// Both are sized by a count just checked against the bytes left: 33 bytes per tensor.
	f.byName = make(map[string]int, nTensors)
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for range nTensors {
		t, err := r.tensorInfo()
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[t.Name]; dup {
			return nil, fileErr(path, "", t.Name, ErrFormat, "tensor appears twice")
		}
		f.byName[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	alignment := uint64(defaultAlignment)
	if v, ok := f.KV["general.alignment"]; ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 || a > 1<<16 {
			return nil, fileErr(path, "general.alignment", "", ErrFormat, "must be a power of two uint32 up to 65536, got %v (%T)", v, v)
		}
		alignment = uint64(a)
	}
	f.DataOffset = r.pos + int64(padding(uint64(r.pos), alignment))
	if err := f.checkLayout(alignment); err != nil {
		return nil, err
	}
	return f, nil
}

func (r *reader) tensorInfo() (TensorInfo, error) {
	name, err := r.str(maxKeyLength)
	if err != nil {
		return TensorInfo{}, err
	}
	if name == "" || len(name) > maxTensorName || !utf8.ValidString(name) {
		return TensorInfo{}, fileErr(r.path, "", name, ErrFormat, "tensor name must be 1 to %d bytes of UTF-8", maxTensorName)
	}
	nDims, err := r.u32()
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims == 0 || nDims > maxDims {
		return TensorInfo{}, fileErr(r.path, "", name, ErrShape, "has %d dimensions; ggml allows 1 to %d", nDims, maxDims)
	}
	t := TensorInfo{Name: name, Shape: make([]uint64, nDims)}
	elements := uint64(1)
	for i := range t.Shape {
		if t.Shape[i], err = r.u64(); err != nil {
			return TensorInfo{}, err
		}
		hi, lo := bits.Mul64(elements, t.Shape[i])
		if t.Shape[i] == 0 || hi != 0 || lo > maxElements {
			return TensorInfo{}, fileErr(r.path, "", name, ErrShape, "shape %v is empty or absurdly large", t.Shape[:i+1])
		}
		elements = lo
	}
	kind, err := r.u32()
	if err != nil {
		return TensorInfo{}, err
	}
	t.Type = TensorType(kind)
	if !slices.Contains(supportedTypes, t.Type) {
		return TensorInfo{}, fileErr(r.path, "", name, ErrType, "tensor type %d is not supported", kind)
	}
	if t.Shape[0]%t.Type.BlockSize() != 0 {
		return TensorInfo{}, fileErr(r.path, "", name, ErrShape, "first dimension %d is not a multiple of the %s block size %d", t.Shape[0], t.Type, t.Type.BlockSize())
	}
	if t.Offset, err = r.u64(); err != nil {
		return TensorInfo{}, err
	}
	return t, nil
}

// checkLayout makes sure every tensor's bytes lie inside the file, aligned, without overlap.
// Offsets and sizes come from the file and may be anything up to 2^64: every sum is compared
// against what is left rather than computed, so that nothing wraps around.
func (f *File) checkLayout(alignment uint64) error {
	data := uint64(max(f.Size-f.DataOffset, 0)) // bytes in the data section
	for _, t := range f.Tensors {
		if t.Offset%alignment != 0 {
			return fileErr(f.Path, "", t.Name, ErrFormat, "data offset %d is not a multiple of the alignment, %d bytes", t.Offset, alignment)
		}
		if t.Offset >= data {
			return fileErr(f.Path, "", t.Name, ErrTruncated, "data offset %d is past the end of the file (%d bytes, data from byte %d)", t.Offset, f.Size, f.DataOffset)
		}
		if t.Bytes() > data-t.Offset {
			return fileErr(f.Path, "", t.Name, ErrTruncated, "%d bytes of data at offset %d run past the end of the file (%d bytes, data from byte %d)", t.Bytes(), t.Offset, f.Size, f.DataOffset)
		}
	}
	// Sorted by offset, each tensor must end before the next starts. The order is kept in 4
	// bytes per tensor rather than a copy of the table (maxTensors fits an int32).
	order := make([]int32, len(f.Tensors))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(f.Tensors[a].Offset, f.Tensors[b].Offset) })
	for i := 1; i < len(order); i++ {
		prev, t := f.Tensors[order[i-1]], f.Tensors[order[i]]
		if t.Offset < prev.Offset+prev.Bytes() {
			return fileErr(f.Path, "", t.Name, ErrFormat, "data at offset %d overlaps tensor %q (offset %d, %d bytes)", t.Offset, prev.Name, prev.Offset, prev.Bytes())
		}
	}
	return nil
}

// value reads one GGUF value of type t. Arrays of arrays are refused: no model uses them and
// ollama's decoder does not read them.
func (r *reader) value(t uint32, allowArray bool) (any, error) {
	switch t {
	case typeUint8:
		return scalar(r, 1, decodeU8)
	case typeInt8:
		return scalar(r, 1, decodeI8)
	case typeBool:
		return scalar(r, 1, r.decodeBool)
	case typeUint16:
		return scalar(r, 2, decodeU16)
	case typeInt16:
		return scalar(r, 2, decodeI16)
	case typeUint32:
		return scalar(r, 4, decodeU32)
	case typeInt32:
		return scalar(r, 4, decodeI32)
	case typeFloat32:
		return scalar(r, 4, decodeF32)
	case typeUint64:
		return scalar(r, 8, decodeU64)
	case typeInt64:
		return scalar(r, 8, decodeI64)
	case typeFloat64:
		return scalar(r, 8, decodeF64)
	case typeString:
		return r.str(maxStringLength)
	case typeArray:
		if !allowArray {
			return nil, fileErr(r.path, "", "", ErrFormat, "arrays of arrays are not supported")
		}
		return r.array()
	}
	return nil, fileErr(r.path, "", "", ErrFormat, "unknown value type %d", t)
}

// Decoders of the fixed-size value types, from exactly their size in bytes.
func decodeU8(b []byte) (uint8, error)   { return b[0], nil }
func decodeI8(b []byte) (int8, error)    { return int8(b[0]), nil }
func decodeU16(b []byte) (uint16, error) { return binary.LittleEndian.Uint16(b), nil }
func decodeI16(b []byte) (int16, error)  { return int16(binary.LittleEndian.Uint16(b)), nil }
func decodeU32(b []byte) (uint32, error) { return binary.LittleEndian.Uint32(b), nil }
func decodeI32(b []byte) (int32, error)  { return int32(binary.LittleEndian.Uint32(b)), nil }
func decodeU64(b []byte) (uint64, error) { return binary.LittleEndian.Uint64(b), nil }
func decodeI64(b []byte) (int64, error)  { return int64(binary.LittleEndian.Uint64(b)), nil }
func decodeF32(b []byte) (float32, error) {
	return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
}
func decodeF64(b []byte) (float64, error) {
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

func (r *reader) decodeBool(b []byte) (bool, error) {
	if b[0] > 1 {
		return false, fileErr(r.path, "", "", ErrFormat, "bool value %d is neither 0 nor 1", b[0])
	}
	return b[0] == 1, nil
}

func scalar[T any](r *reader, size int, decode func([]byte) (T, error)) (any, error) {
	b, err := r.next(size)
	if err != nil {
		return nil, err
	}
	v, err := decode(b)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// elementSizes are the encoded sizes of array elements; a string takes at least its length.
var elementSizes = map[uint32]uint64{typeUint8: 1, typeInt8: 1, typeBool: 1, typeUint16: 2, typeInt16: 2,
	typeUint32: 4, typeInt32: 4, typeFloat32: 4, typeUint64: 8, typeInt64: 8, typeFloat64: 8, typeString: 8}

func (r *reader) array() (any, error) {
	et, err := r.u32()
	if err != nil {
		return nil, err
	}
	n, err := r.u64()
	if err != nil {
		return nil, err
	}
	size := elementSizes[et]
	if size == 0 {
		return nil, fileErr(r.path, "", "", ErrFormat, "array of unsupported element type %d", et)
	}
	// n is checked against the limit before it is multiplied, so the product cannot wrap.
	if n > maxArrayLength || n*size > uint64(r.remaining()) {
		return nil, fileErr(r.path, "", "", ErrLimit, "array claims %d elements, more than the file can hold", n)
	}
	switch et {
	case typeString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = r.str(maxStringLength); err != nil {
				return nil, err
			}
		}
		return out, nil
	case typeUint8:
		return fixedArray(r, n, 1, decodeU8)
	case typeInt8:
		return fixedArray(r, n, 1, decodeI8)
	case typeBool:
		return fixedArray(r, n, 1, r.decodeBool)
	case typeUint16:
		return fixedArray(r, n, 2, decodeU16)
	case typeInt16:
		return fixedArray(r, n, 2, decodeI16)
	case typeUint32:
		return fixedArray(r, n, 4, decodeU32)
	case typeInt32:
		return fixedArray(r, n, 4, decodeI32)
	case typeFloat32:
		return fixedArray(r, n, 4, decodeF32)
	case typeUint64:
		return fixedArray(r, n, 8, decodeU64)
	case typeInt64:
		return fixedArray(r, n, 8, decodeI64)
	default:
		return fixedArray(r, n, 8, decodeF64)
	}
}

func fixedArray[T any](r *reader, n uint64, size int, decode func([]byte) (T, error)) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		b, err := r.next(size)
		if err != nil {
			return nil, err
		}
		if out[i], err = decode(b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func padding(offset, alignment uint64) uint64 {
	return (alignment - offset%alignment) % alignment
}

// withKey adds the key being read to an error from the value reader.
func withKey(err error, key string) error {
	var fe *FileError
	if errors.As(err, &fe) && fe.Key == "" {
		fe.Key = key
	}
	return err
}
