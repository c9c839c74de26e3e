package convert

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/toklip/toklip/ggml"
)

// A PyTorch checkpoint saved by torch.save is a zip archive: "<name>/data.pkl" is a pickle of the
// saved object whose tensors refer, through persistent ids, to storages stored uncompressed as
// "<name>/data/<key>". The pickle is read with gopickle (already in ollama's module graph); the
// storages are read lazily, so that only the tensors kept are ever loaded: an official TokLIP
// checkpoint is 8.3 GB, 3.5 GB of which is optimizer state.

// checkpoint is an open torch.save archive.
type checkpoint struct {
	path     string
	zr       *zip.ReadCloser
	storages map[string]*zip.File
	root     any
}

// tensorRef is a tensor of the checkpoint, not yet read.
type tensorRef struct {
	storage *storageRef
	offset  int   // in elements
	shape   []int // PyTorch order
	stride  []int
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

func (t *tensorRef) elements() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// openCheckpoint reads the pickle of a torch.save zip archive. Storages stay on disk.
func openCheckpoint(p string) (*checkpoint, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PyTorch zip checkpoint (torch.save since 1.6): %w", p, err)
	}
	c := &checkpoint{path: p, zr: zr, storages: map[string]*zip.File{}}
	var data *zip.File
	for _, f := range zr.File {
		dir, name := path.Split(f.Name)
		switch {
		case name == "data.pkl" && strings.Count(f.Name, "/") == 1:
			data = f
		case strings.HasSuffix(dir, "/data/"):
			c.storages[name] = f
		}
	}
	if data == nil {
		zr.Close()
		return nil, fmt.Errorf("%s: no data.pkl in the archive", p)
	}
	r, err := data.Open()
	if err != nil {
		zr.Close()
		return nil, err
	}
	defer r.Close()
	u := pickle.NewUnpickler(r)
	u.FindClass = findClass
	u.PersistentLoad = c.persistentLoad
	if c.root, err = u.Load(); err != nil {
		zr.Close()
		return nil, fmt.Errorf("%s: reading data.pkl: %w", p, err)
	}
	return c, nil
}

func (c *checkpoint) Close() error { return c.zr.Close() }

// persistentLoad resolves ('storage', type, key, location, size) to a lazy storage.
func (c *checkpoint) persistentLoad(id any) (any, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, fmt.Errorf("unexpected persistent id %v", id)
	}
	kind, _ := t.Get(0).(string)
	st, okType := t.Get(1).(*storageClass)
	key, okKey := t.Get(2).(string)
	size, okSize := t.Get(4).(int)
	if kind != "storage" || !okType || !okKey || !okSize {
		return nil, fmt.Errorf("unexpected persistent id %v", id)
	}
	f, ok := c.storages[key]
	if !ok {
		return nil, fmt.Errorf("storage %q is not in the archive", key)
	}
	if f.Method != zip.Store || int64(f.UncompressedSize64) < int64(size)*int64(st.dtype.bytes) {
		return nil, fmt.Errorf("storage %q: want %d uncompressed bytes", key, size*st.dtype.bytes)
	}
	return &storageRef{dtype: st.dtype, key: key, size: size}, nil
}

// findClass resolves the globals a training checkpoint pickles. Tensors and storages are the
// ones that matter; anything else (numpy scalars and dtypes, codecs, optimizer classes) becomes
// an opaque object, which is an error only if it turns up where a tensor is expected.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	}
	if module == "torch" {
		if dt, ok := storageTypes[name]; ok {
			return &storageClass{dtype: dt}, nil
		}
	}
	return &opaque{module: module, name: name}, nil
}

type storageClass struct{ dtype dtype }

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, errors.New("_rebuild_tensor_v2: too few arguments")
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage is %T", args[0])
	}
	offset, ok := args[1].(int)
	if !ok {
		return nil, errors.New("_rebuild_tensor_v2: offset is not an int")
	}
	shape, err := ints(args[2])
	if err != nil {
		return nil, err
	}
	stride, err := ints(args[3])
	if err != nil {
		return nil, err
	}
	return &tensorRef{storage: st, offset: offset, shape: shape, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(tensor, requires_grad, hooks).
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter: no tensor")
	}
	return args[0], nil
}

func ints(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("expected a tuple of ints, got %T", v)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("expected a tuple of ints, got %v", t)
		}
		out[i] = n
	}
	return out, nil
}

// opaque stands for a Python object toklip does not need: it accepts construction, calls and
// state, and records nothing.
type opaque struct{ module, name string }

func (o *opaque) Call(...any) (any, error)    { return o, nil }
func (o *opaque) PyNew(...any) (any, error)   { return o, nil }
func (o *opaque) PySetState(any) error        { return nil }
func (o *opaque) PyDictSet(any, any) error    { return nil }
func (o *opaque) PySetAttr(string, any) error { return nil }
func (o *opaque) String() string              { return o.module + "." + o.name }

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
		return nil, fmt.Errorf("%s: no state_dict in the checkpoint (found %T)", c.path, c.root)
	}
	out := make(map[string]*tensorRef, len(d))
	for k, v := range d {
		t, ok := v.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("%s: state_dict key %q is a %T, not a tensor", c.path, k, v)
		}
		out[strings.TrimPrefix(k, "module.")] = t
	}
	return out, nil
}

func asDict(v any) (map[string]any, bool) {
	out := map[string]any{}
	switch d := v.(type) {
	case *types.OrderedDict:
		for k, e := range d.Map {
			ks, ok := k.(string)
			if !ok {
				return nil, false
			}
			out[ks] = e.Value
		}
	case *types.Dict:
		for _, e := range *d {
			ks, ok := e.Key.(string)
			if !ok {
				return nil, false
			}
			out[ks] = e.Value
		}
	default:
		return nil, false
	}
	return out, true
}

// floats reads a tensor as float32, in PyTorch (row-major) order. Only contiguous float tensors
// are accepted: state-dict parameters always are.
func (c *checkpoint) floats(name string, t *tensorRef) ([]float32, error) {
	n := t.elements()
	want := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] > 1 && t.stride[i] != want {
			return nil, fmt.Errorf("%s: tensor %q is not contiguous (strides %v)", c.path, name, t.stride)
		}
		want *= t.shape[i]
	}
	st := t.storage
	if t.offset+n > st.size {
		return nil, fmt.Errorf("%s: tensor %q runs past its storage", c.path, name)
	}
	f := c.storages[st.key]
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, int64(t.offset*st.dtype.bytes)); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", c.path, name, err)
	}
	raw := make([]byte, n*st.dtype.bytes)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", c.path, name, err)
	}
	switch st.dtype.name {
	case "F32":
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		return out, nil
	case "F16":
		return ggml.DecodeFloats(ggml.TypeF16, raw, uint64(n))
	case "BF16":
		return ggml.DecodeFloats(ggml.TypeBF16, raw, uint64(n))
	}
	return nil, fmt.Errorf("%s: tensor %q has dtype %s, not a float type", c.path, name, st.dtype.name)
}

// PySetState accepts the state a pickle may BUILD onto a tensor (tensor attributes): ignored.
func (t *tensorRef) PySetState(any) error { return nil }
