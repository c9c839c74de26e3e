package convert

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path"
	"strings"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// A PyTorch checkpoint saved by torch.save is a zip archive: "<name>/data.pkl" is a pickle of the
// saved object whose tensors refer, through persistent ids, to storages stored uncompressed as
// "<name>/data/<key>". The pickle is run by toklip's restricted unpickler (pickle.go); the
// storages are read lazily, so that only the tensors kept are ever loaded: an official TokLIP
// checkpoint is 8.3 GB, 3.5 GB of which is optimizer state.
//
// Every record is read as torch.save writes it, stored rather than compressed: a compressed
// entry could inflate to any size from a few bytes (a zip bomb), and one that is stored holds
// all its bytes inside the file, where each claimed size is checked.

// checkpoint is an open torch.save archive.
type checkpoint struct {
	path     string
	r        io.ReaderAt
	closer   io.Closer
	storages map[string]*storageEntry
	root     any
}

// storageEntry is where a storage's bytes lie in the file.
type storageEntry struct {
	offset, size int64
}

// tensorRef is a tensor of the checkpoint, not yet read.
type tensorRef struct {
	storage *storageRef
	offset  int   // in elements
	shape   []int // PyTorch order
	stride  []int
	count   int // elements, the product of shape
}

type storageRef struct {
	dtype dtype
	key   string
	size  int // in elements
}

type dtype struct {
	name  string
	bytes int
}

var storageTypes = map[string]dtype{
	"FloatStorage": {"F32", 4}, "HalfStorage": {"F16", 2}, "BFloat16Storage": {"BF16", 2},
	"DoubleStorage": {"F64", 8}, "LongStorage": {"I64", 8}, "IntStorage": {"I32", 4},
	"ShortStorage": {"I16", 2}, "CharStorage": {"I8", 1}, "ByteStorage": {"U8", 1}, "BoolStorage": {"BOOL", 1},
}

type storageClass struct{ dtype dtype }

// maxDims limits a tensor's dimensions: model weights have at most 5 (a 3-D convolution's), and
// GGUF takes at most 4.
const maxDims = 8

func (t *tensorRef) elements() int { return t.count }

// openCheckpoint reads the pickle of a torch.save zip archive. Storages stay on disk.
func openCheckpoint(p string) (*checkpoint, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	c, err := readCheckpoint(p, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	c.closer = f
	return c, nil
}

// readCheckpoint reads the pickle of a torch.save archive of size bytes held in r; name stands
// for the file in errors.
func readCheckpoint(name string, r io.ReaderAt, size int64) (*checkpoint, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PyTorch zip checkpoint (torch.save since 1.6): %v", name, err)
	}
	c := &checkpoint{path: name, r: r, storages: map[string]*storageEntry{}}
	var data *zip.File
	for _, f := range zr.File {
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") == 1 {
			if data != nil {
				return nil, fmt.Errorf("%s: the archive holds two pickles, %s and %s", name, data.Name, f.Name)
			}
			data = f
		}
	}
	if data == nil {
		return nil, fmt.Errorf("%s: no data.pkl in the archive", name)
	}
	prefix := path.Dir(data.Name) + "/data/"
	for _, f := range zr.File {
		key, ok := strings.CutPrefix(f.Name, prefix)
		if !ok || key == "" || strings.Contains(key, "/") {
			continue
		}
		if _, dup := c.storages[key]; dup {
			return nil, fmt.Errorf("%s: the archive holds storage %s twice", name, key)
		}
		e, err := storedEntry(name, f, size)
		if err != nil {
			return nil, err
		}
		c.storages[key] = e
	}
	e, err := storedEntry(name, data, size)
	if err != nil {
		return nil, err
	}
	if e.size > maxPickle {
		return nil, fmt.Errorf("%s: data.pkl has %d bytes, more than the %d a checkpoint's pickle needs", name, e.size, maxPickle)
	}
	pkl := make([]byte, e.size) // inside the file: checked by storedEntry
	if _, err := r.ReadAt(pkl, e.offset); err != nil {
		return nil, fmt.Errorf("%s: reading data.pkl: %v", name, err)
	}
	if c.root, err = unpickle(pkl, c.persistentLoad); err != nil {
		return nil, fmt.Errorf("%s: data.pkl: %v", name, err)
	}
	return c, nil
}

// storedEntry locates the bytes of a zip entry, which must be stored, not compressed, and lie
// inside the file. archive/zip reads the sizes from the central directory and does not compare
// them with the file; here they are.
func storedEntry(name string, f *zip.File, size int64) (*storageEntry, error) {
	if f.Method != zip.Store {
		return nil, fmt.Errorf("%s: %s is compressed (zip method %d); torch.save stores every record uncompressed, and toklip reads them only so (a compressed record can inflate to any size)", name, f.Name, f.Method)
	}
	if f.CompressedSize64 != f.UncompressedSize64 {
		return nil, fmt.Errorf("%s: %s is stored with %d bytes but claims %d once read", name, f.Name, f.CompressedSize64, f.UncompressedSize64)
	}
	off, err := f.DataOffset()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", name, f.Name, err)
	}
	if off < 0 || off > size || f.CompressedSize64 > uint64(size-off) {
		return nil, fmt.Errorf("%s: %s claims %d bytes from byte %d, past the end of the file (%d bytes)", name, f.Name, f.CompressedSize64, off, size)
	}
	return &storageEntry{offset: off, size: int64(f.CompressedSize64)}, nil
}

func (c *checkpoint) Close() error {
	if c.closer == nil {
		return nil
	}
	return c.closer.Close()
}

// persistentLoad resolves ('storage', type, key, location, size) to a lazy storage.
func (c *checkpoint) persistentLoad(id any) (any, error) {
	t, ok := id.(pyTuple)
	if !ok || len(t) < 5 {
		return nil, fmt.Errorf("a persistent id is a %s, not a storage tuple", describe(id))
	}
	kind, _ := t[0].(string)
	st, okType := t[1].(*storageClass)
	key, okKey := t[2].(string)
	size, okSize := t[4].(int64)
	if kind != "storage" || !okType || !okKey || !okSize || size < 0 {
		return nil, errors.New("a persistent id is not a ('storage', type, key, location, size) tuple")
	}
	e, ok := c.storages[key]
	if !ok {
		return nil, fmt.Errorf("storage %s is not in the archive", quoteName(key))
	}
	if size > e.size/int64(st.dtype.bytes) {
		return nil, fmt.Errorf("storage %s claims %d elements of %d bytes, more than its %d bytes in the file", quoteName(key), size, st.dtype.bytes, e.size)
	}
	return &storageRef{dtype: st.dtype, key: key, size: int(size)}, nil
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...). As
// torch's own set_ does, it checks that every element the shape and strides reach lies inside
// the storage; all the arithmetic is on numbers from the file, so it is checked for overflow.
func rebuildTensor(args pyTuple) (any, error) {
	if len(args) < 4 {
		return nil, errors.New("too few arguments")
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("the storage is a %s", describe(args[0]))
	}
	offset, ok := args[1].(int64)
	if !ok || offset < 0 {
		return nil, errors.New("the offset is not an int of at least 0")
	}
	shape, err := ints(args[2])
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	stride, err := ints(args[3])
	if err != nil {
		return nil, fmt.Errorf("stride: %w", err)
	}
	if len(shape) > maxDims {
		return nil, fmt.Errorf("size %v has %d dimensions; toklip reads tensors of up to %d", shape, len(shape), maxDims)
	}
	if len(stride) != len(shape) {
		return nil, fmt.Errorf("size %v and stride %v differ in length", shape, stride)
	}
	count, last := uint64(1), uint64(0) // elements; the offset of the last one from the first
	for i, d := range shape {
		hi, lo := bits.Mul64(count, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return nil, fmt.Errorf("size %v holds more elements than any storage", shape)
		}
		count = lo
		if d > 0 {
			hi, lo := bits.Mul64(uint64(d-1), uint64(stride[i]))
			if hi != 0 || lo > math.MaxInt64-last {
				return nil, fmt.Errorf("size %v with stride %v reaches past any storage", shape, stride)
			}
			last += lo
		}
	}
	if count > 0 && (uint64(offset) >= uint64(st.size) || last >= uint64(st.size)-uint64(offset)) {
		return nil, fmt.Errorf("size %v, stride %v from offset %d reach past the %d elements of storage %s", shape, stride, offset, st.size, quoteName(st.key))
	}
	return &tensorRef{storage: st, offset: int(offset), shape: shape, stride: stride, count: int(count)}, nil
}

func ints(v any) ([]int, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("expected a tuple of ints, got a %s", describe(v))
	}
	// A tuple can be a memo reference, repeated for a few bytes each time: its length is
	// limited before it is copied, so that a call costs at most a few words per byte.
	if len(t) > maxDims {
		return nil, fmt.Errorf("a size or stride of %d dimensions; toklip reads tensors of up to %d", len(t), maxDims)
	}
	out := make([]int, len(t))
	for i := range out {
		n, ok := t[i].(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("expected a tuple of ints of at least 0, got a %s at %d", describe(t[i]), i)
		}
		out[i] = int(n)
	}
	return out, nil
}

// stateDict finds the checkpoint's state_dict ("state_dict" in an open_clip training
// checkpoint, or the root itself) and strips DDP's "module." prefix.
func (c *checkpoint) stateDict() (map[string]*tensorRef, error) {
	root := c.root
	if d, ok := asDict(root); ok {
		if sd, ok := d["state_dict"]; ok {
			root = sd
		}
	}
	d, ok := asDict(root)
	if !ok {
		return nil, fmt.Errorf("%s: no state_dict in the checkpoint (its pickle holds a %s)", c.path, describe(c.root))
	}
	out := make(map[string]*tensorRef, len(d))
	for k, v := range d {
		t, ok := v.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("%s: state_dict key %q is a %s, not a tensor", c.path, k, describe(v))
		}
		key := strings.TrimPrefix(k, "module.")
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: state_dict holds %q both with and without DDP's \"module.\" prefix", c.path, key)
		}
		out[key] = t
	}
	return out, nil
}

func asDict(v any) (map[string]any, bool) {
	d, ok := v.(*pyDict)
	if !ok {
		return nil, false
	}
	out := make(map[string]any, len(d.items)/2)
	for i := 0; i < len(d.items); i += 2 {
		ks, ok := d.items[i].(string)
		if !ok {
			return nil, false
		}
		out[ks] = d.items[i+1] // a key set twice keeps its last value, as in Python
	}
	return out, true
}

// floats reads a tensor as float32, in PyTorch (row-major) order. Only contiguous float tensors
// are accepted: state-dict parameters always are.
func (c *checkpoint) floats(name string, t *tensorRef) ([]float32, error) {
	want := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] > 1 && t.stride[i] != want {
			return nil, fmt.Errorf("%s: tensor %q is not contiguous (strides %v)", c.path, name, t.stride)
		}
		want *= t.shape[i]
	}
	st := t.storage
	switch st.dtype.name {
	case "F32", "F16", "BF16":
	default:
		return nil, fmt.Errorf("%s: tensor %q has dtype %s, not a float type", c.path, name, st.dtype.name)
	}
	// rebuildTensor checked that the elements lie in the storage, persistentLoad that the
	// storage lies in its entry, and storedEntry that the entry lies in the file.
	e := c.storages[st.key]
	raw := make([]byte, t.count*st.dtype.bytes)
	if _, err := c.r.ReadAt(raw, e.offset+int64(t.offset*st.dtype.bytes)); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %v", c.path, name, err)
	}
	switch st.dtype.name {
	case "F32":
		out := make([]float32, t.count)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case "F16":
		return ggml.DecodeFloats(gguf.TypeF16, raw, uint64(t.count))
	default:
		return ggml.DecodeFloats(gguf.TypeBF16, raw, uint64(t.count))
	}
}
