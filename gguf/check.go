package gguf

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/ollama/ollama/fs"
)

// A Checker validates the keys and tensors a file of one architecture must have, before
// ollama's backend sees it: the backend binds missing tensors to nil and reads a key of the
// wrong type as zero, which surfaces later as a nil dereference or a model with no layers.
type Checker func(*File) error

var (
	archMu        sync.RWMutex
	architectures = map[string]Checker{}
)

// RegisterArchitecture makes an architecture known to Open. Packages that implement a model
// register it in init, next to their ollama model.Register call.
func RegisterArchitecture(name string, check Checker) {
	archMu.Lock()
	defer archMu.Unlock()
	if _, dup := architectures[name]; dup {
		panic("ggml: architecture registered twice: " + name)
	}
	architectures[name] = check
}

// Architectures lists the registered architecture names, sorted.
func Architectures() []string {
	archMu.RLock()
	defer archMu.RUnlock()
	names := make([]string, 0, len(architectures))
	for n := range architectures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open reads the GGUF header at path and runs every check: structure, known architecture,
// tensor names that ollama's backend can place, and the architecture's own checker.
func Open(path string) (*File, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// OpenReader is Open for GGUF bytes that are not a file of their own; see Read.
func OpenReader(name string, r io.ReaderAt, size int64) (*File, error) {
	f, err := Read(name, r, size)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// check runs the checks of Open that follow the structural ones of ReadFile.
func (f *File) check() error {
	path := f.Path
	arch, err := Key[string](f, "general.architecture")
	if err != nil {
		return err
	}
	archMu.RLock()
	check, ok := architectures[arch]
	archMu.RUnlock()
	if !ok {
		return fileErr(path, "general.architecture", "", ErrArchitecture,
			"%q is not an architecture toklip runs (known: %s)", arch, strings.Join(Architectures(), ", "))
	}
	if err := f.checkPlacement(); err != nil {
		return err
	}
	if err := check(f); err != nil {
		return err
	}
	return nil
}

// Key returns the value of a metadata key, which must be present and of type T.
func Key[T any](f *File, key string) (T, error) {
	var zero T
	v, ok := f.KV[key]
	if !ok {
		return zero, fileErr(f.Path, key, "", ErrMissingKey, "the key is required")
	}
	t, ok := v.(T)
	if !ok {
		return zero, fileErr(f.Path, key, "", ErrKeyType, "value has type %s, want %s", typeName(v), typeName(zero))
	}
	return t, nil
}

// KeyOr is Key with a default for a missing key. A key of the wrong type is still an error:
// ollama would silently read it as zero.
func KeyOr[T any](f *File, key string, def T) (T, error) {
	if _, ok := f.KV[key]; !ok {
		return def, nil
	}
	return Key[T](f, key)
}

func typeName(v any) string {
	switch v.(type) {
	case uint32:
		return "uint32"
	case int32:
		return "int32"
	case float32:
		return "float32"
	case string:
		return "string"
	case bool:
		return "bool"
	case []string:
		return "array of string"
	case []int32:
		return "array of int32"
	case []float32:
		return "array of float32"
	}
	return fmt.Sprintf("%T", v)
}

// ExpectTensor returns the named tensor after checking its shape (ggml order, trailing ones
// ignored) and, when types are given, that its type is one of them.
func (f *File) ExpectTensor(name string, shape []uint64, types ...TensorType) (TensorInfo, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, fileErr(f.Path, "", name, ErrMissingTensor, "the tensor is required, want shape %v", shape)
	}
	return t, f.checkTensor(t, shape, types)
}

// OptionalTensor is ExpectTensor for a tensor that may be absent (a bias, a tied output).
func (f *File) OptionalTensor(name string, shape []uint64, types ...TensorType) (TensorInfo, bool, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, false, nil
	}
	return t, true, f.checkTensor(t, shape, types)
}

func (f *File) checkTensor(t TensorInfo, shape []uint64, types []TensorType) error {
	if !slices.Equal(trimOnes(t.Shape), trimOnes(shape)) {
		return fileErr(f.Path, "", t.Name, ErrShape, "shape is %v, want %v", t.Shape, shape)
	}
	if len(types) > 0 && !slices.Contains(types, t.Type) {
		names := make([]string, len(types))
		for i, ty := range types {
			names[i] = ty.String()
		}
		return fileErr(f.Path, "", t.Name, ErrType, "type is %s, want one of %s", t.Type, strings.Join(names, ", "))
	}
	return nil
}

func trimOnes(s []uint64) []uint64 {
	for len(s) > 1 && s[len(s)-1] == 1 {
		s = s[:len(s)-1]
	}
	return s
}

// checkPlacement applies the rule by which ollama's backend (ml/backend/ggml.New) assigns a
// tensor to a layer: a name that is not an embedding, output, rope-factor or v./mm./s. tensor
// is given to the block whose index is the first run of digits in the name, and a block index
// at or past block_count indexes past a slice and panics. Such a file is refused here instead.
func (f *File) checkPlacement() error {
	// ollama reads block_count only as a uint32; any other type would count as zero blocks.
	key := f.Architecture() + ".block_count"
	blocks, err := KeyOr(f, key, uint32(0))
	if err != nil {
		return err
	}
	for _, t := range f.Tensors {
		if isPlacedByName(t.Name) {
			continue
		}
		fields := strings.FieldsFunc(t.Name, func(r rune) bool { return !unicode.IsNumber(r) })
		if len(fields) == 0 {
			continue
		}
		i, err := strconv.Atoi(fields[0])
		if err != nil {
			continue // the backend treats an unparsable number as "no block": the tensor goes to the CPU
		}
		if i >= int(blocks) {
			return fileErr(f.Path, "", t.Name, ErrPlacement,
				"the digits %q read as block %d but the file has %d blocks; name non-block tensors under v., mm. or s., or without digits", fields[0], i, blocks)
		}
	}
	return nil
}

// isPlacedByName mirrors the cases of ml/backend/ggml.New that do not look at digits.
func isPlacedByName(name string) bool {
	parts := strings.Split(name, ".")
	has := func(words ...string) bool {
		for _, w := range words {
			if slices.Contains(parts, w) {
				return true
			}
		}
		return false
	}
	return has("position_embd", "token_embd", "token_norm_embd", "token_types",
		"cls", "output", "output_norm", "altup_proj", "altup_unembd_proj",
		"per_layer_token_embd", "per_layer_model_proj", "per_layer_proj_norm",
		"rope_freqs", "rope_factors_long", "rope_factors_short") ||
		strings.HasPrefix(name, "v.") || strings.HasPrefix(name, "mm.") || strings.HasPrefix(name, "s.")
}

// FromConfig wraps the key-values ollama hands a model constructor as a File without tensors,
// so that constructors read their keys with the same strict parsers as the checkers. ollama keeps
// arrays in an internal type; they are unwrapped into the slices Key expects.
func FromConfig(c fs.Config) *File {
	kv := make(map[string]any, c.Len())
	arch := c.Architecture()
	for k := range c.Keys() {
		v := c.Value(k)
		switch v.(type) {
		case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64, bool, string:
		default: // an array: fs.Config's accessors take the key without the architecture prefix
			short := strings.TrimPrefix(k, arch+".")
			if ints := c.Ints(short); ints != nil {
				v = ints
			} else if ss := c.Strings(short); ss != nil {
				v = ss
			} else if fs := c.Floats(short); fs != nil {
				v = fs
			} else if bs := c.Bools(short); bs != nil {
				v = bs
			}
		}
		kv[k] = v
	}
	return &File{Path: "model " + c.String("general.name", arch), KV: kv}
}

// KeepRequiredTypes lets the architecture's checker overrule the general rules of QuantizedType:
// a tensor it accepts only in another type (TokLIP's text position table, read in F32) keeps the
// type it has. The checker reports one tensor at a time, so the planned file is checked again
// after each change; a failure that no type change explains is returned as is.
func (f *File) KeepRequiredTypes(planned []TensorType) error {
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
