package convert

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toklip/toklip/internal/alloc"
)

// pk writes pickles opcode by opcode, so that tests can write what torch.save would not.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk  { p.Write(b); return p }
func (p *pk) text(s string) *pk { p.WriteString(s); return p }
func (p *pk) global(module, name string) *pk {
	p.WriteString("c" + module + "\n" + name + "\n")
	return p
}
func (p *pk) str(s string) *pk {
	p.WriteByte(opBinUnicode)
	p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.WriteString(s)
	return p
}
func (p *pk) int(v int64) *pk {
	if v == int64(int32(v)) {
		p.WriteByte(opBinInt)
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(v)))
		return p
	}
	p.op(opLong1, 8)
	p.Write(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	return p
}
func (p *pk) ints(vs ...int64) *pk {
	p.op(opMark)
	for _, v := range vs {
		p.int(v)
	}
	return p.op(opTuple)
}

// tensor writes torch._utils._rebuild_tensor_v2 of a FloatStorage key of size elements.
func (p *pk) tensor(key string, size, offset int64, shape, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.op(opMark).str("storage").global("torch", "FloatStorage").str(key).str("cpu").int(size).op(opTuple, opBinPersID)
	p.int(offset).ints(shape...).ints(stride...).op(opNewFalse)
	p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	return p.op(opTuple, opReduce)
}

// numpyScalar writes what an official checkpoint pickles for a numpy float64.
func (p *pk) numpyScalar() *pk {
	p.global("numpy.core.multiarray", "scalar")
	p.global("numpy", "dtype").str("f8").op(opNewFalse, opNewTrue, opTuple3, opReduce)
	p.op(opMark).int(3).str("<").op(opNone, opNone, opNone).int(-1).int(-1).int(0).op(opTuple, opBuild)
	p.global("_codecs", "encode").str("\x00\x00\x00\x00\x00\x00\xf0?").str("latin1").op(opTuple2, opReduce)
	return p.op(opTuple2, opReduce)
}

// checkpointPickle is {"epoch": 3, "best": numpy.float64(1), "state_dict": OrderedDict(tensors)}
// with one tensor per storage: a 2x3 tensor in storage "0", a 4-vector at offset 2 of "1".
func checkpointPickle() []byte {
	p := &pk{}
	p.op(opProto, 2, opEmptyDict, opMark)
	p.str("epoch").int(3)
	p.str("best").numpyScalar()
	p.str("state_dict").global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opMark)
	p.str("module.a.weight").tensor("0", 6, 0, []int64{2, 3}, []int64{3, 1})
	p.str("module.b.bias").tensor("1", 6, 2, []int64{4}, []int64{1})
	p.op(opSetItems, opSetItems, opStop)
	return p.Bytes()
}

// zipEntry is one record of a checkpoint archive.
type zipEntry struct {
	name   string
	data   []byte
	method uint16
}

func torchZip(entries ...zipEntry) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, e := range entries {
		f, err := w.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			panic(err)
		}
		f.Write(e.data)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func floatBytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// validCheckpoint is checkpointPickle's archive.
func validCheckpoint() []byte {
	return torchZip(
		zipEntry{name: "ck/data.pkl", data: checkpointPickle()},
		zipEntry{name: "ck/data/0", data: floatBytes(1, 2, 3, 4, 5, 6)},
		zipEntry{name: "ck/data/1", data: floatBytes(0, 0, 7, 8, 9, 10)},
	)
}

// allocLimit is what reading a checkpoint of n bytes (its archive's directory and its pickle)
// may allocate in all. The archive's directory costs archive/zip a *zip.File of about 200 bytes
// per 46-byte record header, 5x. A pickle is a program whose one-byte instructions each make a
// Python object of a few words, or a stack or memo slot: the unpickler's worst instruction
// (EMPTY_LIST: a list header and a stack slot) costs about 45 bytes for its one byte; CPython's
// costs as much. 64x bounds both. The constant covers fixed costs, the largest of which is
// archive/zip's: it allocates a directory record's name, extra field and comment (up to 64 KiB
// each, by their 2-byte lengths) before reading them, so the one record that turns out to be
// cut short can cost 192 KiB (found by this target: 134 bytes allocated 103 KB). What this rules
// out is allocation driven by a claimed length or count, which no multiple of the input bounds
// (gopickle allocated 2 GB for a 7-byte pickle).
func allocLimit(n int) uint64 { return 64*uint64(n) + 256<<10 }

// FuzzTorchCheckpoint feeds arbitrary bytes to the .pt reader as a whole archive, and checks
// that it returns within allocLimit, that a refusal is one line naming the file, and that what
// it accepts is consistent: the state_dict's tensors lie inside their storages, and each one
// then reads as exactly its number of values, or is refused in one line.
func FuzzTorchCheckpoint(f *testing.F) {
	for _, seed := range torchSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkTorch(t, data)
	})
}

// FuzzPickle runs arbitrary bytes as the pickle of an archive that holds two storages, which
// reaches the unpickler far more often than mutating whole archives, whose CRCs and directory
// a mutation breaks.
func FuzzPickle(f *testing.F) {
	f.Add(checkpointPickle())
	for _, p := range hostilePickles() {
		f.Add(p.pickle)
	}
	f.Fuzz(func(t *testing.T, pickle []byte) {
		checkTorch(t, torchZip(
			zipEntry{name: "ck/data.pkl", data: pickle},
			zipEntry{name: "ck/data/0", data: floatBytes(1, 2, 3, 4, 5, 6)},
			zipEntry{name: "ck/data/1", data: floatBytes(0, 0, 7, 8, 9, 10)},
		))
	})
}

func checkTorch(t *testing.T, data []byte) {
	const name = "fuzz.pt"
	oneLine := func(err error) {
		t.Helper()
		if msg := err.Error(); !strings.HasPrefix(msg, name+": ") || strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("error %q is not one line naming the file", msg)
		}
	}
	var ck *checkpoint
	var sd map[string]*tensorRef
	var err error
	n := alloc.Bytes(func() {
		if ck, err = readCheckpoint(name, bytes.NewReader(data), int64(len(data))); err == nil {
			sd, err = ck.stateDict()
		}
	})
	if limit := allocLimit(len(data)); n > limit {
		t.Fatalf("reading %d bytes allocated %d, over the limit of %d (err: %v)", len(data), n, limit, err)
	}
	if err != nil {
		oneLine(err)
		return
	}
	for key, tr := range sd {
		e, ok := ck.storages[tr.storage.key]
		if !ok {
			t.Fatalf("%s: storage %q is not in the archive", key, tr.storage.key)
		}
		if int64(tr.storage.size)*int64(tr.storage.dtype.bytes) > e.size || e.offset+e.size > int64(len(data)) {
			t.Fatalf("%s: storage of %d elements does not fit its %d bytes at %d", key, tr.storage.size, e.size, e.offset)
		}
		count := 1
		for _, d := range tr.shape {
			count *= d // each partial product is at most count, checked below
		}
		if len(tr.shape) != len(tr.stride) || count != tr.count || tr.count > 0 && tr.offset+tr.count > tr.storage.size && contiguous(tr) {
			t.Fatalf("%s: shape %v stride %v offset %d count %d in a storage of %d", key, tr.shape, tr.stride, tr.offset, tr.count, tr.storage.size)
		}
		var values []float32
		n := alloc.Bytes(func() { values, err = ck.floats(key, tr) })
		if err != nil {
			oneLine(err)
			continue
		}
		if len(values) != tr.count {
			t.Fatalf("%s: read %d values, want %d", key, len(values), tr.count)
		}
		if limit := uint64(tr.count)*(4+uint64(tr.storage.dtype.bytes)) + 1<<10; n > limit {
			t.Fatalf("%s: reading %d values allocated %d, over %d", key, tr.count, n, limit)
		}
	}
}

func contiguous(t *tensorRef) bool {
	want := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] > 1 && t.stride[i] != want {
			return false
		}
		want *= t.shape[i]
	}
	return true
}

type hostilePickle struct {
	name, mention string
	pickle        []byte
}

// hostilePickles are pickles that must be refused, each with what its error must say.
func hostilePickles() []hostilePickle {
	p := func() *pk { return (&pk{}).op(opProto, 2) }
	long := func(op byte, size int, n uint64) []byte {
		b := p().op(op).Bytes()
		return append(b, binary.LittleEndian.AppendUint64(nil, n)[:size]...)
	}
	return []hostilePickle{
		{"os.system", "os.system", p().global("os", "system").str("touch PWNED").op(opTuple1, opReduce, opStop).Bytes()},
		{"builtins.eval", "builtins.eval", p().global("builtins", "eval").str("open('PWNED','w')").op(opTuple1, opReduce, opStop).Bytes()},
		{"posix.system by STACK_GLOBAL", "posix.system", p().str("posix").str("system").op(opStackGlobal, opStop).Bytes()},
		{"a name with a newline", `"os.system\n"`, p().str("os").str("system\n").op(opStackGlobal, opStop).Bytes()},
		{"INST of subprocess.Popen", "not one torch.save writes", p().op(opMark).text("isubprocess\nPopen\n").Bytes()},
		{"BINBYTES8 of 2^62 bytes", "ends in the middle", long(opBinBytes8, 8, 1<<62)},
		{"BINUNICODE of 2^31 bytes", "ends in the middle", long(opBinUnicode, 4, 1<<31)},
		{"FRAME of 2^63 bytes", "past the end", long(opFrame, 8, 1<<63)},
		{"LONG4 of 2^31 bytes", "ends in the middle", long(opLong4, 4, 1<<31)},
		{"memo entry never stored", "never stored", p().op(opLongBinGet, 0xff, 0xff, 0xff, 0xff).Bytes()},
		{"stack underflow", "stack is empty", p().op(opTuple3).Bytes()},
		{"protocol 0 text", "not one torch.save writes", p().op('I').text("12\n").Bytes()},
	}
}

// torchSeeds are whole archives: a valid checkpoint, and each way one can be hostile.
func torchSeeds() [][]byte {
	seeds := [][]byte{validCheckpoint()}
	for _, h := range hostilePickles() {
		seeds = append(seeds, torchZip(zipEntry{name: "ck/data.pkl", data: h.pickle}))
	}
	return append(seeds,
		torchZip(zipEntry{name: "ck/data.pkl", data: checkpointPickle(), method: zip.Deflate}, zipEntry{name: "ck/data/0", data: make([]byte, 24)}),
		torchZip(zipEntry{name: "ck/data.pkl", data: checkpointPickle()}, zipEntry{name: "ck/data/0", data: make([]byte, 20)}),
	)
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.pt")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The valid seed reads as what it holds: the numpy scalar and epoch are kept out of the way,
// the DDP prefix is stripped, and the tensor at offset 2 of its storage reads from there.
func TestReadCheckpoint(t *testing.T) {
	ck, err := openCheckpoint(writeFile(t, validCheckpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	sd, err := ck.stateDict()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{"a.weight": {1, 2, 3, 4, 5, 6}, "b.bias": {7, 8, 9, 10}}
	if len(sd) != len(want) {
		t.Fatalf("state_dict has %d tensors, want %d", len(sd), len(want))
	}
	for key, values := range want {
		got, err := ck.floats(key, sd[key])
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(values) {
			t.Errorf("%s = %v, want %v", key, got, values)
		}
	}
}

// Each hostile pickle is refused with an error that says why; nothing it names is run.
func TestHostilePicklesAreRefused(t *testing.T) {
	for _, h := range hostilePickles() {
		t.Run(h.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "model.pt")
			os.WriteFile(p, torchZip(zipEntry{name: "ck/data.pkl", data: h.pickle}), 0o644)
			_, err := openCheckpoint(p)
			if err == nil || !strings.Contains(err.Error(), h.mention) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("got %v, want an error naming the file and %q", err, h.mention)
			}
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("the pickle's command ran")
			}
		})
	}
}

// The archive's records are checked against the file before any is read.
func TestHostileArchivesAreRefused(t *testing.T) {
	pkl := checkpointPickle()
	bomb := bytes.Repeat([]byte{0}, 64<<20)
	cases := []struct {
		name, mention string
		file          []byte
	}{
		{"compressed pickle", "compressed", torchZip(zipEntry{name: "ck/data.pkl", data: pkl, method: zip.Deflate})},
		{"zip bomb storage", "compressed", torchZip(zipEntry{name: "ck/data.pkl", data: pkl}, zipEntry{name: "ck/data/0", data: bomb, method: zip.Deflate})},
		{"storage larger than its record", `storage 0 claims 6 elements of 4 bytes, more than its 20 bytes`,
			torchZip(zipEntry{name: "ck/data.pkl", data: pkl}, zipEntry{name: "ck/data/0", data: make([]byte, 20)}, zipEntry{name: "ck/data/1", data: make([]byte, 24)})},
		{"missing storage", "storage 1 is not in the archive", torchZip(zipEntry{name: "ck/data.pkl", data: pkl}, zipEntry{name: "ck/data/0", data: make([]byte, 24)})},
		{"two pickles", "two pickles", torchZip(zipEntry{name: "a/data.pkl", data: pkl}, zipEntry{name: "b/data.pkl", data: pkl})},
		{"not a zip", "not a PyTorch zip checkpoint", pkl},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := alloc.Bytes(func() { _, err = readCheckpoint("x.pt", bytes.NewReader(c.file), int64(len(c.file))) })
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.mention)
			}
			if limit := allocLimit(len(c.file)); n > limit {
				t.Errorf("allocated %d, over the limit of %d", n, limit)
			}
		})
	}
}

// A pickle's cost is bounded by its instructions: floods of the cheapest instructions that
// make objects stay within allocLimit.
func TestPickleAllocationIsProportional(t *testing.T) {
	const n = 1 << 18
	flood := func(prefix []byte, each []byte) []byte {
		return append(append(append([]byte{opProto, 2}, prefix...), bytes.Repeat(each, n)...), opStop)
	}
	memo := &pk{}
	memo.op(opProto, 2, opNone)
	for i := range uint32(n) {
		memo.op(opLongBinPut).Write(binary.LittleEndian.AppendUint32(nil, i))
	}
	// A tensor's rebuilder and arguments as memo entries 0 and 1, after which each further
	// tensor is 5 bytes (BINGET 0, BINGET 1, REDUCE), the cheapest a tensor can be.
	rebuild := (&pk{}).op(opProto, 2).global("torch._utils", "_rebuild_tensor_v2").op(opBinPut, 0, opMark)
	rebuild.op(opMark).str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(6).op(opTuple, opBinPersID)
	rebuild.int(0).ints(1, 1, 1, 1, 1, 1, 1, 1).op(opDup, opTuple, opBinPut, 1, opPop, opPop)
	for range n / 5 {
		rebuild.op(opBinGet, 0, opBinGet, 1, opReduce)
	}
	rebuild.op(opStop)
	cases := map[string][]byte{
		"MARK":           flood(nil, []byte{opMark}),
		"EMPTY_LIST":     flood(nil, []byte{opEmptyList}),
		"EMPTY_DICT":     flood(nil, []byte{opEmptyDict}),
		"DUP":            flood([]byte{opNone}, []byte{opDup}),
		"TUPLE1":         flood([]byte{opNone}, []byte{opTuple1}),
		"APPEND":         flood([]byte{opEmptyList}, []byte{opNone, opAppend}),
		"SETITEM":        flood([]byte{opEmptyDict}, []byte{opNone, opNone, opSetItem}),
		"BININT":         flood(nil, []byte{opBinInt, 1, 2, 3, 4}),
		"BINFLOAT":       flood(nil, []byte{opBinFloat, 1, 2, 3, 4, 5, 6, 7, 8}),
		"LONG_BINPUT":    memo.Bytes(),
		"MEMOIZE":        flood([]byte{opNone}, []byte{opMemoize}),
		"MARK and TUPLE": flood([]byte{opNone}, []byte{opMark, opTuple}),
	}
	cases["memo'd tensors"] = rebuild.Bytes()
	for name, pickle := range cases {
		file := torchZip(zipEntry{name: "ck/data.pkl", data: pickle}, zipEntry{name: "ck/data/0", data: make([]byte, 24)})
		var err error
		got := alloc.Bytes(func() { _, err = readCheckpoint("x.pt", bytes.NewReader(file), int64(len(file))) })
		if limit := allocLimit(len(file)); got > limit {
			t.Errorf("%s: %d bytes allocated %d (%.0fx), over the limit of %d (err %v)", name, len(file), got, float64(got)/float64(len(file)), limit, err)
		} else {
			t.Logf("%s: %d bytes allocated %d (%.1fx)", name, len(file), got, float64(got)/float64(len(file)))
		}
	}
}

// inferConfig indexes and divides by the dimensions of the tensors it reads: for each of them,
// an empty or absent dimension in the test checkpoint's state_dict is an error that names it,
// not a panic.
func TestInferConfigRefusesHostileShapes(t *testing.T) {
	ck, err := openCheckpoint(testCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	sd, err := ck.stateDict()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inferConfig("tiny.pt", sd, tinyOptions()); err != nil {
		t.Fatal(err)
	}
	var read []string // the keys whose shape inferConfig uses
	for k, tr := range sd {
		saved := tr.shape
		tr.shape = nil
		if _, err := inferConfig("tiny.pt", sd, tinyOptions()); err != nil {
			read = append(read, k)
		}
		tr.shape = saved
	}
	if len(read) < 8 {
		t.Fatalf("only %d keys matter to inferConfig: %v", len(read), read)
	}
	for _, k := range read {
		for _, shape := range [][]int{nil, {5}, {0, 8}, {8, 0, 3, 3}, {1, 0}} {
			saved := sd[k].shape
			sd[k].shape = shape
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s with shape %v: panic %v", k, shape, r)
					}
				}()
				if _, err := inferConfig("tiny.pt", sd, tinyOptions()); err == nil || !strings.Contains(err.Error(), "tiny.pt: ") {
					t.Errorf("%s with shape %v: got %v, want an error naming the file", k, shape, err)
				}
			}()
			sd[k].shape = saved
		}
	}
}
