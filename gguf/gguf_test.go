package gguf_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/model"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
)

// A test architecture: its checker wants one tensor "w.weight" of shape [32 2], F32 or F16.
// Its ollama constructor panics, to prove that LoadModel turns a panic into an error.
func init() {
	gguf.RegisterArchitecture("testarch", func(f *gguf.File) error {
		_, err := f.ExpectTensor("w.weight", []uint64{32, 2}, gguf.TypeF32, gguf.TypeF16)
		return err
	})
	model.Register("testarch", func(fs.Config) (model.Model, error) { panic("constructor exploded") })
}

// raw builds GGUF headers byte by byte, so that tests can write what no writer would.
type raw struct{ bytes.Buffer }

func (r *raw) u32(v uint32) *raw { binary.Write(r, binary.LittleEndian, v); return r }
func (r *raw) u64(v uint64) *raw { binary.Write(r, binary.LittleEndian, v); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }

// header starts a GGUF v3 header with the given counts.
func header(tensors, kvs uint64) *raw {
	r := &raw{}
	r.WriteString("GGUF")
	return r.u32(3).u64(tensors).u64(kvs)
}

func (r *raw) kvString(k, v string) *raw { return r.str(k).u32(8).str(v) }
func (r *raw) kvU32(k string, v uint32) *raw {
	return r.str(k).u32(4).u32(v)
}

// tensor writes a tensor info.
func (r *raw) tensor(name string, typ uint32, offset uint64, shape ...uint64) *raw {
	r.str(name).u32(uint32(len(shape)))
	for _, d := range shape {
		r.u64(d)
	}
	return r.u32(typ).u64(offset)
}

// pad aligns to 32 bytes and appends n zero bytes of data.
func (r *raw) data(n int) *raw {
	for r.Len()%32 != 0 {
		r.WriteByte(0)
	}
	r.Write(make([]byte, n))
	return r
}

func writeRaw(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// valid is a well-formed file of testarch: one F32 tensor of 32x2.
func valid() *raw {
	return header(1, 1).kvString("general.architecture", "testarch").tensor("w.weight", 0, 0, 32, 2).data(256)
}

func TestOpenAcceptsAValidFile(t *testing.T) {
	f, err := gguf.Open(writeRaw(t, valid().Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := f.Tensor("w.weight")
	if !ok || w.Bytes() != 256 || f.Architecture() != "testarch" {
		t.Fatalf("tensor %+v ok=%v arch=%q", w, ok, f.Architecture())
	}
}

func TestBadFilesGiveClearErrors(t *testing.T) {
	arch := func(r *raw) *raw { return r.kvString("general.architecture", "testarch") }
	cases := []struct {
		name    string
		file    []byte
		kind    error
		mention string // the key or tensor the error must name
	}{
		{"bad magic", append([]byte("GGML"), valid().Bytes()[4:]...), gguf.ErrFormat, "not a GGUF file"},
		{"empty file", nil, gguf.ErrTruncated, ""},
		{"version 1", func() []byte { b := valid().Bytes(); b[4] = 1; return b }(), gguf.ErrFormat, "version 1"},
		{"truncated header", valid().Bytes()[:40], gguf.ErrTruncated, ""},
		{"truncated data", valid().Bytes()[:valid().Len()-1], gguf.ErrTruncated, "w.weight"},
		{"absurd key count", header(0, 1<<40).Bytes(), gguf.ErrLimit, "key-values"},
		{"absurd tensor count", arch(header(1<<40, 1)).Bytes(), gguf.ErrLimit, "tensors"},
		{"absurd string length", header(0, 1).u64(1 << 62).Bytes(), gguf.ErrLimit, "string"},
		{"absurd array length", header(0, 1).str("a").u32(9).u32(4).u64(1 << 50).Bytes(), gguf.ErrLimit, `"a"`},
		{"nested array", header(0, 1).str("a").u32(9).u32(9).u64(1).u32(4).u64(0).Bytes(), gguf.ErrFormat, `"a"`},
		{"unknown value type", header(0, 1).str("a").u32(77).u32(0).Bytes(), gguf.ErrFormat, `"a"`},
		{"bool out of range", header(0, 1).str("flag").u32(7).u32(2).Bytes(), gguf.ErrFormat, `"flag"`},
		{"duplicate key", arch(arch(header(0, 2))).Bytes(), gguf.ErrFormat, "general.architecture"},
		{"too many dimensions", arch(header(1, 1)).tensor("w.weight", 0, 0, 2, 2, 2, 2, 2).data(128).Bytes(), gguf.ErrShape, "w.weight"},
		{"zero dimension", arch(header(1, 1)).tensor("w.weight", 0, 0, 32, 0).data(0).Bytes(), gguf.ErrShape, "w.weight"},
		{"absurd shape", arch(header(1, 1)).tensor("w.weight", 0, 0, 1<<40, 1<<40).data(0).Bytes(), gguf.ErrShape, "w.weight"},
		{"unsupported type", arch(header(1, 1)).tensor("w.weight", 16, 0, 256, 2).data(256).Bytes(), gguf.ErrType, "w.weight"},
		{"unknown type id", arch(header(1, 1)).tensor("w.weight", 99, 0, 32, 2).data(256).Bytes(), gguf.ErrType, "w.weight"},
		{"rows not in whole blocks", arch(header(1, 1)).tensor("w.weight", 8, 0, 20, 2).data(256).Bytes(), gguf.ErrShape, "w.weight"},
		{"misaligned data", arch(header(1, 1)).tensor("w.weight", 0, 4, 32, 2).data(260).Bytes(), gguf.ErrFormat, "w.weight"},
		{"overlapping tensors", arch(header(2, 1)).tensor("w.weight", 0, 0, 32, 2).tensor("b.weight", 0, 128, 32, 2).data(512).Bytes(), gguf.ErrFormat, "b.weight"},
		{"duplicate tensor", arch(header(2, 1)).tensor("w.weight", 0, 0, 32, 2).tensor("w.weight", 0, 256, 32, 2).data(512).Bytes(), gguf.ErrFormat, "w.weight"},
		{"name longer than ggml keeps", arch(header(1, 1)).tensor(strings.Repeat("x", 64), 0, 0, 32, 2).data(256).Bytes(), gguf.ErrFormat, "xxxx"},
		{"bad alignment key", header(0, 2).kvString("general.architecture", "testarch").kvU32("general.alignment", 3).Bytes(), gguf.ErrFormat, "general.alignment"},
		{"missing architecture", header(0, 0).Bytes(), gguf.ErrMissingKey, "general.architecture"},
		{"architecture not a string", header(0, 1).kvU32("general.architecture", 1).Bytes(), gguf.ErrKeyType, "general.architecture"},
		{"unknown architecture", header(0, 1).kvString("general.architecture", "mamba").Bytes(), gguf.ErrArchitecture, "mamba"},
		{"missing tensor", arch(header(1, 1)).tensor("v.weight", 0, 0, 32, 2).data(256).Bytes(), gguf.ErrMissingTensor, "w.weight"},
		{"wrong shape", arch(header(1, 1)).tensor("w.weight", 0, 0, 32, 3).data(384).Bytes(), gguf.ErrShape, "w.weight"},
		{"wrong type", arch(header(1, 1)).tensor("w.weight", 8, 0, 32, 2).data(68).Bytes(), gguf.ErrType, "w.weight"},
		// ollama's backend would read "3" as a block index of a model with no blocks and panic.
		{"digits outside blk", arch(header(2, 1)).tensor("w.weight", 0, 0, 32, 2).tensor("vq.up.3.conv", 0, 256, 32).data(384).Bytes(), gguf.ErrPlacement, "vq.up.3.conv"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeRaw(t, c.file)
			_, err := gguf.Open(path)
			if err == nil {
				t.Fatal("Open accepted a bad file")
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("error %q is not of kind %q", err, c.kind)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.mention) {
				t.Fatalf("error %q should name the file and %q", msg, c.mention)
			}
			// The loading path refuses it the same way, without a panic.
			if _, _, err := ggml.LoadModel(context.Background(), path, ggml.Options{}); !errors.Is(err, c.kind) {
				t.Fatalf("LoadModel: %v", err)
			}
		})
	}
}

func TestPlacementAllowsVisionPrefixes(t *testing.T) {
	arch := header(2, 1).kvString("general.architecture", "testarch")
	b := arch.tensor("w.weight", 0, 0, 32, 2).tensor("v.vq.up.3.conv", 0, 256, 32).data(384)
	if _, err := gguf.Open(writeRaw(t, b.Bytes())); err != nil {
		t.Fatalf("a digit under v. must be accepted: %v", err)
	}
}

func TestKeyTypes(t *testing.T) {
	f, err := gguf.ReadFile(writeRaw(t, header(0, 2).kvString("general.architecture", "testarch").str("n").u32(5).u32(7).Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := gguf.Key[int32](f, "n"); err != nil || v != 7 {
		t.Fatalf("Key[int32] = %v, %v", v, err)
	}
	if _, err := gguf.Key[uint32](f, "n"); !errors.Is(err, gguf.ErrKeyType) || !strings.Contains(err.Error(), "int32") {
		t.Fatalf("reading an int32 key as uint32: %v", err)
	}
	if v, err := gguf.KeyOr(f, "absent", float32(2.5)); err != nil || v != 2.5 {
		t.Fatalf("KeyOr default = %v, %v", v, err)
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	values := make([]float32, 64)
	for i := range values {
		values[i] = float32(i) - 31.5
	}
	w, err := ggml.EncodeTensor("w.weight", gguf.TypeF32, []uint64{32, 2}, values)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ggml.EncodeTensor("v.half", gguf.TypeF16, []uint64{32, 2}, values)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]any{
		"general.architecture": "testarch", "testarch.count": uint32(3), "testarch.eps": float32(1e-6),
		"tokenizer.ggml.tokens": []string{"a", "b"}, "testarch.ids": []int32{-1, 2}, "testarch.flag": true,
	}
	path := filepath.Join(t.TempDir(), "rt.gguf")
	if err := gguf.WriteFile(path, kv, []*gguf.Tensor{w, h}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range kv {
		got := f.KV[k]
		if gs, ok := got.([]string); ok {
			if strings.Join(gs, ",") != "a,b" {
				t.Fatalf("%s = %v", k, got)
			}
			continue
		}
		if gi, ok := got.([]int32); ok {
			if len(gi) != 2 || gi[0] != -1 || gi[1] != 2 {
				t.Fatalf("%s = %v", k, got)
			}
			continue
		}
		if got != want {
			t.Fatalf("%s = %v (%T), want %v", k, got, got, want)
		}
	}
	for _, name := range []string{"w.weight", "v.half"} {
		info, _ := f.Tensor(name)
		data, err := f.ReadTensorData(info)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ggml.DecodeFloats(info.Type, data, info.Elements())
		if err != nil {
			t.Fatal(err)
		}
		for i := range values {
			if back[i] != values[i] { // these values are exact in F16
				t.Fatalf("%s[%d] = %v, want %v", name, i, back[i], values[i])
			}
		}
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the model", len(entries))
	}
}

// Quantization errors stay within each format's bound: F16 rounds to 11 significant bits; Q8_0
// stores each block of 32 as int8 times amax/127, so an error is at most half a step; Q4_0 uses
// 4-bit steps of amax/8 with the scale's sign set by the largest value, so a value of the other
// sign near -amax is clamped by up to a whole step.
// WriteModel leaves nothing behind when the file would not open.
func TestWriteModelRefusesFilesThatFailTheirChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.gguf")
	w, err := ggml.EncodeTensor("w.weight", gguf.TypeF32, []uint64{16, 2}, make([]float32, 32))
	if err != nil {
		t.Fatal(err)
	}
	err = gguf.WriteModel(path, map[string]any{"general.architecture": "testarch"}, []*gguf.Tensor{w})
	if !errors.Is(err, gguf.ErrShape) || !strings.Contains(err.Error(), "does not pass its checks") {
		t.Fatalf("got %v, want a shape error that says the file fails its checks", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}
