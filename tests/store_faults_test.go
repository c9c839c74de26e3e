package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The store under faults, through the real binary: a create killed mid-copy, names that try to
// leave the store or to alias another model, blobs changed on disk. None of these runs a model:
// every command here ends before the engine would load one.

// storeFixture is a folder with the demo model's two files (as weights-lm.gguf and
// weights-vision.gguf) and a Modelfile naming them, and the binary's environment pointing its
// store and cache into the folder.
type storeFixture struct {
	t         *testing.T
	bin, dir  string
	store     string // $TOKLIP_MODELS
	env       []string
	modelfile string // the Modelfile of the demo files
}

func newStoreFixture(t *testing.T, dir string) *storeFixture {
	t.Helper()
	f := &storeFixture{t: t, bin: toklipBinary(t), dir: dir, store: filepath.Join(dir, "models")}
	f.env = append(os.Environ(), "TOKLIP_MODELS="+f.store, "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	for _, name := range []string{"lm.gguf", "vision.gguf"} {
		b, err := os.ReadFile(filepath.Join("..", "modelfiles", "toklip-demo", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "weights-"+name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.modelfile = filepath.Join(dir, "Modelfile")
	if err := os.WriteFile(f.modelfile, []byte("FROM weights-lm.gguf\nVISION weights-vision.gguf\nPARAMETER temperature 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *storeFixture) toklip(args ...string) (int, string, string) {
	f.t.Helper()
	return runBinary(f.t, f.bin, f.dir, f.env, args...)
}

// must runs a command that has to succeed.
func (f *storeFixture) must(args ...string) string {
	f.t.Helper()
	code, out, errOut := f.toklip(args...)
	if code != 0 {
		f.t.Fatalf("toklip %s: exit %d, %q %q", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that has to fail (exit 1) saying want.
func (f *storeFixture) fails(want string, args ...string) {
	f.t.Helper()
	code, out, errOut := f.toklip(args...)
	if code != 1 || !strings.Contains(errOut, want) {
		f.t.Errorf("toklip %q: exit %d, stdout %q, stderr %q; want exit 1 saying %q", args, code, out, errOut, want)
	}
}

// listed are the model names `toklip list` prints.
func (f *storeFixture) listed() []string {
	f.t.Helper()
	var names []string
	for i, line := range strings.Split(strings.TrimSpace(f.must("list")), "\n") {
		if fields := strings.Fields(line); i > 0 && len(fields) > 0 {
			names = append(names, fields[0])
		}
	}
	return names
}

func (f *storeFixture) manifest(name string) map[string]any {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.store, "manifests", strings.ReplaceAll(name, ":", "@")+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *storeFixture) blobPath(digest string) string {
	return filepath.Join(f.store, "blobs", strings.Replace(digest, ":", "-", 1))
}

// storeFiles are the files under the store's blobs and manifests folders (the lock file aside).
func (f *storeFixture) storeFiles() []string {
	f.t.Helper()
	var out []string
	for _, sub := range []string{"blobs", "manifests"} {
		entries, err := os.ReadDir(filepath.Join(f.store, sub))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

// writeBigGGUF writes a GGUF file of one F32 tensor of size bytes, sparse: its header is all the
// store checks, and the copy and hash take long enough to be killed midway.
func writeBigGGUF(t *testing.T, path string, size int64) {
	t.Helper()
	var h bytes.Buffer
	u32 := func(v uint32) { h.Write(binary.LittleEndian.AppendUint32(nil, v)) }
	u64 := func(v uint64) { h.Write(binary.LittleEndian.AppendUint64(nil, v)) }
	h.WriteString("GGUF")
	u32(3)             // version
	u64(1)             // tensors
	u64(0)             // key-values
	u64(1)             // name length
	h.WriteString("w") // name
	u32(1)             // dimensions
	u64(uint64(size / 4))
	u32(0) // F32
	u64(0) // offset in the data section
	for h.Len()%32 != 0 {
		h.WriteByte(0)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(h.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(h.Len()) + size/4*4); err != nil {
		t.Fatal(err)
	}
}

var progressRE = regexp.MustCompile(`copying \[[= ]*\] +(\d+)%`)

// A create killed with SIGKILL while it copies and hashes leaves no model: the name is not listed
// and has no manifest, a model stored before under the same name is still whole, the half copy is
// never taken for a blob (and the next create sweeps it), and the next create of the name works.
func TestStoreFaultKilledCreate(t *testing.T) {
	f := newStoreFixture(t, t.TempDir())
	f.must("create", "big", "-f", f.modelfile) // the model the killed create would replace
	before := f.manifest("big")
	writeBigGGUF(t, filepath.Join(f.dir, "big.gguf"), 384<<20)
	os.WriteFile(filepath.Join(f.dir, "Big"), []byte("FROM big.gguf\n"), 0o644)

	cmd := exec.Command(f.bin, "create", "big", "-f", "Big")
	cmd.Env, cmd.Dir = f.env, f.dir
	// stderr a terminal, where create draws its progress bar (into a pipe it draws none).
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	cmd.Stderr = tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var stderr io.Reader = ptmx
	// The progress bar is redrawn after '\r' at each whole percent: kill at the first one past 0%.
	sc := bufio.NewScanner(stderr)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	killedAt := -1
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if m := progressRE.FindStringSubmatch(sc.Text()); m != nil {
			if pct, _ := strconv.Atoi(m[1]); pct > 0 && pct < 100 {
				cmd.Process.Signal(syscall.SIGKILL)
				killedAt = pct
				break
			}
		}
	}
	go io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	var ee *exec.ExitError
	if killedAt < 0 || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("create was not killed midway (at %d%%): %v; stderr %q", killedAt, err, seen)
	}
	t.Logf("killed at %d%%", killedAt)

	var leftovers []string
	for _, name := range f.storeFiles() {
		if strings.HasPrefix(name, "blobs/.blob-") {
			leftovers = append(leftovers, name)
		}
	}
	if len(leftovers) != 1 {
		t.Fatalf("store after the kill: %q; want the killed create's half copy there (else it was not killed mid-copy)", f.storeFiles())
	}
	if got := f.manifest("big"); !equalJSON(got, before) {
		t.Fatalf("the killed create changed the manifest of big: %v, was %v", got, before)
	}
	if got := f.listed(); strings.Join(got, " ") != "toklip-demo big" {
		t.Fatalf("list after the kill: %q", got)
	}
	out := f.must("show", "big", "-modelfile") // the old model, whole: show checks its blobs' digests
	if !strings.Contains(out, "VISION "+filepath.Join(f.store, "blobs", "sha256-")) {
		t.Errorf("show big: %q", out)
	}
	// The half copy is no blob: no name in the store refers to it, and removing every model (which
	// sweeps the blobs no model uses) leaves nothing behind, the half copy included.
	f.must("rm", "big")
	if files := f.storeFiles(); len(files) != 0 {
		t.Fatalf("store after removing its only model: %q", files)
	}

	// A kill with no model of the name before: nothing listed, no manifest, and the next create
	// of the name works and sweeps the half copy.
	cmd = exec.Command(f.bin, "create", "big", "-f", "Big")
	cmd.Env, cmd.Dir = f.env, f.dir
	pipe, _ := cmd.StderrPipe()
	stderr = pipe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForCopy(t, f, cmd)
	io.Copy(io.Discard, stderr)
	cmd.Wait()
	if got := f.listed(); strings.Join(got, " ") != "toklip-demo" {
		t.Fatalf("list after a killed first create: %q", got)
	}
	f.fails(`unknown model "big"`, "run", "big", "hello")
	if _, err := os.Stat(filepath.Join(f.store, "manifests", "big.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a manifest after a killed first create: %v", err)
	}
	if code, out, errOut := f.toklip("create", "big", "-f", "Big"); code != 0 || out != "created big\n" || strings.Contains(errOut, "\r") {
		t.Fatalf("create after the kill: exit %d, %q %q", code, out, errOut)
	}
	digest := f.manifest("big")["lm"].(string)
	if files := f.storeFiles(); strings.Join(files, " ") != "blobs/"+strings.Replace(digest, ":", "-", 1)+" manifests/big.json" {
		t.Errorf("store after the next create: %q (the half copy is swept)", files)
	}
	if got := fileDigest(t, f.blobPath(digest)); got != digest || got != fileDigest(t, filepath.Join(f.dir, "big.gguf")) {
		t.Errorf("blob %s holds %s", digest, got)
	}
	f.must("show", "big")
}

// waitForCopy kills cmd with SIGKILL once its copy is in the store's blobs folder and growing.
func waitForCopy(t *testing.T, f *storeFixture, cmd *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		matches, _ := filepath.Glob(filepath.Join(f.store, "blobs", ".blob-*.tmp"))
		if len(matches) == 1 {
			if st, err := os.Stat(matches[0]); err == nil && st.Size() > 0 {
				cmd.Process.Signal(syscall.SIGKILL)
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	t.Fatal("the create's copy never appeared")
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// snapshot is every file and folder under root but skip, with its content's hash.
func snapshot(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == skip {
			return filepath.SkipDir
		}
		if d.IsDir() {
			out[path] = "folder"
			return nil
		}
		out[path] = fileDigest(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Names that try to leave the store (.., /, \, absolute paths) are refused by every command that
// takes a name, and nothing outside the store is written or removed; a name that differs only by
// case from a stored one is refused by create and cp and found by no other command, so that two
// models never share one manifest file on a case-insensitive file system (macOS, Windows), and
// the store behaves the same on a case-sensitive one. (A NUL cannot reach the binary: no
// argument may hold one. modelfiles' tests give it to the store.)
func TestStoreFaultNames(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c") // so that ../../.. from the store stays under base
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newStoreFixture(t, dir)
	f.must("create", "scenes", "-f", f.modelfile)
	// Files a name could reach: next to the store, above it, and at an absolute path.
	for _, p := range []string{filepath.Join(dir, "outside.json"), filepath.Join(base, "outside.json"),
		filepath.Join(base, "a", "outside.json"), filepath.Join(dir, "models", "outside.json")} {
		if err := os.WriteFile(p, []byte(`{"name":"outside","lm":"sha256:`+strings.Repeat("0", 64)+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := snapshot(t, base, f.store)
	storeBefore := snapshot(t, f.store, "")

	bad := []string{"..", ".", "../outside", "../../outside", "../../../../../outside", "a/../../outside",
		"a/b", `a\b`, `..\outside`, `..\..\outside`, filepath.Join(dir, "outside"), "/etc/passwd",
		".hidden", "scenes/../scenes", "scenes@x", " scenes", "scenes\n", "a b", strings.Repeat("x", 129)}
	for _, name := range bad {
		const notAName = "is not a model name"
		f.fails(notAName, "create", name, "-f", f.modelfile)
		f.fails(notAName, "cp", "scenes", name)
		f.fails(notAName, "cp", name, "copied")
		f.fails(notAName, "show", name)
		f.fails(notAName, "rm", name)
		f.fails(notAName, "run", name, "hello")
	}
	if got := snapshot(t, base, f.store); !equalJSON(got, outside) {
		t.Errorf("files outside the store changed:\n%v\nwere\n%v", got, outside)
	}
	if got := snapshot(t, f.store, ""); !equalJSON(got, storeBefore) {
		t.Errorf("the store changed:\n%v\nwas\n%v", got, storeBefore)
	}

	// Case: refused when stored, found only as stored.
	for _, name := range []string{"Scenes", "SCENES", "sCeNeS"} {
		f.fails(`differs only by case from the stored model "scenes"`, "create", name, "-f", f.modelfile)
		f.fails(`differs only by case from the stored model "scenes"`, "cp", "scenes", name)
		f.fails(`there is "scenes"`, "show", name)
		f.fails(`there is "scenes"`, "rm", name)
		f.fails(`unknown model "`+name+`"`, "run", name, "hello")
		f.fails(`unknown model "`+name+`"`, "serve", name, "-port", "1")
	}
	f.fails("is the embedded model's name", "create", "TOKLIP-DEMO", "-f", f.modelfile)
	f.fails("is the embedded model's name", "cp", "scenes", "Toklip-Demo")
	if got := snapshot(t, f.store, ""); !equalJSON(got, storeBefore) {
		t.Errorf("the store changed:\n%v\nwas\n%v", got, storeBefore)
	}
	if got := f.listed(); strings.Join(got, " ") != "toklip-demo scenes" {
		t.Errorf("list: %q", got)
	}
	// Names that differ otherwise are other models; a model removed frees its name in every case.
	f.must("cp", "scenes", "scenes:v1")
	f.must("cp", "scenes", "scenes_v1")
	f.must("create", "scenes", "-f", f.modelfile) // the same name again replaces it
	f.must("rm", "scenes")
	f.must("cp", "scenes:v1", "Scenes")
	if got := f.listed(); strings.Join(got, " ") != "toklip-demo Scenes scenes:v1 scenes_v1" {
		t.Errorf("list: %q", got)
	}
	if out := f.must("show", "Scenes", "-modelfile"); !strings.Contains(out, "PARAMETER temperature 0") {
		t.Errorf("show Scenes: %q", out)
	}
	f.fails(`differs only by case from the stored model "Scenes"`, "create", "scenes", "-f", f.modelfile)
	if got := snapshot(t, base, f.store); !equalJSON(got, outside) {
		t.Errorf("files outside the store changed:\n%v\nwere\n%v", got, outside)
	}
}

// A blob changed or cut short on disk after create, or gone, is refused when the model is opened
// (show, run, serve), naming the blob; a manifest whose digests were edited into paths is refused
// as damaged. Creating the model again repairs a damaged blob.
func TestStoreFaultDamagedBlob(t *testing.T) {
	f := newStoreFixture(t, t.TempDir())
	f.must("create", "scenes", "-f", f.modelfile)
	m := f.manifest("scenes")
	lm, vision := m["lm"].(string), m["vision"].(string)
	opens := func(want string) {
		t.Helper()
		f.fails(want, "show", "scenes")
		f.fails(want, "run", "scenes", "hello")
		f.fails(want, "serve", "scenes", "-port", "1")
		f.fails(want, "cp", "scenes", "copy")
	}

	// One byte changed in the middle of the vision blob.
	b, err := os.ReadFile(f.blobPath(vision))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	os.WriteFile(f.blobPath(vision), b, 0o644)
	opens("blob " + vision + " (" + f.blobPath(vision) + ") does not match its digest")
	f.must("create", "scenes", "-f", f.modelfile) // repairs it
	if got := fileDigest(t, f.blobPath(vision)); got != vision {
		t.Fatalf("create again left the damaged blob: %s", got)
	}
	f.must("show", "scenes")

	// The LM blob cut in half.
	st, err := os.Stat(f.blobPath(lm))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.blobPath(lm), st.Size()/2); err != nil {
		t.Fatal(err)
	}
	opens("blob " + lm + " (" + f.blobPath(lm) + ") does not match its digest: its " + strconv.FormatInt(st.Size()/2, 10) + " bytes hash to")

	// The LM blob gone.
	os.Remove(f.blobPath(lm))
	opens("blob " + lm + " is missing")
	f.must("create", "scenes", "-f", f.modelfile)
	f.must("show", "scenes")

	// A manifest edited to name a file outside the store.
	os.WriteFile(filepath.Join(f.dir, "secret"), []byte("not a model"), 0o644)
	path := filepath.Join(f.store, "manifests", "scenes.json")
	mb, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(mb, []byte(lm), []byte("sha256:../../secret"), 1), 0o644)
	opens(`the manifest of "scenes" is damaged`)
	f.must("rm", "scenes") // a damaged model can still be removed
	if files := f.storeFiles(); len(files) != 0 {
		t.Errorf("store after removing its only model: %q", files)
	}
	if b, err := os.ReadFile(filepath.Join(f.dir, "secret")); err != nil || string(b) != "not a model" {
		t.Errorf("the file the manifest named: %q, %v", b, err)
	}
}
