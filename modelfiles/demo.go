// Package modelfiles finds models by name: Modelfiles (parsed and written back), the local store
// of models created from them, and the demo model embedded in the binary, so that toklip answers
// and draws with no model files given.
package modelfiles

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// DemoName is the embedded model's name, the default model.
const DemoName = "toklip-demo"

// DemoModelfile is the embedded model's Modelfile.
func DemoModelfile() (*Modelfile, error) {
	f, err := demoFS.Open("toklip-demo/Modelfile")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Files are the paths of a model's GGUF files.
type Files struct {
	LM, Vision string
}

var (
	demoMu   sync.Mutex // one unpacking at a time in this process (other processes: see writeAtomic)
	demoHash = sync.OnceValue(func() string {
		h := sha256.New()
		for _, n := range demoNames {
			b, _ := fs.ReadFile(demoFS, "toklip-demo/"+n) // embedded: cannot fail
			h.Write(b)
		}
		return hex.EncodeToString(h.Sum(nil))[:12]
	})
	demoNames = []string{"lm.gguf", "vision.gguf"}
)

// Demo returns the embedded model's files, written when missing into the user's cache folder
// ($TOKLIP_CACHE, else the system's cache folder, under toklip/), in a folder named by the
// content's hash: ggml reads models from files, and a changed binary never reads an old copy.
// Each call checks the files again, so a cache folder cleaned under a running server is refilled.
func Demo() (Files, error) {
	demoMu.Lock()
	defer demoMu.Unlock()
	return extractDemo()
}

func extractDemo() (Files, error) {
	root := os.Getenv("TOKLIP_CACHE")
	if root == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return Files{}, fmt.Errorf("no folder to unpack the demo model into (set TOKLIP_CACHE): %w", err)
		}
		root = filepath.Join(dir, "toklip")
	}
	dir := filepath.Join(root, DemoName+"-"+demoHash())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, fmt.Errorf("unpack the demo model: %w", err)
	}
	paths := make([]string, len(demoNames))
	for i, n := range demoNames {
		paths[i] = filepath.Join(dir, n)
		embedded, err := fs.Stat(demoFS, "toklip-demo/"+n)
		if err != nil {
			return Files{}, err
		}
		if st, err := os.Stat(paths[i]); err == nil && st.Size() == embedded.Size() {
			continue // unpacked before (a file appears only complete: written aside, then renamed)
		}
		data, err := fs.ReadFile(demoFS, "toklip-demo/"+n)
		if err != nil {
			return Files{}, err
		}
		if err := writeAtomic(paths[i], data); err != nil {
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
