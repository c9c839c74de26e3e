package gguf_test

import (
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/toklip/toklip/gguf"
)

// A GGUF file written and read back: keys, a tensor's shape and type, its bytes. Read checks
// every count and offset against the file before anything is allocated.
func Example() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")

	data := make([]byte, 4*6)
	for i := range 6 {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(i)))
	}
	kv := map[string]any{"general.architecture": "example", "example.width": uint32(3)}
	if err := gguf.WriteFile(path, kv, []*gguf.Tensor{{Name: "w", Type: gguf.TypeF32, Shape: []uint64{3, 2}, Data: data}}); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	width, err := gguf.Key[uint32](f, "example.width")
	if err != nil {
		log.Fatal(err)
	}
	w, _ := f.Tensor("w")
	b, err := f.ReadTensorData(w)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Architecture(), width, w.Shape, w.Type, math.Float32frombits(binary.LittleEndian.Uint32(b[4*5:])))
	// Output: example 3 [3 2] F32 5
}
