package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The tests that drive the real binary share one build per test process.
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

func TestMain(m *testing.M) {
	// The commands talk to a server at TOKLIP_HOST when one answers there (a developer's own
	// `toklip serve`, say): the tests name one that never answers, unless they start one.
	os.Setenv("TOKLIP_HOST", "127.0.0.1:1")
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// toklipBinary builds cmd/toklip into a temporary folder once, with the environment's cgo flags
// (make test sets them).
func toklipBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "toklip-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "toklip")
		if out, err := exec.Command("go", "build", "-o", binaryPath, "../cmd/toklip").CombinedOutput(); err != nil {
			binaryErr = &buildError{err, out}
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + string(e.out) }

// userEnv is the environment of a user whose home, model store and cache are in dir (home/,
// models/, cache/): what the binary keeps (models, the chat's history) stays in the test's folder.
func userEnv(dir string) []string {
	return append(os.Environ(), "HOME="+filepath.Join(dir, "home"), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
}

// runBinary runs the binary in dir with env and returns its exit code and output; a failure to
// start at all fails the test.
func runBinary(t testing.TB, bin, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir = env, dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}
