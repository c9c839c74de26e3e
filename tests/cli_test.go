package tests

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/toklip/toklip/demo"
)

// The store's whole cycle through the real binary: create from a Modelfile, list, show, run by
// name, cp, rm; the embedded model cannot be removed.
func TestStoreCycleThroughTheBinary(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := append(os.Environ(), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	toklip := func(args ...string) (int, string, string) { return runBinary(t, bin, dir, env, args...) }
	for _, name := range []string{"lm.gguf", "vision.gguf"} {
		b, err := os.ReadFile(filepath.Join("..", "modelfiles", "toklip-demo", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "weights-"+name), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "Modelfile"), []byte("FROM weights-lm.gguf\nVISION weights-vision.gguf\nPARAMETER temperature 0\n"), 0o644)

	// No progress bar redrawn into a pipe (a terminal gets one: chat_test.go).
	if code, out, errOut := toklip("create", "scenes", "-f", "Modelfile"); code != 0 || out != "created scenes\n" || strings.Contains(errOut, "\r") {
		t.Fatalf("create: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := toklip("list"); code != 0 || !strings.Contains(out, "toklip-demo") || !strings.Contains(out, "scenes") {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	if code, out, _ := toklip("show", "scenes", "-modelfile"); code != 0 || !strings.Contains(out, "VISION "+filepath.Join(dir, "models", "blobs", "sha256-")) || !strings.Contains(out, "PARAMETER temperature 0") {
		t.Fatalf("show: exit %d, %q", code, out)
	}
	toklip("scene", "a large red star in the center", "-o", "scene.png")
	if code, out, errOut := toklip("run", "scenes", "-image", "scene.png", "Describe the image."); code != 0 ||
		demo.ReadAnswer(out) != demo.ReadAnswer("a large red star in the center") {
		t.Fatalf("run by name: exit %d, %q %q", code, out, errOut)
	}
	// A message piped in (the interactive chat is driven in a terminal in chat_test.go): a
	// drawing written to a file.
	chat := exec.Command(bin, "run", "scenes", "-draw")
	chat.Env, chat.Dir = env, dir
	chat.Stdin = strings.NewReader("Draw a small blue circle in the center.\n")
	out, err := chat.Output()
	if err != nil || !regexp.MustCompile(`^\[image: [^]\n]+\]\n$`).Match(out) {
		t.Fatalf("run scenes -draw, the message piped in: %v\n%s", err, out)
	}
	checkDrawing(t, filepath.Join(dir, drawnFile(t, string(out), "draw-a-small-blue-circle-in-the-center")), "a small blue circle in the center")
	if code, _, errOut := toklip("cp", "scenes", "scenes:copy"); code != 0 {
		t.Fatalf("cp: exit %d, %q", code, errOut)
	}
	if code, _, errOut := toklip("rm", "scenes", "scenes:copy"); code != 0 {
		t.Fatalf("rm: exit %d, %q", code, errOut)
	}
	if code, _, errOut := toklip("run", "scenes", "hello"); code != 1 || !strings.Contains(errOut, `unknown model "scenes"`) {
		t.Errorf("run a removed model: exit %d, %q", code, errOut)
	}
	if code, _, errOut := toklip("rm", "toklip-demo"); code != 1 || !strings.Contains(errOut, "cannot be removed") {
		t.Errorf("rm the embedded model: exit %d, %q", code, errOut)
	}
	if code, out, _ := toklip("show", "toklip-demo", "-modelfile"); code != 0 || !regexp.MustCompile(`\nVISION /.*/vision\.gguf\n`).MatchString(out) {
		t.Errorf("show the embedded model: exit %d, %q", code, out)
	}
	os.WriteFile(filepath.Join(dir, "Bad"), []byte("FROM x.gguf\nPARAMETER warmth 1\n"), 0o644)
	if code, _, errOut := toklip("create", "bad", "-f", "Bad"); code != 1 || !strings.Contains(errOut, `Bad: line 2: unknown parameter "warmth"`) {
		t.Errorf("create from a bad Modelfile: exit %d, %q", code, errOut)
	}
}

// A fresh binary, with no model files given, answers about a scene and draws one: the embedded
// demo model, unpacked into an empty cache folder. The examples are fixed (greedy decoding); the
// rates over hundreds of scenes are demo/evaluate's and `make eval`'s.
func TestDemoModelOutOfTheBox(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo model")
	}
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := append(os.Environ(), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	toklip := func(args ...string) (int, string, string) { return runBinary(t, bin, dir, env, args...) }
	t.Chdir(dir)

	const caption = "a large red star in the center"
	if code, out, errOut := toklip("scene", caption, "-o", "scene.png"); code != 0 || !strings.Contains(out, "wrote scene.png: "+caption) {
		t.Fatalf("scene: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut := toklip("run", "-image", "scene.png", "Describe the image.")
	if code != 0 {
		t.Fatalf("run: exit %d, %q", code, errOut)
	}
	if got, want := demo.ReadAnswer(out), demo.ReadAnswer(caption); got != want {
		t.Errorf("run: the answer %q reads as %+v, the scene is %+v", out, got, want)
	}

	const prompt = "a small blue circle in the top left corner"
	if code, out, errOut := toklip("generate", prompt, "-o", "drawn.png"); code != 0 || !strings.Contains(out, "wrote drawn.png") {
		t.Fatalf("generate: exit %d, %q %q", code, out, errOut)
	}
	checkDrawing(t, "drawn.png", prompt)

	// Without -o, under a name from the prompt and the time.
	if code, out, errOut := toklip("generate", prompt); code != 0 {
		t.Fatalf("generate: exit %d, %q %q", code, out, errOut)
	} else {
		checkDrawing(t, drawnFile(t, "[image: "+strings.TrimPrefix(strings.TrimSpace(out), "wrote ")+"]", "a-small-blue-circle-in-the-top-left-corner"), prompt)
	}

	// Drawing inside a chat: the answer holds an image, written under a name from the message
	// and the time (never over a file: cmd/toklip's TestImageNames).
	code, out, errOut = toklip("run", "-draw", "Draw "+prompt+".")
	if code != 0 {
		t.Fatalf("run -draw: exit %d, %q %q", code, out, errOut)
	}
	checkDrawing(t, drawnFile(t, out, "draw-a-small-blue-circle-in-the-top-left-corner"), prompt)

	if code, _, errOut := toklip("run", "some-other-model", "hello"); code != 1 || !strings.Contains(errOut, `unknown model "some-other-model"`) {
		t.Errorf("run with an unknown model: exit %d, %q", code, errOut)
	}
}

// drawnFile is the file of the first "[image: NAME]" line in out, a name from the prompt's
// words (slug) and the time.
func drawnFile(t *testing.T, out, slug string) string {
	t.Helper()
	m := regexp.MustCompile(`\[image: ([^]\n]+)\]`).FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		t.Fatalf("no [image: NAME] in %q", out)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(slug) + `-[0-9]{8}-[0-9]{6}(-[0-9]+)?\.png$`).MatchString(m[1]) {
		t.Fatalf("image written as %q, want %s-DATE-TIME.png", m[1], slug)
	}
	return m[1]
}

func checkDrawing(t *testing.T, path, caption string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != demo.Size || b.Dy() != demo.Size {
		t.Errorf("%s: %v, want %d x %d", path, b, demo.Size, demo.Size)
	}
	if got, want := demo.Check(img), demo.ReadAnswer(caption); got != want {
		t.Errorf("%s: the checker finds %+v, the prompt asked for %+v", path, got, want)
	}
}
