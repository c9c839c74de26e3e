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

	"github.com/toklip/toklip/gguf"
)

// Store is the local model store: a folder of blobs named by their sha256 and of manifests, one
// per model name, naming them. Files appear whole or not at all (written aside, then renamed), so a
// crash leaves no half model, and what a killed create wrote aside is swept by the next create or
// removal; a lock file orders the steps that must not interleave (a manifest's write against a
// removal's sweep of unused blobs); a blob whose content does not match its name is refused when
// the model is opened.
//
// Model names are checked wherever they enter (create, copy, show, run, remove), so that no name
// reaches outside the store's folders, and two names that differ only by case cannot both be
// stored: on a case-insensitive file system (macOS, Windows) they would be one manifest file, each
// create overwriting the other's model, while on Linux they would be two models. So the store
// behaves the same on both: create and copy refuse a name that differs only by case from a stored
// one (as ollama's create does), and every other command finds a model by its exact name only.
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

// nameRE is what a model name may hold: no '/', '\', NUL, or leading '.', so that a name is one
// file name in the manifests folder; ASCII, so that case folding is the same on every file system.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$`)

// digestRE is a blob's name in a manifest: a manifest is a file that may have been edited, and
// its digests become paths.
var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// NameError is a name that a model cannot have, or cannot have now (it is the demo model's, or
// differs only by case from a stored one).
type NameError struct{ Msg string }

func (e *NameError) Error() string { return e.Msg }

// CheckName says whether name can be a model's name.
func CheckName(name string) error { return checkName(name) }

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return &NameError{fmt.Sprintf("%q is not a model name: letters, digits, '.', '_', ':' and '-', starting with a letter or digit, at most 128", name)}
	}
	return nil
}

// checkNewName checks a name that a create or copy is about to store.
func (s *Store) checkNewName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if strings.EqualFold(name, DemoName) {
		return &NameError{DemoName + " is the embedded model's name"}
	}
	names, err := s.manifestNames()
	if err != nil {
		return err
	}
	for _, n := range names {
		if n != name && strings.EqualFold(n, name) {
			return &NameError{fmt.Sprintf("%q differs only by case from the stored model %q: refused, as a file system that ignores case would store both as one (remove %q first, or choose another name)", name, n, n)}
		}
	}
	return nil
}

// manifestNames are the names of the stored manifests, as their files are named in the folder's
// listing. Whether a manifest exists is decided from this listing, never by opening its path: on a
// case-insensitive file system the path of "Scenes" opens the manifest of "scenes", while a
// listing gives every file name as it was created.
func (s *Store) manifestNames() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.Root, "manifests"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(n, ".") {
			names = append(names, strings.ReplaceAll(n, "@", ":"))
		}
	}
	return names, nil
}

// findManifest says whether name is stored (exactly so), and if not, which stored name differs
// from it only by case, for the error.
func (s *Store) findManifest(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	names, err := s.manifestNames()
	if err != nil {
		return err
	}
	if slices.Contains(names, name) {
		return nil
	}
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return fmt.Errorf("%w: %q (there is %q: model names are case-sensitive)", ErrNotFound, name, n)
		}
	}
	return fmt.Errorf("%w: %q", ErrNotFound, name)
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

// Create stores a model from a Modelfile whose relative paths are relative to dir, and whose
// FROM may name a model instead of a file (see Based). progress, if set, is called as the files
// are hashed and copied (bytes done, bytes in all).
func (s *Store) Create(name string, mf *Modelfile, dir string, progress func(done, total int64)) error {
	if err := s.checkNewName(name); err != nil { // checked again under the lock, when it counts
		return err
	}
	mf, err := s.Based(mf, dir)
	if err != nil {
		return err
	}
	if mf.Template != "" {
		return &UnsupportedError{"TEMPLATE is not supported: toklip writes chats in the format the model file names (ChatML or Llama 3, from its tokenizer.chat_template); remove the TEMPLATE line"}
	}
	if _, ok := mf.Int("image_size"); ok && mf.Vision == "" {
		return &UnsupportedError{"PARAMETER image_size: the model has no TokLIP file (VISION) to read or draw images with"}
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
		f, err := gguf.ReadFile(paths[i]) // a GGUF whose header holds together
		if err != nil {
			return err
		}
		if i == 1 {
			if err := checkImageSize(mf, f); err != nil {
				return err
			}
		}
		st, err := os.Stat(paths[i])
		if err != nil {
			return err
		}
		total += st.Size()
	}
	if err := s.sweep(); err != nil {
		return err
	}
	var done int64
	digests := make([]string, len(paths))
	for i, p := range paths {
		d, n, err := s.addBlob(p, func(n int64) {
			if progress != nil {
				progress(done+n, total)
			}
		})
		if err != nil {
			return fmt.Errorf("store %s: %w", p, err)
		}
		done += n
		digests[i] = d
	}
	stored := *mf
	stored.From = digests[0]
	m := Manifest{Name: name, LM: digests[0], Size: done, Created: time.Now().UTC()}
	if len(digests) > 1 {
		stored.Vision, m.Vision = digests[1], digests[1]
	}
	m.Modelfile = stored.String()
	return s.writeManifest(m)
}

// UnsupportedError is a Modelfile that parses but asks for what toklip does not do.
type UnsupportedError struct{ Msg string }

func (e *UnsupportedError) Error() string { return e.Msg }

// checkImageSize refuses a PARAMETER image_size that the TokLIP file cannot honor: the size its
// VQ model and ViT were trained at is the only one they read and draw.
func checkImageSize(mf *Modelfile, vision *gguf.File) error {
	want, ok := mf.Int("image_size")
	if !ok {
		return nil
	}
	size, err := gguf.Key[uint32](vision, "toklip.image_size")
	if err != nil {
		return err
	}
	if int64(size) != want {
		return &UnsupportedError{fmt.Sprintf("PARAMETER image_size %d: this model's TokLIP file reads and draws %d px images, a size its weights fix (leave image_size out, or give %d)", want, size, size)}
	}
	return nil
}

// sweep removes, under the store's lock, what a create killed midway left behind: the copies of
// blobs that no running create holds (a create holds a lock on its copy from the moment it makes
// it, under the store's lock, to its rename, under the store's lock: so a copy that can be locked
// here is no one's), and manifests written aside (written under the store's lock: so any seen
// here is a leftover). Neither is ever taken for a model's file, but a killed copy can be as
// large as a model.
func (s *Store) sweep() error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	s.sweepLocked()
	return nil
}

func (s *Store) sweepLocked() {
	dir := filepath.Join(s.Root, "blobs")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".blob-") || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(path)
		}
		f.Close()
	}
	dir = filepath.Join(s.Root, "manifests")
	entries, _ = os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".json.tmp") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// writeManifest writes m under the store's lock, after checking that its blobs are there (a
// removal's sweep may have taken a blob that was already stored when a create found it) and that
// no model of a name that differs only by case was stored meanwhile.
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
	if err := s.checkNewName(m.Name); err != nil {
		return err
	}
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
// digest and the bytes copied.
func (s *Store) addBlob(path string, progress func(int64)) (digest string, n int64, err error) {
	dir := filepath.Join(s.Root, "blobs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	src, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer src.Close()
	tmp, err := s.newCopy(dir)
	if err != nil {
		return "", 0, err
	}
	renamed := false
	defer func() {
		tmp.Close()
		if !renamed { // after the rename, the name may already be another create's copy
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if n, err = io.Copy(io.MultiWriter(tmp, h, &progressWriter{f: progress}), src); err != nil {
		return "", 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, err
	}
	digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	unlock, err := s.lock()
	if err != nil {
		return "", 0, err
	}
	defer unlock()
	if err := tmp.Close(); err != nil { // releases the copy's lock: under the store's, see sweep
		return "", 0, err
	}
	// A blob already stored is replaced, not kept: its content is the same if it is sound, and if
	// it was damaged, creating the model again (as Get's error says to) repairs it.
	if err := os.Rename(tmp.Name(), s.blobPath(digest)); err != nil {
		return "", 0, err
	}
	renamed = true
	return digest, n, nil
}

// newCopy makes a blob's temporary copy and locks it (see sweep).
func (s *Store) newCopy(dir string) (*os.File, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	tmp, err := os.CreateTemp(dir, ".blob-*.tmp")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return tmp, nil
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

// readManifest reads the manifest of a stored name, and checks what in it becomes a path.
func (s *Store) readManifest(name string) (Manifest, error) {
	var m Manifest
	if err := s.findManifest(name); err != nil {
		return m, err
	}
	b, err := os.ReadFile(s.manifestPath(name))
	if errors.Is(err, os.ErrNotExist) { // removed since it was listed
		return m, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("the manifest of %q is damaged: %w", name, err)
	}
	if m.Name != name || !digestRE.MatchString(m.LM) || m.Vision != "" && !digestRE.MatchString(m.Vision) {
		return m, fmt.Errorf("the manifest of %q is damaged: it names the model %q, the files %q and %q", name, m.Name, m.LM, m.Vision)
	}
	return m, nil
}

// Get returns a stored model's manifest and files, after checking that each blob's content
// matches its digest.
func (s *Store) Get(name string) (Manifest, Files, error) {
	m, err := s.readManifest(name)
	if err != nil {
		return m, Files{}, err
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

// Files are the paths of m's blobs, unchecked (Get checks them): for reading a stored model's
// headers without hashing its weights.
func (s *Store) Files(m Manifest) Files {
	f := Files{LM: s.blobPath(m.LM)}
	if m.Vision != "" {
		f.Vision = s.blobPath(m.Vision)
	}
	return f
}

func verify(path, digest string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s is missing (%s): refused; create the model again", digest, path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("blob %s (%s) does not match its digest: its %d bytes hash to %s; refused (damaged or changed on disk; create the model again)", digest, path, n, got)
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
	if err := s.checkNewName(dst); err != nil {
		return err
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
		return &NameError{DemoName + " is embedded in the binary and cannot be removed"}
	}
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	// Found by its exact name (a damaged manifest too, so that it can be removed), never by the
	// path alone: on a case-insensitive file system that path may be another model's manifest.
	if err := s.findManifest(name); err != nil {
		return err
	}
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
	s.sweepLocked()
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

// Based resolves a Modelfile whose FROM names a model (the demo model or a stored one) rather than
// a file (relative paths are relative to dir): the result's FROM and VISION are that model's
// files (VISION stays when mf gives one), and its SYSTEM, TEMPLATE, MESSAGEs and PARAMETERs lie
// under mf's, as ollama's FROM of a model inherits them. A Modelfile whose FROM is a file comes
// back as it is.
func (s *Store) Based(mf *Modelfile, dir string) (*Modelfile, error) {
	p := mf.From
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if _, err := os.Stat(p); err == nil || checkName(mf.From) != nil {
		return mf, nil // a file (or no name: the load says what is wrong with the path)
	}
	var base *Modelfile
	var files Files
	if mf.From == DemoName {
		f, err := Demo()
		if err != nil {
			return nil, err
		}
		if base, err = DemoModelfile(); err != nil {
			return nil, err
		}
		files = f
	} else {
		m, f, err := s.Get(mf.From)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: FROM %s is no file, and no model of that name (`toklip list` shows the models)", ErrNotFound, mf.From)
		}
		if err != nil {
			return nil, err
		}
		if base, err = m.Parsed(); err != nil {
			return nil, err
		}
		files = f
	}
	out := *base
	out.From, out.Vision = files.LM, files.Vision
	if mf.Vision != "" {
		out.Vision = mf.Vision
		if !filepath.IsAbs(out.Vision) {
			out.Vision = filepath.Join(dir, out.Vision)
		}
	}
	if mf.System != "" {
		out.System = mf.System
	}
	if mf.Template != "" {
		out.Template = mf.Template
	}
	if len(mf.Messages) > 0 {
		out.Messages = mf.Messages
	}
	out.License = append(slices.Clip(base.License), mf.License...)
	set := map[string]bool{}
	for _, p := range mf.Parameters {
		set[p.Name] = true
	}
	out.Parameters = nil
	for _, p := range base.Parameters {
		if !set[p.Name] {
			out.Parameters = append(out.Parameters, p)
		}
	}
	out.Parameters = append(out.Parameters, mf.Parameters...)
	return &out, nil
}
