package modelfiles

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/toklip/toklip/gguf"
	_ "github.com/toklip/toklip/models/qwen2llama" // registers qwen2 with its checker
	_ "github.com/toklip/toklip/visiontok"         // registers toklip
)

// The embedded files are unpacked whole into a folder named by their hash, are valid GGUF files of
// the right architectures, and a damaged copy (a file of the wrong size) is written again.
func TestDemoUnpacks(t *testing.T) {
	t.Setenv("TOKLIP_CACHE", t.TempDir())
	f, err := extractDemo()
	if err != nil {
		t.Fatal(err)
	}
	for path, arch := range map[string]string{f.LM: "qwen2", f.Vision: "toklip"} {
		want, _ := fs.ReadFile(demoFS, "toklip-demo/"+filepath.Base(path))
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: not the embedded file (%v)", path, err)
		}
		g, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if g.Architecture() != arch {
			t.Errorf("%s: architecture %q, want %q", path, g.Architecture(), arch)
		}
	}
	if err := os.WriteFile(f.LM, []byte("cut short"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := extractDemo()
	if err != nil || again != f {
		t.Fatalf("second unpack: %+v, %v; want %+v", again, err, f)
	}
	if st, _ := os.Stat(f.LM); st.Size() < 1<<20 {
		t.Errorf("the damaged copy was not replaced: %d bytes", st.Size())
	}
}
