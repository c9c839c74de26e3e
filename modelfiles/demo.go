// Package modelfiles finds the files of a model by name. For now it knows one model, the demo
// model embedded in the binary, so that toklip answers and draws with no model files given.
package modelfiles

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// DemoName is the embedded model's name, the default model.
const DemoName = "toklip-demo"

// The demo model's two files, as tools/demo/train.py trains them and `make demo-model` converts
// them: the vocabulary-extended Qwen2 with its projector, and TokLIP.
//
//go:embed toklip-demo/lm.gguf toklip-demo/vision.gguf
var demoFS embed.FS

// Files are the paths of a model's GGUF files.
type Files struct {
	LM, Vision string
}

var (
	demoOnce  sync.Once
	demoFiles Files
	demoErr   error
)

// Demo returns the embedded model's files, written on first use into the user's cache folder
// ($TOKLIP_CACHE, else the system's cache folder, under toklip/), in a folder named by the
// content's hash: ggml reads models from files, and a changed binary never reads an old copy.
func Demo() (Files, error) {
	demoOnce.Do(func() { demoFiles, demoErr = extractDemo() })
	return demoFiles, demoErr
}

func extractDemo() (Files, error) {
	names := []string{"lm.gguf", "vision.gguf"}
	h := sha256.New()
	data := make([][]byte, len(names))
	for i, n := range names {
		b, err := fs.ReadFile(demoFS, "toklip-demo/"+n)
		if err != nil {
			return Files{}, err
		}
		data[i] = b
		h.Write(b)
	}
	root := os.Getenv("TOKLIP_CACHE")
	if root == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return Files{}, fmt.Errorf("no folder to unpack the demo model into (set TOKLIP_CACHE): %w", err)
		}
		root = filepath.Join(dir, "toklip")
	}
	dir := filepath.Join(root, DemoName+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, fmt.Errorf("unpack the demo model: %w", err)
	}
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, n)
		if st, err := os.Stat(paths[i]); err == nil && st.Size() == int64(len(data[i])) {
			continue // unpacked before (a file appears only complete: written aside, then renamed)
		}
		if err := writeAtomic(paths[i], data[i]); err != nil {
			return Files{}, fmt.Errorf("unpack the demo model: %w", err)
		}
	}
	return Files{LM: paths[0], Vision: paths[1]}, nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
