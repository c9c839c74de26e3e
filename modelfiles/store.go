package modelfiles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/toklip/toklip/ggml"
)

// Store is the local model store: a folder of blobs named by their sha256 and of manifests, one
// per model name, naming them. Files appear whole or not at all (written aside, then renamed), so a
// crash leaves no half model; a lock file orders the steps that must not interleave (a manifest's
// write against a removal's sweep of unused blobs); a blob whose content does not match its name
// is refused when the model is opened.
type Store struct {
	Root string
}

// ErrNotFound is returned for a name the store does not hold.
var ErrNotFound = errors.New("no such model")

// Manifest describes a stored model.
type Manifest struct {
	Name      string    `json:"name"`
	LM        string    `json:"lm"`               // "sha256:<hex>"
	Vision    string    `json:"vision,omitempty"` // "sha256:<hex>"
	Size      int64     `json:"size"`
	Modelfile string    `json:"modelfile"` // as given, FROM and VISION naming the blobs
	Created   time.Time `json:"created"`
}

// DefaultStore is at $TOKLIP_MODELS, else ~/.toklip/models.
func DefaultStore() (*Store, error) {
	if root := os.Getenv("TOKLIP_MODELS"); root != "" {
		return &Store{Root: root}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no home folder for the model store (set TOKLIP_MODELS): %w", err)
	}
	return &Store{Root: filepath.Join(home, ".toklip", "models")}, nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$`)

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a model name: letters, digits, '.', '_', ':' and '-', starting with a letter or digit, at most 128", name)
	}
	return nil
}

func (s *Store) manifestPath(name string) string {
	// ':' is not safe in every file system's names; '@' is not allowed in model names, so no two
	// names share a file.
	return filepath.Join(s.Root, "manifests", strings.ReplaceAll(name, ":", "@")+".json")
}

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.Root, "blobs", strings.Replace(digest, ":", "-", 1))
}

// lock holds the store's lock file until the returned function is called.
func (s *Store) lock() (func(), error) {
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.Root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Create stores a model from a Modelfile whose relative paths are relative to dir. progress, if
// set, is called as the files are hashed and copied (bytes done, bytes in all).
func (s *Store) Create(name string, mf *Modelfile, dir string, progress func(done, total int64)) error {
	if err := checkName(name); err != nil {
		return err
	}
	if name == DemoName {
		return fmt.Errorf("%s is the embedded model's name", DemoName)
	}
	paths := []string{mf.From}
	if mf.Vision != "" {
		paths = append(paths, mf.Vision)
	}
	var total int64
	for i, p := range paths {
		if !filepath.IsAbs(p) {
			paths[i] = filepath.Join(dir, p)
		}
		if _, err := ggml.ReadFile(paths[i]); err != nil { // a GGUF whose header holds together
			return err
		}
		st, err := os.Stat(paths[i])
		if err != nil {
			return err
		}
		total += st.Size()
	}
	var done int64
	digests := make([]string, len(paths))
	for i, p := range paths {
		d, err := s.addBlob(p, func(n int64) {
			if progress != nil {
				progress(done+n, total)
			}
		})
		if err != nil {
			return fmt.Errorf("store %s: %w", p, err)
		}
		st, _ := os.Stat(p)
		done += st.Size()
		digests[i] = d
	}
	stored := *mf
	stored.From = digests[0]
	m := Manifest{Name: name, LM: digests[0], Size: total, Created: time.Now().UTC()}
	if len(digests) > 1 {
		stored.Vision, m.Vision = digests[1], digests[1]
	}
	m.Modelfile = stored.String()
	return s.writeManifest(m)
}

// writeManifest writes m under the store's lock, after checking that its blobs are there: a
// removal's sweep may have taken a blob that was already stored when a create found it.
func (s *Store) writeManifest(m Manifest) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for _, d := range []string{m.LM, m.Vision} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(s.blobPath(d)); err != nil {
			return fmt.Errorf("blob %s vanished while storing %s (removed meanwhile); try again", d, m.Name)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.Root, "manifests"), 0o755); err != nil {
		return err
	}
	return writeAtomic(s.manifestPath(m.Name), b)
}

// addBlob copies a file into the store under its digest (hashing as it copies) and returns the
// digest. A blob already stored is kept.
func (s *Store) addBlob(path string, progress func(int64)) (string, error) {
	dir := filepath.Join(s.Root, "blobs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".blob-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removed after a failure
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h, &progressWriter{f: progress}), src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if _, err := os.Stat(s.blobPath(digest)); err == nil {
		return digest, nil
	}
	return digest, os.Rename(tmp.Name(), s.blobPath(digest))
}

// progressWriter counts the bytes written through it and reports the total.
type progressWriter struct {
	n int64
	f func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.f != nil {
		p.f(p.n)
	}
	return len(b), nil
}

// Get returns a stored model's manifest and files, after checking that each blob's content
// matches its digest.
func (s *Store) Get(name string) (Manifest, Files, error) {
	var m Manifest
	b, err := os.ReadFile(s.manifestPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return m, Files{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return m, Files{}, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, Files{}, fmt.Errorf("the manifest of %q is damaged: %w", name, err)
	}
	f := Files{LM: s.blobPath(m.LM)}
	if m.Vision != "" {
		f.Vision = s.blobPath(m.Vision)
	}
	for _, d := range []string{m.LM, m.Vision} {
		if d == "" {
			continue
		}
		if err := verify(s.blobPath(d), d); err != nil {
			return m, Files{}, fmt.Errorf("model %q: %w", name, err)
		}
	}
	return m, f, nil
}

func verify(path, digest string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("blob %s holds content with digest %s: refused (damaged or altered; create the model again)", digest, got)
	}
	return nil
}

// Parsed is m's stored Modelfile, parsed.
func (m Manifest) Parsed() (*Modelfile, error) {
	mf, err := Parse(strings.NewReader(m.Modelfile))
	if err != nil {
		return nil, fmt.Errorf("the stored Modelfile of %q: %w", m.Name, err)
	}
	return mf, nil
}

// List returns the stored models by name, the embedded demo model first.
func (s *Store) List() ([]Manifest, error) {
	out := []Manifest{{Name: DemoName, Size: demoSize()}}
	entries, err := os.ReadDir(filepath.Join(s.Root, "manifests"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var m Manifest
		b, err := os.ReadFile(filepath.Join(s.Root, "manifests", e.Name()))
		if err != nil || json.Unmarshal(b, &m) != nil {
			continue // being replaced, or damaged: Get says which
		}
		out = append(out, m)
	}
	slices.SortFunc(out[1:], func(a, b Manifest) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Copy stores the model src again under dst (the blobs are shared).
func (s *Store) Copy(src, dst string) error {
	if err := checkName(dst); err != nil {
		return err
	}
	if dst == DemoName {
		return fmt.Errorf("%s is the embedded model's name", DemoName)
	}
	m, _, err := s.Get(src)
	if err != nil {
		return err
	}
	m.Name, m.Created = dst, time.Now().UTC()
	return s.writeManifest(m)
}

// Remove deletes a model and the blobs no other model uses.
func (s *Store) Remove(name string) error {
	if name == DemoName {
		return fmt.Errorf("%s is embedded in the binary and cannot be removed", DemoName)
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(s.manifestPath(name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	} else if err != nil {
		return err
	}
	used := map[string]bool{}
	ms, err := s.List()
	if err != nil {
		return err
	}
	for _, m := range ms {
		used[m.LM], used[m.Vision] = true, true
	}
	blobs, _ := os.ReadDir(filepath.Join(s.Root, "blobs"))
	for _, b := range blobs {
		d := strings.Replace(b.Name(), "-", ":", 1)
		if strings.HasPrefix(b.Name(), "sha256-") && !used[d] {
			os.Remove(filepath.Join(s.Root, "blobs", b.Name()))
		}
	}
	return nil
}

func demoSize() int64 {
	var n int64
	for _, name := range demoNames {
		if st, err := fs.Stat(demoFS, "toklip-demo/"+name); err == nil {
			n += st.Size()
		}
	}
	return n
}
