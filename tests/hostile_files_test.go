package tests

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile model files through the real binary: each must end in a clear one-line error and a
// nonzero exit, in bounded time and memory, however large the numbers it claims. The limits
// are generous bounds, not speed or size targets: a process that believed any of these claims
// would allocate gigabytes (or die), or run for minutes.
const (
	hostileTimeout = 60 * time.Second
	hostileMaxRSS  = 150 << 20 // bytes; toklip's baseline (Go runtime, ggml's CPU backend) is far below
)

// ggufBytes builds GGUF files byte by byte, to write what no writer would.
type ggufBytes struct{ bytes.Buffer }

func newGGUF(tensors, kvs uint64) *ggufBytes {
	g := &ggufBytes{}
	g.WriteString("GGUF")
	return g.u32(3).u64(tensors).u64(kvs)
}

func (g *ggufBytes) u32(v uint32) *ggufBytes {
	g.Write(binary.LittleEndian.AppendUint32(nil, v))
	return g
}
func (g *ggufBytes) u64(v uint64) *ggufBytes {
	g.Write(binary.LittleEndian.AppendUint64(nil, v))
	return g
}
func (g *ggufBytes) str(s string) *ggufBytes { g.u64(uint64(len(s))); g.WriteString(s); return g }
func (g *ggufBytes) kvString(k, v string) *ggufBytes {
	return g.str(k).u32(8).str(v)
}
func (g *ggufBytes) arch() *ggufBytes { return g.kvString("general.architecture", "qwen2") }
func (g *ggufBytes) tensor(name string, typ uint32, offset uint64, shape ...uint64) *ggufBytes {
	g.str(name).u32(uint32(len(shape)))
	for _, d := range shape {
		g.u64(d)
	}
	return g.u32(typ).u64(offset)
}

// data pads to the default alignment of 32 and appends n bytes of tensor data.
func (g *ggufBytes) data(n int) []byte {
	for g.Len()%32 != 0 {
		g.WriteByte(0)
	}
	g.Write(make([]byte, n))
	return g.Bytes()
}

// pickleBytes builds pickles opcode by opcode.
type pickleBytes struct{ bytes.Buffer }

func newPickle() *pickleBytes {
	p := &pickleBytes{}
	p.Write([]byte{0x80, 2}) // PROTO 2, as torch.save writes
	return p
}
func (p *pickleBytes) op(b ...byte) *pickleBytes { p.Write(b); return p }
func (p *pickleBytes) global(module, name string) *pickleBytes {
	p.WriteString("c" + module + "\n" + name + "\n")
	return p
}
func (p *pickleBytes) str(s string) *pickleBytes {
	p.WriteByte('X')
	p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.WriteString(s)
	return p
}
func (p *pickleBytes) int(v int64) *pickleBytes {
	p.op(0x8a, 8) // LONG1 of 8 bytes
	p.Write(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	return p
}

// stateDict is {"state_dict": OrderedDict(w=tensor)}, a tensor of the given size in elements
// of FloatStorage "0" of storage elements, as torch.save pickles it.
func stateDictPickle(storage, size int64) []byte {
	p := newPickle().op('}', '(').str("state_dict").global("collections", "OrderedDict").op(')', 'R', '(')
	p.str("w").global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(storage).op('t', 'Q')
	p.int(0).op('(').int(size).op('t', '(').int(1).op('t', 0x89)
	p.global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	return p.op('u', 'u', '.').Bytes()
}

// zipRecord is one record of a .pt archive; claim, when set, is the size its headers give
// in place of the true one, and deflate compresses it.
type zipRecord struct {
	name    string
	data    []byte
	deflate bool
	claim   uint64
}

func ptFile(t *testing.T, records ...zipRecord) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, r := range records {
		body := r.data
		h := &zip.FileHeader{Name: r.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(r.data), UncompressedSize64: uint64(len(r.data))}
		if r.deflate {
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.BestCompression)
			fw.Write(r.data)
			fw.Close()
			body, h.Method = c.Bytes(), zip.Deflate
		}
		h.CompressedSize64 = uint64(len(body))
		if r.claim != 0 {
			h.UncompressedSize64 = r.claim
			if !r.deflate {
				h.CompressedSize64 = r.claim
			}
		}
		f, err := w.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(body)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// safetensorsBytes is a safetensors file of a JSON header and data.
func safetensorsBytes(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

type measured struct {
	code    int
	stderr  string
	maxRSS  int64 // bytes
	elapsed time.Duration
}

// measureSource is a helper that runs a command and reports its exit code and peak memory.
// The test cannot measure toklip's memory itself: on Linux a child's ru_maxrss starts from
// its parent's high-water mark (os/exec starts it with vfork, and exec keeps the old memory's
// high-water mark), so every child of the test process would report the test process's own
// peak. Started from this small helper, toklip reports its own (at least the helper's few MB).
const measureSource = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // killed with the helper
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(125)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if err := os.WriteFile(os.Getenv("MEASURE_REPORT"), fmt.Appendf(nil, "%d %d", code, ru.Maxrss), 0o644); err != nil {
		os.Exit(125)
	}
}
`

var (
	measureOnce sync.Once
	measurePath string
	measureErr  error
)

// measureBinary builds the helper once per test process, beside toklip's binary.
func measureBinary(t *testing.T) string {
	t.Helper()
	bin := toklipBinary(t)
	measureOnce.Do(func() {
		dir := filepath.Dir(bin)
		src := filepath.Join(dir, "measure.go")
		if measureErr = os.WriteFile(src, []byte(measureSource), 0o644); measureErr != nil {
			return
		}
		measurePath = filepath.Join(dir, "measure")
		if out, err := exec.Command("go", "build", "-o", measurePath, src).CombinedOutput(); err != nil {
			measureErr = &buildError{err, out}
		}
	})
	if measureErr != nil {
		t.Fatal(measureErr)
	}
	return measurePath
}

// runMeasured runs toklip through the measuring helper, with a hang timeout.
func runMeasured(t *testing.T, bin, dir string, args ...string) measured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	report := filepath.Join(t.TempDir(), "report")
	cmd := exec.CommandContext(ctx, measureBinary(t), append([]string{bin}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MEASURE_REPORT="+report,
		"TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	m := measured{stderr: stderr.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("toklip %s ran past %v: killed", strings.Join(args, " "), hostileTimeout)
	}
	if err != nil {
		t.Fatalf("measuring toklip %s: %v\n%s", strings.Join(args, " "), err, m.stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	if _, err := fmt.Sscan(string(b), &m.code, &kb); err != nil {
		t.Fatalf("report %q: %v", b, err)
	}
	m.maxRSS = kb * 1024 // ru_maxrss is in kilobytes on Linux
	return m
}

// hostileCase is a file and what toklip must say about it.
type hostileCase struct {
	name    string
	file    string   // base name in the test's folder; a folder for a HuggingFace model
	content []byte   // the file's bytes, or the model.safetensors of a folder
	cmds    []string // inspect, quantize, convert
	mention string
}

func ggufCases() []hostileCase {
	gguf := []string{"inspect", "quantize"}
	return []hostileCase{
		{"tensor count of 2^63", "count.gguf", newGGUF(1<<63, 1).arch().Bytes(), gguf,
			"header claims 9223372036854775808 tensors, more than the file can hold"},
		{"key-value count of 2^63", "kv.gguf", newGGUF(0, 1<<63).Bytes(), gguf,
			"header claims 9223372036854775808 key-values, more than the file can hold"},
		{"string of 2^40 bytes", "string.gguf", newGGUF(0, 2).arch().str("general.name").u32(8).u64(1 << 40).Bytes(), gguf,
			`key "general.name": count beyond limits: string of 1099511627776 bytes is longer than the limit of 268435456`},
		{"array of 2^32 elements", "array.gguf", newGGUF(0, 2).arch().str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1 << 32).Bytes(), gguf,
			`key "tokenizer.ggml.tokens": count beyond limits: array claims 4294967296 elements, more than the file can hold`},
		{"dimensions whose product overflows", "dims.gguf", newGGUF(1, 1).arch().tensor("token_embd.weight", 0, 0, 1<<32, 1<<32, 16).data(64), gguf,
			`tensor "token_embd.weight": wrong tensor shape: shape [4294967296 4294967296] is empty or absurdly large`},
		{"offset past the end", "offset.gguf", newGGUF(1, 1).arch().tensor("token_embd.weight", 0, 1<<40, 32, 2).data(256), gguf,
			`tensor "token_embd.weight": truncated file: data offset 1099511627776 is past the end of the file`},
		{"offset that wraps around", "wrap.gguf", newGGUF(1, 1).arch().tensor("token_embd.weight", 0, math.MaxUint64-31, 32, 2).data(256), gguf,
			`tensor "token_embd.weight": truncated file: data offset 18446744073709551584 is past the end of the file`},
		{"overlapping tensors", "overlap.gguf", newGGUF(2, 1).arch().tensor("token_embd.weight", 0, 0, 32, 4).tensor("output_norm.weight", 0, 256, 32).data(512), gguf,
			`tensor "output_norm.weight": malformed GGUF: data at offset 256 overlaps tensor "token_embd.weight" (offset 0, 512 bytes)`},
		{"misaligned offset", "misaligned.gguf", newGGUF(1, 1).arch().tensor("token_embd.weight", 0, 4, 32, 2).data(260), gguf,
			`tensor "token_embd.weight": malformed GGUF: data offset 4 is not a multiple of the alignment, 32 bytes`},
		{"alignment not a power of two", "alignment.gguf", newGGUF(0, 2).arch().str("general.alignment").u32(4).u32(48).Bytes(), gguf,
			`key "general.alignment": malformed GGUF: must be a power of two uint32 up to 65536, got 48 (uint32)`},
	}
}

// The official checkpoints are zip archives of a pickle and stored storages; a hostile one may
// name any Python callable, or claim any size.
func ptCases(t *testing.T, dir string) []hostileCase {
	storage := make([]byte, 24) // FloatStorage "0" of 6 elements
	pt := func(pickle []byte, more ...zipRecord) []byte {
		return ptFile(t, append([]zipRecord{{name: "ck/data.pkl", data: pickle}}, more...)...)
	}
	convert := []string{"convert"}
	return []hostileCase{
		{"pickle that calls os.system", "system.pt", pt(systemPickle(filepath.Join(dir, "PWNED-system"))), convert,
			"data.pkl: byte 2 (opcode 0x63): the pickle imports os.system, which a checkpoint of tensors does not use; toklip refuses it"},
		{"pickle that calls builtins.eval", "eval.pt", pt(evalPickle(filepath.Join(dir, "PWNED-eval"))), convert,
			"the pickle imports builtins.eval, which a checkpoint of tensors does not use; toklip refuses it"},
		{"pickle entry that inflates to 64 MB and claims 8 GB", "bomb.pt",
			ptFile(t, zipRecord{name: "ck/data.pkl", data: make([]byte, 64<<20), deflate: true, claim: 8 << 30}), convert,
			"ck/data.pkl is compressed (zip method 8); torch.save stores every record uncompressed"},
		{"storage entry that inflates to 64 MB and claims 8 GB", "bomb-storage.pt",
			pt(stateDictPickle(6, 6), zipRecord{name: "ck/data/0", data: make([]byte, 64<<20), deflate: true, claim: 8 << 30}), convert,
			"ck/data/0 is compressed (zip method 8)"},
		{"storage of 2^40 elements in 24 bytes", "storage.pt", pt(stateDictPickle(1<<40, 1<<40), zipRecord{name: "ck/data/0", data: storage}), convert,
			"storage 0 claims 1099511627776 elements of 4 bytes, more than its 24 bytes in the file"},
		{"storage record that claims 2^40 bytes", "record.pt", pt(stateDictPickle(6, 6), zipRecord{name: "ck/data/0", data: storage, claim: 1 << 40}), convert,
			"ck/data/0 claims 1099511627776 bytes from byte"},
		{"tensor past the end of its storage", "tensor.pt", pt(stateDictPickle(6, 1<<40), zipRecord{name: "ck/data/0", data: storage}), convert,
			"size [1099511627776], stride [1] from offset 0 reach past the 6 elements of storage 0"},
	}
}

func systemPickle(marker string) []byte {
	return newPickle().global("os", "system").str("touch "+marker).op(0x85, 'R', '.').Bytes()
}

func evalPickle(marker string) []byte {
	return newPickle().global("builtins", "eval").str("open("+pyQuote(marker)+", 'w')").op(0x85, 'R', '.').Bytes()
}

func pyQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// HuggingFace folders whose safetensors header claims too much.
func safetensorsCases() []hostileCase {
	return []hostileCase{
		{"safetensors shape whose product wraps to zero", "st-shape", safetensorsBytes(`{"model.embed_tokens.weight":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}`, nil), []string{"convert"},
			`tensor "model.embed_tokens.weight": shape [4294967296 4294967296 4] holds more than 281474976710656 values`},
		{"safetensors data of 2^50 bytes in 8", "st-offsets", safetensorsBytes(`{"model.embed_tokens.weight":{"dtype":"F32","shape":[281474976710656],"data_offsets":[0,1125899906842624]}}`, make([]byte, 8)), []string{"convert"},
			`tensor "model.embed_tokens.weight": data offsets [0 1125899906842624] lie outside the file (8 bytes of data)`},
		{"safetensors header of 2^62 bytes", "st-header", binary.LittleEndian.AppendUint64(nil, 1<<62), []string{"convert"},
			"header length 4611686018427387904 is beyond the file (8 bytes) or the format's limit"},
	}
}

func TestHostileFiles(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	cases := append(append(ggufCases(), ptCases(t, dir)...), safetensorsCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			if strings.HasPrefix(c.file, "st-") {
				copyHF(t, filepath.Join("..", "llm", "testdata", "qwen2", "hf"), path)
				path = filepath.Join(path, "model.safetensors")
			}
			if err := os.WriteFile(path, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range c.cmds {
				out := filepath.Join(dir, "out-"+c.file+".gguf")
				args := map[string][]string{
					"inspect":  {"inspect", path},
					"quantize": {"quantize", path, out, "-type", "Q8_0"},
					"convert":  {"convert", filepath.Join(dir, c.file), "-o", out},
				}[cmd]
				m := runMeasured(t, bin, dir, args...)
				t.Logf("%s: exit %d in %v, peak RSS %.1f MB", cmd, m.code, m.elapsed.Round(time.Millisecond), float64(m.maxRSS)/(1<<20))
				if m.code != 1 {
					t.Errorf("%s: exit code %d, want 1; stderr:\n%s", cmd, m.code, m.stderr)
				}
				line := errorLine(m.stderr, cmd)
				if line == "" || !strings.Contains(line, c.mention) {
					t.Errorf("%s: the error should say %q; stderr:\n%s", cmd, c.mention, m.stderr)
				}
				if m.maxRSS > hostileMaxRSS {
					t.Errorf("%s: peak memory %d MB, over %d MB", cmd, m.maxRSS>>20, hostileMaxRSS>>20)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: left an output file: %v", cmd, err)
				}
			}
		})
	}
	// The refused pickles ran nothing: their commands would have made these files.
	for _, marker := range []string{"PWNED-system", "PWNED-eval"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists: a pickle's command ran (%v)", marker, err)
		}
	}
}

// The os.system and builtins.eval pickles are live: Python's own unpickler, given the same
// bytes, runs them and makes their markers. This proves that the test above would notice if
// toklip ran them. It needs a python3; without one it is skipped.
func TestHostilePicklesAreLive(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to show that the pickles run")
	}
	dir := t.TempDir()
	for name, pickle := range map[string][]byte{
		"PWNED-system": systemPickle(filepath.Join(dir, "PWNED-system")),
		"PWNED-eval":   evalPickle(filepath.Join(dir, "PWNED-eval")),
	} {
		p := filepath.Join(dir, name+".pkl")
		if err := os.WriteFile(p, pickle, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(python, "-c", "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())", p).CombinedOutput(); err != nil {
			t.Fatalf("python3 could not load %s: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Python's unpickler did not make %s: the pickle is not live (%v)", name, err)
		}
	}
}

// errorLine is toklip's error: the last line of stderr, which must start "toklip CMD: " and be
// the only line that does.
func errorLine(stderr, cmd string) string {
	prefix := "toklip " + cmd + ": "
	var found []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(found) != 1 || lines[len(lines)-1] != found[0] {
		return ""
	}
	return found[0]
}

// copyHF copies the files of a HuggingFace model folder.
func copyHF(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
