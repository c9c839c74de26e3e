package main

import (
	"bytes"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/gguf"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConvertQuantizeInspect(t *testing.T) {
	dir := t.TempDir()
	f32 := filepath.Join(dir, "m.gguf")
	q8 := filepath.Join(dir, "m-q8.gguf")
	hf := filepath.Join("..", "..", "llm", "testdata", "qwen2", "hf")

	if code, out, errOut := runCLI("convert", hf, "-o", f32, "-type", "f32"); code != 0 || !strings.Contains(out, "wrote "+f32) {
		t.Fatalf("convert: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("quantize", f32, q8, "-type", "Q8_0"); code != 0 {
		t.Fatalf("quantize: exit %d, %q", code, errOut)
	}
	code, out, errOut := runCLI("inspect", q8)
	if code != 0 {
		t.Fatalf("inspect: exit %d, %q", code, errOut)
	}
	for _, want := range []string{"architecture  qwen2", "layers        3", "4 query, 2 key-value, 16 dims",
		"vocabulary    512 (output tied: true)", "image tokens  64 from id", "Q8_0"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "ggml CPU backend") {
		t.Errorf("the binary must log its SIMD features at start; stderr: %q", errOut)
	}
}

func TestConvertTokLIPCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	td := filepath.Join("..", "..", "visiontok", "testdata")
	code, _, errOut := runCLI("convert", filepath.Join(td, "toklip-tiny.pt"), "-o", out,
		"-tokenizer", filepath.Join(td, "tokenizer", "tokenizer.json"), "-heads", "4", "-groups", "8")
	if code != 0 {
		t.Fatalf("convert: exit %d, %q", code, errOut)
	}
	code, stdout, errOut := runCLI("inspect", out)
	if code != 0 || !strings.Contains(stdout, "128 px, 8x8 VQ ids") || !strings.Contains(stdout, "2 layers, width 64, 4 heads") {
		t.Fatalf("inspect: exit %d, %q %q", code, stdout, errOut)
	}
	// Quantizing keeps what TokLIP reads only in F32 (the VQ model, the text position table).
	q8 := filepath.Join(t.TempDir(), "tiny-q8.gguf")
	if code, _, errOut := runCLI("quantize", out, q8, "-type", "Q8_0"); code != 0 {
		t.Fatalf("quantize: exit %d, %q", code, errOut)
	}
	if code, stdout, errOut := runCLI("inspect", q8); code != 0 || !strings.Contains(stdout, "Q8_0") {
		t.Fatalf("inspect the Q8_0 file: exit %d, %q %q", code, stdout, errOut)
	}
	f, err := gguf.ReadFile(q8)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]gguf.TensorType{"blk.0.ffn_up.weight": gguf.TypeQ8_0, "s.blk.0.ffn_up.weight": gguf.TypeQ8_0,
		"s.pos_embd.weight": gguf.TypeF32, "v.codebook.weight": gguf.TypeF32} {
		if ti, ok := f.Tensor(name); !ok || ti.Type != want {
			t.Errorf("%s: %v (present %v), want %s", name, ti.Type, ok, want)
		}
	}

	if code, _, errOut := runCLI("convert", filepath.Join(td, "toklip-tiny.pt"), "-o", out); code != 1 || !strings.Contains(errOut, "tokenizer") {
		t.Fatalf("convert without the text tower's tokenizer: exit %d, %q", code, errOut)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	notGGUF := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notGGUF, []byte("hello"), 0o644)
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"convert"}, 2, "usage: toklip convert"},
		{[]string{"convert", "somewhere"}, 2, "-o OUT.gguf is required"},
		{[]string{"quantize", "a", "b", "-type", "Q5_9"}, 2, `unknown type "Q5_9"`},
		{[]string{"inspect", notGGUF}, 1, notGGUF + ": malformed GGUF: bad magic"},
		{[]string{"inspect", "/no/such/file.gguf"}, 1, "no such file"},
		{[]string{"convert", t.TempDir(), "-o", filepath.Join(t.TempDir(), "x.gguf")}, 1, "config.json"},
		{[]string{"run", "-exif", "sideways", "hi"}, 2, `-exif "sideways" is not apply or ignore`},
		{[]string{"serve", "-exif", "sideways"}, 2, `-exif "sideways" is not apply or ignore`},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("toklip %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errOut, c.code, c.msg)
		}
	}
	if code, out, _ := runCLI("help"); code != 0 || !strings.Contains(out, "convert") {
		t.Errorf("help: exit %d, %q", code, out)
	}
	// Every command has help: its usage, its summary, and its flags.
	for name := range commands {
		code, out, _ := runCLI("help", name)
		if code != 0 || !strings.Contains(out, "usage: toklip "+name) {
			t.Errorf("help %s: exit %d, %q", name, code, out)
		}
	}
	if code, out, _ := runCLI("serve", "-h"); code != 0 || !strings.Contains(out, "-image-host") || !strings.Contains(out, "default 8750") {
		t.Errorf("serve -h: exit %d, %q", code, out)
	}
}

// A fresh binary, with no model files given, answers about a scene and draws one: the embedded
// demo model, unpacked into an empty cache folder. The examples are fixed (greedy decoding); the
// rates over hundreds of scenes are demo/evaluate's and `make eval`'s.
func TestDemoModelOutOfTheBox(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo model")
	}
	t.Setenv("TOKLIP_CACHE", t.TempDir())
	t.Setenv("TOKLIP_MODELS", t.TempDir())
	t.Chdir(t.TempDir())

	const caption = "a large red star in the center"
	if code, out, errOut := runCLI("scene", caption, "-o", "scene.png"); code != 0 || !strings.Contains(out, "wrote scene.png: "+caption) {
		t.Fatalf("scene: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut := runCLI("run", "-image", "scene.png", "Describe the image.")
	if code != 0 {
		t.Fatalf("run: exit %d, %q", code, errOut)
	}
	if got, want := demo.ReadAnswer(out), demo.ReadAnswer(caption); got != want {
		t.Errorf("run: the answer %q reads as %+v, the scene is %+v", out, got, want)
	}

	const prompt = "a small blue circle in the top left corner"
	if code, out, errOut := runCLI("generate", prompt, "-o", "drawn.png"); code != 0 || !strings.Contains(out, "wrote drawn.png") {
		t.Fatalf("generate: exit %d, %q %q", code, out, errOut)
	}
	checkDrawing(t, "drawn.png", prompt)

	// Drawing inside a chat: the answer holds an image, written under a free name.
	os.WriteFile("toklip-image-1.png", []byte("the user's own file"), 0o644)
	code, out, errOut = runCLI("run", "-draw", "Draw "+prompt+".")
	if code != 0 || !strings.Contains(out, "[image: toklip-image-2.png]") {
		t.Fatalf("run -draw: exit %d, %q %q", code, out, errOut)
	}
	checkDrawing(t, "toklip-image-2.png", prompt)
	if b, _ := os.ReadFile("toklip-image-1.png"); string(b) != "the user's own file" {
		t.Error("run -draw wrote over an existing file")
	}

	if code, _, errOut := runCLI("run", "some-other-model", "hello"); code != 1 || !strings.Contains(errOut, `unknown model "some-other-model"`) {
		t.Errorf("run with an unknown model: exit %d, %q", code, errOut)
	}
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

// serve says plainly when its port is taken, and refuses an unknown model before listening.
func TestServeErrors(t *testing.T) {
	t.Setenv("TOKLIP_CACHE", t.TempDir())
	t.Setenv("TOKLIP_MODELS", t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if code, _, errOut := runCLI("serve", "-port", port); code != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("serve on a busy port: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI("serve", "nope"); code != 1 || !strings.Contains(errOut, `unknown model "nope"`) {
		t.Errorf("serve an unknown model: exit %d, %q", code, errOut)
	}
}

// The store's whole cycle through the real binary: create from a Modelfile (with its progress
// bar), list, show, run by name, cp, rm; the embedded model cannot be removed.
func TestStoreCycleThroughTheBinary(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := append(os.Environ(), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	toklip := func(args ...string) (int, string, string) { return runBinary(t, bin, dir, env, args...) }
	for _, name := range []string{"lm.gguf", "vision.gguf"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "modelfiles", "toklip-demo", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "weights-"+name), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "Modelfile"), []byte("FROM weights-lm.gguf\nVISION weights-vision.gguf\nPARAMETER temperature 0\n"), 0o644)

	if code, out, errOut := toklip("create", "scenes", "-f", "Modelfile"); code != 0 || out != "created scenes\n" || !strings.Contains(errOut, "100%") {
		t.Fatalf("create: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := toklip("list"); code != 0 || !strings.Contains(out, "toklip-demo") || !strings.Contains(out, "scenes") {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	if code, out, _ := toklip("show", "scenes", "-modelfile"); code != 0 || !strings.Contains(out, "VISION sha256:") || !strings.Contains(out, "PARAMETER temperature 0") {
		t.Fatalf("show: exit %d, %q", code, out)
	}
	toklip("scene", "a large red star in the center", "-o", "scene.png")
	if code, out, errOut := toklip("run", "scenes", "-image", "scene.png", "Describe the image."); code != 0 ||
		demo.ReadAnswer(out) != demo.ReadAnswer("a large red star in the center") {
		t.Fatalf("run by name: exit %d, %q %q", code, out, errOut)
	}
	// The interactive chat: an image attached by path, a question, a drawing written to a file
	// (after /clear: the demo model was trained on single turns).
	chat := exec.Command(bin, "run", "scenes")
	chat.Env, chat.Dir = env, dir
	chat.Stdin = strings.NewReader("/image scene.png\nDescribe the image.\n/clear\n/draw\nDraw a small blue circle in the center.\n/bye\n")
	out, err := chat.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "A large red star in the center.") || !strings.Contains(string(out), "[image: toklip-image-1.png]") {
		t.Fatalf("run scenes (interactive): %v\n%s", err, out)
	}
	checkDrawing(t, filepath.Join(dir, "toklip-image-1.png"), "a small blue circle in the center")
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
	if code, out, _ := toklip("show", "toklip-demo", "-modelfile"); code != 0 || !strings.Contains(out, "VISION vision.gguf") {
		t.Errorf("show the embedded model: exit %d, %q", code, out)
	}
	os.WriteFile(filepath.Join(dir, "Bad"), []byte("FROM x.gguf\nPARAMETER warmth 1\n"), 0o644)
	if code, _, errOut := toklip("create", "bad", "-f", "Bad"); code != 1 || !strings.Contains(errOut, `Bad: line 2: unknown parameter "warmth"`) {
		t.Errorf("create from a bad Modelfile: exit %d, %q", code, errOut)
	}
}
