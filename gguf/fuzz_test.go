package gguf_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/internal/alloc"
)

// allocLimit is what reading a GGUF header of n bytes may allocate in all (runtime TotalAlloc,
// garbage included). A header is turned into Go values that are larger than their encoding: the
// worst cases are the smallest records. A key-value of a 1-byte key and a uint8 value is 14
// bytes and costs a map slot (16-byte key + 16-byte value, in groups of 8 at 7/8 load) and the
// key's bytes, about 3x; a 1-dimension tensor info is 33 bytes and costs a TensorInfo (56), its
// shape (8), its name, an index slot (24) and a layout span (40), about 4.5x; an array of
// 8-byte empty strings costs their 16-byte headers, 2x. 8x leaves room for the allocator's
// size classes; the constant covers the read buffer (64 KiB), the File, its maps' first groups
// and error texts. Anything proportional to a claimed count rather than to the bytes present
// (the defects this guards against) exceeds it by orders of magnitude.
func allocLimit(n int) uint64 { return 8*uint64(n) + 128<<10 }

// FuzzReadGGUF feeds arbitrary bytes to the GGUF reader and checks what it promises:
//   - it returns, allocating no more than allocLimit of the input's size;
//   - a refusal is a *gguf.FileError of one of the package's kinds that names the input, in one
//     line;
//   - a file it accepts is sound (every tensor inside the data section, aligned, no overlap,
//     found by name), and survives the package's writer: written back and read again, it has
//     the same metadata, the same tensor table (names, types, shapes, in order) and the same
//     tensor bytes;
//   - Open's further checks (architecture, placement, the checker) end the same two ways.
func FuzzReadGGUF(f *testing.F) {
	for _, seed := range ggufSeeds() {
		f.Add(seed)
	}
	f.Fuzz(checkGGUF)
}

// FuzzGGUFTensorTable fuzzes the numbers of a tensor table rather than its bytes: a header of
// two tensors whose alignment, types, dimensions and offsets, and the length of the data that
// follows, are the fuzzer's. Byte mutation rarely gets a length-prefixed table right; this
// reaches the arithmetic of shapes, sizes, offsets and alignment directly. The checks are
// FuzzReadGGUF's.
func FuzzGGUFTensorTable(f *testing.F) {
	f.Add(uint32(32), uint32(0), uint64(32), uint64(2), uint64(0), uint32(0), uint64(32), uint64(256), uint32(384))
	f.Add(uint32(64), uint32(8), uint64(64), uint64(1), uint64(0), uint32(12), uint64(256), uint64(128), uint32(400))
	f.Add(uint32(32), uint32(0), uint64(1<<32), uint64(1<<32), uint64(0), uint32(0), uint64(32), uint64(0), uint32(128))
	f.Add(uint32(32), uint32(0), uint64(32), uint64(2), uint64(1<<63), uint32(0), uint64(32), uint64(256), uint32(384))
	f.Add(uint32(32), uint32(0), uint64(32), uint64(2), uint64(math.MaxUint64-31), uint32(1), uint64(32), uint64(256), uint32(384))
	f.Add(uint32(32), uint32(0), uint64(32), uint64(2), uint64(0), uint32(0), uint64(32), uint64(128), uint32(384))
	f.Add(uint32(3), uint32(0), uint64(32), uint64(2), uint64(4), uint32(0), uint64(32), uint64(256), uint32(384))
	f.Fuzz(func(t *testing.T, alignment, type0 uint32, d0, d1, offset0 uint64, type1 uint32, e0, offset1 uint64, dataLen uint32) {
		r := header(2, 2).kvString("general.architecture", "testarch").kvU32("general.alignment", alignment)
		shape := []uint64{d0, d1}
		if d1 == 0 {
			shape = shape[:1]
		}
		r.tensor("w.weight", type0, offset0, shape...).tensor("v.b", type1, offset1, e0)
		if alignment != 0 && alignment&(alignment-1) == 0 && alignment <= 1<<16 {
			r.align(int(alignment))
		}
		r.Write(make([]byte, dataLen%(1<<20)))
		checkGGUF(t, r.Bytes())
	})
}

// checkGGUF holds the reader to its promises on one input; see FuzzReadGGUF.
func checkGGUF(t *testing.T, data []byte) {
	const name = "fuzz.gguf"
	var file *gguf.File
	var err error
	n := alloc.Bytes(func() { file, err = gguf.Read(name, bytes.NewReader(data), int64(len(data))) })
	if limit := allocLimit(len(data)); n > limit {
		t.Fatalf("reading %d bytes allocated %d bytes, over the limit of %d (err: %v)", len(data), n, limit, err)
	}
	if err != nil {
		checkFileError(t, name, err)
		return
	}
	checkSound(t, file, int64(len(data)))

	var opened *gguf.File
	n = alloc.Bytes(func() { opened, err = gguf.OpenReader(name, bytes.NewReader(data), int64(len(data))) })
	if limit := allocLimit(len(data)); n > limit {
		t.Fatalf("opening %d bytes allocated %d bytes, over the limit of %d (err: %v)", len(data), n, limit, err)
	}
	if err != nil {
		checkFileError(t, name, err)
	} else if opened == nil {
		t.Fatal("OpenReader returned neither a file nor an error")
	}

	checkRoundTrip(t, file)
}

// The smallest records are the worst ratios of allocation to input; each kind, many times over,
// stays within allocLimit. The first case is the defect that fuzzing found in an earlier reader
// (fixed in 50f0efc): 59 bytes claiming 2^20 tensors made it size the tensor index by the
// claim before checking it, 56 MB (2^28 tensors: out of memory, the fuzz worker died).
func TestHeaderAllocationIsProportional(t *testing.T) {
	const n = 20000
	many := func(r *raw, each func(i int)) []byte {
		for i := range n {
			each(i)
		}
		return r.Bytes()
	}
	cases := []struct {
		name string
		file func() []byte
	}{
		{"59 bytes claiming 2^20 tensors", func() []byte { return header(1<<20, 1).str("a").u32(8).str("xxxxxxxxxxxxxx").Bytes() }},
		{"59 bytes claiming 2^28 tensors", func() []byte { return header(1<<28, 1).str("a").u32(8).str("xxxxxxxxxxxxxx").Bytes() }},
		{"key-values of one byte", func() []byte {
			r := header(0, n)
			return many(r, func(i int) { r.str(fmt.Sprintf("%05d", i)).u32(0).WriteByte(1) })
		}},
		{"uint16 array", func() []byte {
			r := header(0, 1).str("a").u32(9).u32(2).u64(n)
			return many(r, func(int) { r.WriteString("\xff\xff") })
		}},
		{"int32 array", func() []byte {
			r := header(0, 1).str("a").u32(9).u32(5).u64(n)
			return many(r, func(int) { r.u32(math.MaxUint32) })
		}},
		{"empty strings", func() []byte {
			r := header(0, 1).str("a").u32(9).u32(8).u64(n)
			return many(r, func(int) { r.u64(0) })
		}},
		{"one-byte strings", func() []byte {
			r := header(0, 1).str("a").u32(9).u32(8).u64(n)
			return many(r, func(int) { r.str("x") })
		}},
		{"tensor infos", func() []byte {
			r := header(n, 1).kvString("general.architecture", "x")
			return many(r, func(i int) { r.tensor(fmt.Sprintf("%05d", i), 0, uint64(i)*32, 8) })
		}},
		{"a long string", func() []byte { return header(0, 1).kvString("a", strings.Repeat("x", 1<<20)).Bytes() }},
	}
	for _, c := range cases {
		b := c.file()
		var err error
		got := alloc.Bytes(func() { _, err = gguf.Read("x.gguf", bytes.NewReader(b), int64(len(b))) })
		if limit := allocLimit(len(b)); got > limit {
			t.Errorf("%s: %d bytes allocated %d, over the limit of %d (err: %v)", c.name, len(b), got, limit, err)
		} else {
			t.Logf("%s: %d bytes allocated %d (%.1fx)", c.name, len(b), got, float64(got)/float64(len(b)))
		}
	}
}

var fileErrorKinds = []error{gguf.ErrFormat, gguf.ErrTruncated, gguf.ErrLimit, gguf.ErrArchitecture,
	gguf.ErrMissingKey, gguf.ErrKeyType, gguf.ErrMissingTensor, gguf.ErrShape, gguf.ErrType, gguf.ErrPlacement}

func checkFileError(t *testing.T, name string, err error) {
	t.Helper()
	var fe *gguf.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *gguf.FileError", err, err)
	}
	if fe.Path != name || !strings.HasPrefix(err.Error(), name+": ") {
		t.Fatalf("error %q does not name %s", err, name)
	}
	if !slices.ContainsFunc(fileErrorKinds, func(k error) bool { return errors.Is(err, k) }) {
		t.Fatalf("error %q is of no known kind", err)
	}
	if strings.ContainsAny(err.Error(), "\n\r") {
		t.Fatalf("error %q is more than one line", err)
	}
}

// checkSound verifies the layout promises of File independently of the reader's own checks.
func checkSound(t *testing.T, f *gguf.File, size int64) {
	t.Helper()
	// A file without tensors may end before its (empty) data section's padding.
	if f.Size != size || f.DataOffset < 0 || len(f.Tensors) > 0 && f.DataOffset > size {
		t.Fatalf("size %d, data offset %d, for %d bytes", f.Size, f.DataOffset, size)
	}
	type span struct{ start, end uint64 }
	var spans []span
	for i, ti := range f.Tensors {
		if got, ok := f.Tensor(ti.Name); !ok || got.Name != ti.Name || got.Offset != ti.Offset {
			t.Fatalf("tensor %d %q is not found by name", i, ti.Name)
		}
		if len(ti.Shape) == 0 || len(ti.Shape) > 4 || ti.Bytes() == 0 {
			t.Fatalf("tensor %q: shape %v of %s holds %d bytes", ti.Name, ti.Shape, ti.Type, ti.Bytes())
		}
		end := uint64(f.DataOffset) + ti.Offset + ti.Bytes()
		if ti.Offset > uint64(size) || ti.Bytes() > uint64(size) || end > uint64(size) {
			t.Fatalf("tensor %q: offset %d + %d bytes runs past %d", ti.Name, ti.Offset, ti.Bytes(), size)
		}
		spans = append(spans, span{ti.Offset, ti.Offset + ti.Bytes()})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			t.Fatalf("tensor data overlaps: %v", spans)
		}
	}
}

// checkRoundTrip writes f back with WriteFile and reads it again.
func checkRoundTrip(t *testing.T, f *gguf.File) {
	t.Helper()
	tensors := make([]*gguf.Tensor, len(f.Tensors))
	for i, ti := range f.Tensors {
		data, err := f.ReadTensorData(ti)
		if err != nil {
			t.Fatalf("tensor %q of a file that passed its checks: %v", ti.Name, err)
		}
		tensors[i] = &gguf.Tensor{Name: ti.Name, Type: ti.Type, Shape: ti.Shape, Data: data}
	}
	path := filepath.Join(t.TempDir(), "back.gguf")
	err := gguf.WriteFile(path, f.KV, tensors)
	if _, ok := f.KV["general.architecture"].(string); !ok {
		if err == nil {
			t.Fatal("WriteFile wrote a file without general.architecture")
		}
		return // the writer's one documented refusal
	}
	if err != nil {
		t.Fatalf("a file that reads cannot be written back: %v", err)
	}
	back, err := gguf.ReadFile(path)
	if err != nil {
		t.Fatalf("a written-back file does not read: %v", err)
	}
	if d := diffKV(f.KV, back.KV); d != "" {
		t.Fatalf("metadata changed in the round trip: %s", d)
	}
	if len(back.Tensors) != len(f.Tensors) {
		t.Fatalf("%d tensors came back, want %d", len(back.Tensors), len(f.Tensors))
	}
	for i, want := range f.Tensors {
		got := back.Tensors[i]
		if got.Name != want.Name || got.Type != want.Type || !slices.Equal(got.Shape, want.Shape) {
			t.Fatalf("tensor %d came back as %s %s %v, want %s %s %v", i, got.Name, got.Type, got.Shape, want.Name, want.Type, want.Shape)
		}
		data, err := back.ReadTensorData(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, tensors[i].Data) {
			t.Fatalf("tensor %q: data changed in the round trip", want.Name)
		}
	}
}

// diffKV describes the first difference between two metadata maps; floats compare by their bits,
// so that a NaN that comes back as the same NaN counts as equal.
func diffKV(a, b map[string]any) string {
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
	}) {
		bv, ok := b[k]
		if !ok {
			return fmt.Sprintf("key %q is missing", k)
		}
		if !sameValue(a[k], bv) {
			return fmt.Sprintf("key %q: %v (%T) came back as %v (%T)", k, a[k], a[k], bv, bv)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d keys came back, want %d", len(b), len(a))
	}
	return ""
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case float32:
		b, ok := b.(float32)
		return ok && math.Float32bits(a) == math.Float32bits(b)
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	case []float32:
		b, ok := b.([]float32)
		return ok && slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
	case []float64:
		b, ok := b.([]float64)
		return ok && slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
	}
	return reflect.DeepEqual(a, b)
}

// align pads to a multiple of n bytes.
func (r *raw) align(n int) *raw {
	for r.Len()%n != 0 {
		r.WriteByte(0)
	}
	return r
}

// ggufSeeds are well-formed files of every value type and several tensor types, and the
// near-misses of TestBadFilesGiveClearErrors, for the fuzzer to mutate.
func ggufSeeds() [][]byte {
	arch := func(r *raw) *raw { return r.kvString("general.architecture", "testarch") }
	every := header(0, 15)
	arch(every)
	every.str("u8").u32(0).WriteByte(7)
	every.str("i8").u32(1).WriteByte(0xff)
	every.str("u16").u32(2).WriteString("\x01\x02")
	every.str("i16").u32(3).WriteString("\xff\xff")
	every.kvU32("u32", 5)
	every.str("i32").u32(5).u32(math.MaxUint32)
	every.str("f32").u32(6).u32(math.Float32bits(0.5))
	every.str("bool").u32(7).WriteByte(1)
	every.str("u64").u32(10).u64(1 << 40)
	every.str("i64").u32(11).u64(math.MaxUint64)
	every.str("f64").u32(12).u64(math.Float64bits(-2.25))
	every.str("strings").u32(9).u32(8).u64(2).str("a").str("")
	every.str("ints").u32(9).u32(5).u64(2).u32(1).u32(2)
	every.str("bytes").u32(9).u32(0).u64(3).WriteString("xyz")
	return [][]byte{
		valid().Bytes(),
		every.Bytes(),
		arch(header(2, 2)).kvU32("general.alignment", 64).tensor("w.weight", 0, 0, 32, 2).tensor("v.q", 8, 256, 64).align(64).data(256 + 68).Bytes(),
		arch(header(3, 1)).tensor("w.weight", 1, 0, 32, 2).tensor("x.q4", 2, 128, 32).tensor("y.k", 12, 160, 256).data(160 + 144).Bytes(),
		arch(header(1, 1)).tensor("w.weight", 0, 0, 32, 2).data(100).Bytes(),
		header(0, 1).str("a").u32(9).u32(4).u64(1 << 50).Bytes(),
		arch(header(2, 1)).tensor("w.weight", 0, 0, 32, 2).tensor("b.weight", 0, 128, 32, 2).data(512).Bytes(),
		arch(header(1, 1)).tensor("w.weight", 0, 0, 1<<40, 1<<40).data(0).Bytes(),
		[]byte("GGUF"),
	}
}
