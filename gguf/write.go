package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"unicode/utf8"
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

// CheckValues checks that n values fill the tensor's shape and that its type can hold them: 1 to
// 4 dimensions, a supported type, whose block size divides the first dimension.
func (t *Tensor) CheckValues(n int) error {
	if len(t.Shape) == 0 || len(t.Shape) > maxDims {
		return fmt.Errorf("tensor %q: shape %v must have 1 to %d dimensions", t.Name, t.Shape, maxDims)
	}
	if want := (TensorInfo{Shape: t.Shape}).Elements(); want != uint64(n) {
		return fmt.Errorf("tensor %q: shape %v holds %d values, got %d", t.Name, t.Shape, want, n)
	}
	if !Supported(t.Type) {
		return fmt.Errorf("tensor %q: type %s is not supported", t.Name, t.Type)
	}
	if t.Shape[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("tensor %q: first dimension %d is not a multiple of the %s block size %d", t.Name, t.Shape[0], t.Type, t.Type.BlockSize())
	}
	return nil
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
	return writeFile(path, kv, tensors, false, nil)
}

// WriteModel is WriteFile for a model that toklip runs: before the file appears at path, it
// must pass every check of Open, so a converter or quantizer never leaves a file that the
// engine would refuse.
func WriteModel(path string, kv map[string]any, tensors []*Tensor) error {
	return writeFile(path, kv, tensors, true, nil)
}

// WriteModelProgress is WriteModel that calls progress (when not nil) as the tensors are
// written, with the bytes written and the bytes there are: converting or quantizing a large
// model takes minutes, and a command shows how far it is.
func WriteModelProgress(path string, kv map[string]any, tensors []*Tensor, progress func(done, total int64)) error {
	return writeFile(path, kv, tensors, true, progress)
}

func writeFile(path string, kv map[string]any, tensors []*Tensor, check bool, progress func(done, total int64)) (err error) {
	header, offsets, dataStart, err := encodeHeader(kv, tensors)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
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
	if _, err = tmp.Write(header); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = writeTensors(tmp, dataStart, offsets, tensors, progress); err != nil {
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

// toklip writes GGUF itself rather than through ollama's fs/ggml.WriteGGUF, which its reader
// could not round-trip: that writer sorts tensors by block and name, renames any key without a
// general./tokenizer./adapter. prefix to "<arch>.<key>", and refuses uint8, int8, uint16, int16
// and float64 values and arrays of them, all of which GGUF (and Read) allow. This one writes
// every value Read returns, keys as given (sorted, for reproducible files), tensors in the
// order given, and refuses anything Read would refuse, so that what it writes reads back the same.

// encodeHeader encodes the header of a GGUF v3 file and places each tensor in the data
// section: offsets[i] is tensors[i]'s offset from dataStart, where the header's padding ends.
func encodeHeader(kv map[string]any, tensors []*Tensor) (header []byte, offsets []uint64, dataStart int64, err error) {
	if _, ok := kv["general.architecture"].(string); !ok {
		return nil, nil, 0, errors.New("general.architecture is not set")
	}
	alignment := uint64(defaultAlignment)
	if v, ok := kv["general.alignment"]; ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 || a > 1<<16 {
			return nil, nil, 0, fmt.Errorf("general.alignment must be a power of two uint32 up to 65536, got %v (%T)", v, v)
		}
		alignment = uint64(a)
	}
	if len(kv) > maxKeyValues || len(tensors) > maxTensors {
		return nil, nil, 0, fmt.Errorf("%d keys and %d tensors are more than GGUF readers accept (%d, %d)", len(kv), len(tensors), maxKeyValues, maxTensors)
	}
	w := &headerWriter{}
	w.raw([]byte("GGUF"))
	w.u32(3)
	w.u64(uint64(len(tensors)))
	w.u64(uint64(len(kv)))
	for _, key := range slices.Sorted(maps.Keys(kv)) {
		if key == "" || len(key) > maxKeyLength || !utf8.ValidString(key) {
			return nil, nil, 0, fmt.Errorf("key %q: a key must be 1 to %d bytes of UTF-8", key, maxKeyLength)
		}
		w.str(key)
		if err := w.value(kv[key]); err != nil {
			return nil, nil, 0, fmt.Errorf("key %q: %w", key, err)
		}
	}
	seen := make(map[string]bool, len(tensors))
	offsets = make([]uint64, len(tensors))
	var next uint64
	for i, t := range tensors {
		if seen[t.Name] {
			return nil, nil, 0, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		if err := t.checkWritable(); err != nil {
			return nil, nil, 0, err
		}
		offsets[i] = next
		w.str(t.Name)
		w.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			w.u64(d)
		}
		w.u32(uint32(t.Type))
		w.u64(next)
		next += t.Bytes()
		next += padding(next, alignment)
	}
	w.raw(make([]byte, padding(uint64(w.Len()), alignment)))
	return w.Bytes(), offsets, int64(w.Len()), nil
}

// checkWritable refuses a tensor that Read would refuse, before anything is written.
func (t *Tensor) checkWritable() error {
	if t.Name == "" || len(t.Name) > maxTensorName || !utf8.ValidString(t.Name) {
		return fmt.Errorf("tensor %q: a name must be 1 to %d bytes of UTF-8", t.Name, maxTensorName)
	}
	if len(t.Shape) == 0 || len(t.Shape) > maxDims {
		return fmt.Errorf("tensor %q: shape %v must have 1 to %d dimensions", t.Name, t.Shape, maxDims)
	}
	elements := uint64(1)
	for _, d := range t.Shape {
		hi, lo := bits.Mul64(elements, d)
		if d == 0 || hi != 0 || lo > maxElements {
			return fmt.Errorf("tensor %q: shape %v is empty or absurdly large", t.Name, t.Shape)
		}
		elements = lo
	}
	if !slices.Contains(supportedTypes, t.Type) {
		return fmt.Errorf("tensor %q: type %s is not supported", t.Name, t.Type)
	}
	if t.Shape[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("tensor %q: first dimension %d is not a multiple of the %s block size %d", t.Name, t.Shape[0], t.Type, t.Type.BlockSize())
	}
	return nil
}

// writeTensors writes each tensor's bytes at its place. Tensors are produced in parallel, as
// many at a time as there are CPUs: a converter's or quantizer's Source does the conversion,
// which is most of the time of writing a model.
func writeTensors(f *os.File, dataStart int64, offsets []uint64, tensors []*Tensor, progress func(done, total int64)) error {
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		errs        = make([]error, len(tensors))
		sem         = make(chan struct{}, runtime.GOMAXPROCS(0))
		done, total int64
	)
	for _, t := range tensors {
		total += int64(t.Bytes())
	}
	failed := false
	for i, t := range tensors {
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := t.WriteTo(io.NewOffsetWriter(f, dataStart+int64(offsets[i])))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[i], failed = err, true
				return
			}
			done += n
			if progress != nil {
				progress(done, total)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// headerWriter encodes little-endian GGUF values.
type headerWriter struct{ bytes.Buffer }

func (w *headerWriter) raw(b []byte) { w.Write(b) }
func (w *headerWriter) u16(v uint16) {
	w.Write(binary.LittleEndian.AppendUint16(w.AvailableBuffer(), v))
}
func (w *headerWriter) u32(v uint32) {
	w.Write(binary.LittleEndian.AppendUint32(w.AvailableBuffer(), v))
}
func (w *headerWriter) u64(v uint64) {
	w.Write(binary.LittleEndian.AppendUint64(w.AvailableBuffer(), v))
}
func (w *headerWriter) str(s string)  { w.u64(uint64(len(s))); w.WriteString(s) }
func (w *headerWriter) f32(v float32) { w.u32(math.Float32bits(v)) }
func (w *headerWriter) f64(v float64) { w.u64(math.Float64bits(v)) }
func (w *headerWriter) bool(v bool) {
	if v {
		w.WriteByte(1)
	} else {
		w.WriteByte(0)
	}
}

// value writes a value's type and the value, for every Go type Read returns.
func (w *headerWriter) value(v any) error {
	switch v := v.(type) {
	case uint8:
		w.u32(typeUint8)
		w.WriteByte(v)
	case int8:
		w.u32(typeInt8)
		w.WriteByte(byte(v))
	case uint16:
		w.u32(typeUint16)
		w.u16(v)
	case int16:
		w.u32(typeInt16)
		w.u16(uint16(v))
	case uint32:
		w.u32(typeUint32)
		w.u32(v)
	case int32:
		w.u32(typeInt32)
		w.u32(uint32(v))
	case float32:
		w.u32(typeFloat32)
		w.f32(v)
	case bool:
		w.u32(typeBool)
		w.bool(v)
	case string:
		if len(v) > maxStringLength {
			return fmt.Errorf("string of %d bytes is longer than the limit of %d", len(v), maxStringLength)
		}
		w.u32(typeString)
		w.str(v)
	case uint64:
		w.u32(typeUint64)
		w.u64(v)
	case int64:
		w.u32(typeInt64)
		w.u64(uint64(v))
	case float64:
		w.u32(typeFloat64)
		w.f64(v)
	case []uint8:
		return writeArray(w, typeUint8, v, func(x uint8) { w.WriteByte(x) })
	case []int8:
		return writeArray(w, typeInt8, v, func(x int8) { w.WriteByte(byte(x)) })
	case []uint16:
		return writeArray(w, typeUint16, v, w.u16)
	case []int16:
		return writeArray(w, typeInt16, v, func(x int16) { w.u16(uint16(x)) })
	case []uint32:
		return writeArray(w, typeUint32, v, w.u32)
	case []int32:
		return writeArray(w, typeInt32, v, func(x int32) { w.u32(uint32(x)) })
	case []float32:
		return writeArray(w, typeFloat32, v, w.f32)
	case []bool:
		return writeArray(w, typeBool, v, w.bool)
	case []string:
		for _, s := range v {
			if len(s) > maxStringLength {
				return fmt.Errorf("string of %d bytes is longer than the limit of %d", len(s), maxStringLength)
			}
		}
		return writeArray(w, typeString, v, w.str)
	case []uint64:
		return writeArray(w, typeUint64, v, w.u64)
	case []int64:
		return writeArray(w, typeInt64, v, func(x int64) { w.u64(uint64(x)) })
	case []float64:
		return writeArray(w, typeFloat64, v, w.f64)
	default:
		return fmt.Errorf("a value of Go type %T cannot be stored in GGUF", v)
	}
	return nil
}

func writeArray[T any](w *headerWriter, elem uint32, values []T, write func(T)) error {
	if len(values) > maxArrayLength {
		return fmt.Errorf("array of %d elements is longer than the limit of %d", len(values), maxArrayLength)
	}
	w.u32(typeArray)
	w.u32(elem)
	w.u64(uint64(len(values)))
	for _, v := range values {
		write(v)
	}
	return nil
}

// ReadTensorData reads the encoded bytes of one tensor of f.
func (f *File) ReadTensorData(t TensorInfo) ([]byte, error) {
	src := f.src
	if src == nil {
		fh, err := os.Open(f.Path)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		src = fh
	}
	data := make([]byte, t.Bytes())
	if _, err := src.ReadAt(data, f.DataOffset+int64(t.Offset)); err != nil {
		return nil, fileErr(f.Path, "", t.Name, ErrTruncated, "reading data: %v", err)
	}
	return data, nil
}
