package modelfiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func demoModelfileFor(t *testing.T) (*Modelfile, string) {
	t.Helper()
	dir, err := filepath.Abs("toklip-demo")
	if err != nil {
		t.Fatal(err)
	}
	mf, err := Parse(strings.NewReader("FROM lm.gguf\nVISION vision.gguf\nPARAMETER temperature 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	return mf, dir
}

func TestStoreCycle(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	mf, dir := demoModelfileFor(t)
	var last, total int64
	if err := s.Create("scenes:v1", mf, dir, func(d, n int64) { last, total = d, n }); err != nil {
		t.Fatal(err)
	}
	if last != total || total < 20<<20 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	m, files, err := s.Get("scenes:v1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "vision.gguf"))
	if got, _ := os.ReadFile(files.Vision); string(got) != string(want) || !strings.Contains(m.Modelfile, "PARAMETER temperature 0") {
		t.Errorf("stored: %+v", m)
	}
	if err := s.Copy("scenes:v1", "scenes"); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 3 || list[0].Name != DemoName || list[1].Name != "scenes" || list[2].Name != "scenes:v1" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := s.Remove(DemoName); err == nil {
		t.Error("the embedded model was removed")
	}
	if err := s.Remove("scenes:v1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get("scenes"); err != nil {
		t.Fatalf("the copy lost its blobs with the original: %v", err)
	}
	if err := s.Remove("scenes"); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := os.ReadDir(filepath.Join(s.Root, "blobs")); len(blobs) != 0 {
		t.Errorf("%d blobs left after removing every model", len(blobs))
	}
	if _, _, err := s.Get("scenes"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a removed model: %v", err)
	}
	if err := s.Create("a_b", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("a:b", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(); len(list) != 3 {
		t.Errorf("a_b and a:b are not two models: %+v", list)
	}
	for _, bad := range []string{"", "-x", "a/b", "../up", "a@b", DemoName} {
		if err := s.Create(bad, mf, dir, nil); err == nil {
			t.Errorf("created a model named %q", bad)
		}
	}
}

// A blob whose content no longer matches its digest is refused; a crash's leftover temporary file
// is not a model.
func TestStoreRefusesDamage(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	mf, dir := demoModelfileFor(t)
	if err := s.Create("m", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	_, files, _ := s.Get("m")
	os.WriteFile(filepath.Join(s.Root, "blobs", ".blob-123.tmp"), []byte("half a copy"), 0o644)
	os.WriteFile(filepath.Join(s.Root, "manifests", ".m.json.tmp1"), []byte(`{"name":"half`), 0o644)
	if list, _ := s.List(); len(list) != 2 {
		t.Errorf("leftovers listed: %+v", list)
	}
	b, _ := os.ReadFile(files.LM)
	b[len(b)-1] ^= 1
	os.WriteFile(files.LM, b, 0o644)
	if _, _, err := s.Get("m"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a damaged blob: %v", err)
	}
}

// Creates at once, of the same files under the same and other names, all end with whole models.
func TestStoreConcurrentCreates(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	mf, dir := demoModelfileFor(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, name := range []string{"a", "a", "b", "c"} {
		wg.Go(func() { errs[i] = s.Create(name, mf, dir, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, _, err := s.Get(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if blobs, _ := os.ReadDir(filepath.Join(s.Root, "blobs")); len(blobs) != 2 {
		t.Errorf("%d blobs, want the 2 files once each", len(blobs))
	}
}

// No name reaches outside the store's folders, whichever method it is given to: NUL (which no
// command-line argument can hold, so the binary's tests cannot give it) and the rest.
func TestStoreRefusesPathNames(t *testing.T) {
	base := t.TempDir()
	s := &Store{Root: filepath.Join(base, "models")}
	mf, dir := demoModelfileFor(t)
	if err := s.Create("m", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(base, "x.json"), []byte(`{"name":"x"}`), 0o644)
	for _, name := range []string{"a\x00b", "m\x00", "../x", "..", "a/b", `a\b`, filepath.Join(base, "x"), ".m", "M"} {
		check := func(what string, err error) {
			if err == nil {
				t.Errorf("%s %q: no error", what, name)
			}
		}
		check("create", s.Create(name, mf, dir, nil))
		check("copy to", s.Copy("m", name))
		check("copy from", s.Copy(name, "n"))
		_, _, err := s.Get(name)
		check("get", err)
		check("remove", s.Remove(name))
	}
	if b, err := os.ReadFile(filepath.Join(base, "x.json")); err != nil || string(b) != `{"name":"x"}` {
		t.Errorf("the file outside the store: %q, %v", b, err)
	}
	if list, _ := s.List(); len(list) != 2 {
		t.Errorf("list: %+v", list)
	}
}

// A create sweeps the half copies that killed creates left, but not the one a running create is
// writing (it holds a lock on it), nor manifests of other names.
func TestStoreSweepsDeadCopies(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	mf, dir := demoModelfileFor(t)
	blobs, manifests := filepath.Join(s.Root, "blobs"), filepath.Join(s.Root, "manifests")
	os.MkdirAll(blobs, 0o755)
	os.MkdirAll(manifests, 0o755)
	os.WriteFile(filepath.Join(blobs, ".blob-1.tmp"), []byte("a killed create's copy"), 0o644)
	os.WriteFile(filepath.Join(manifests, ".m.json.tmp2"), []byte(`{"name":"m"`), 0o644)
	live, err := os.Create(filepath.Join(blobs, ".blob-2.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("m", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{filepath.Join(blobs, ".blob-1.tmp"): false, filepath.Join(manifests, ".m.json.tmp2"): false,
		live.Name(): true, s.manifestPath("m"): true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", path, err == nil, want)
		}
	}
}

// What a Modelfile may hold survives the store, which keeps the Modelfile as String writes it and
// parses it whenever the model is opened: a stop of two line breaks made the stored text
// unreadable, and the model could not be opened at all.
func TestStoreKeepsEveryValue(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	_, dir := demoModelfileFor(t)
	mf, err := Parse(strings.NewReader("FROM lm.gguf\nPARAMETER stop \"\\n\\n\"\nMESSAGE user \"\"\"two\nlines\"\"\"\nSYSTEM \" spaced \"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create("m", mf, dir, nil); err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Get("m")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Parsed()
	if err != nil {
		t.Fatal(err)
	}
	if got.Strings("stop")[0] != "\n\n" || got.Messages[0].Content != "two\nlines" || got.System != " spaced " {
		t.Errorf("stored %#v", got)
	}
}
