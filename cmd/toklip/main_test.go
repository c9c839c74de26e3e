package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toklip/toklip/gguf"
)

// TestMain gives the commands an empty stdin, as a shell gives `cmd < /dev/null`: run reads a
// message piped into it, and the test process's own stdin may be a pipe that stays open.
func TestMain(m *testing.M) {
	if null, err := os.Open(os.DevNull); err == nil {
		os.Stdin = null
	}
	os.Exit(m.Run())
}

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
	// What ggml was built with is logged by serve and with TOKLIP_DEBUG; other commands keep
	// their output to what was asked.
	if strings.Contains(errOut, "ggml CPU backend") {
		t.Errorf("inspect logged the backend: %q", errOut)
	}
	t.Setenv("TOKLIP_DEBUG", "1")
	if _, _, errOut := runCLI("inspect", q8); !strings.Contains(errOut, "ggml CPU backend") {
		t.Errorf("with TOKLIP_DEBUG the binary logs its SIMD features at start; stderr: %q", errOut)
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
		{[]string{"lsit"}, 2, `unknown command "lsit"; did you mean "list"?`},
		{[]string{"run", "no-such-model"}, 1, `unknown model "no-such-model"`},
		{[]string{"generate", "a red circle", "-o", filepath.Join(t.TempDir(), "missing", "x.png")}, 1, "does not exist"},
		{[]string{"generate", "a red circle", "-seed", "18446744073709551615"}, 2, "-seed: parameter seed"},
		{[]string{"generate", "a red circle", "-guidance", "50"}, 2, "-guidance: parameter guidance_scale"},
		{[]string{"run", "-o"}, 2, "flag provided but not defined"},
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
	for _, v := range []string{"version", "-v", "--version"} {
		if code, out, _ := runCLI(v); code != 0 || !strings.HasPrefix(out, "toklip ") || !strings.Contains(out, "ollama's engine v0.17.4") {
			t.Errorf("%s: exit %d, %q", v, code, out)
		}
	}
	if code, out, _ := runCLI("serve", "-h"); code != 0 || !strings.Contains(out, "-image-host") || !strings.Contains(out, "default 8750") {
		t.Errorf("serve -h: exit %d, %q", code, out)
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
	if code, _, errOut := runCLI("serve", "-memory", "lots"); code != 2 || !strings.Contains(errOut, `-memory "lots": not a size`) {
		t.Errorf("serve -memory lots: exit %d, %q", code, errOut)
	}
}

// system lists the devices and where the demo model's layers would go; with no GPU, asking for
// layers on one says so and keeps the CPU; a bad -gpu-layers is a usage error.
func TestSystemPlacement(t *testing.T) {
	t.Setenv("TOKLIP_CACHE", t.TempDir())
	t.Setenv("TOKLIP_MODELS", t.TempDir())
	code, out, errOut := runCLI("system")
	if code != 0 || !strings.Contains(out, "CPU      cpu") || !strings.Contains(out, "toklip-demo with -gpu-layers auto") {
		t.Fatalf("system: exit %d, %q %q", code, out, errOut)
	}
	gpus := strings.Contains(out, " gpu ")
	code, out, errOut = runCLI("system", "-gpu-layers", "4")
	if code != 0 || (!gpus && !strings.Contains(out, "note: no GPU was found")) || !strings.Contains(out, "-gpu-layers 4") {
		t.Fatalf("system -gpu-layers 4: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("system", "-gpu-layers", "some"); code != 2 || !strings.Contains(errOut, `"some" is not auto, all or a number of layers`) {
		t.Fatalf("a bad -gpu-layers: exit %d, %q", code, errOut)
	}
}

// A drawing the user names no file for is written under the prompt's first words and the time,
// and never over a file that is there.
func TestImageNames(t *testing.T) {
	at := time.Date(2026, 12, 7, 20, 15, 30, 0, time.UTC)
	for prompt, want := range map[string]string{
		"Draw a red star.":               "draw-a-red-star-20261207-201530",
		"  ../../etc/passwd; rm -rf ~  ": "etc-passwd-rm-rf-20261207-201530",
		"a large yellow square in the bottom left corner of the picture, please": "a-large-yellow-square-in-the-bottom-left-corner-20261207-201530",
		"Ein grünes Dreieck":     "ein-grünes-dreieck-20261207-201530",
		"!!!":                    "image-20261207-201530",
		strings.Repeat("x", 100): strings.Repeat("x", 48) + "-20261207-201530",
	} {
		if got := imageName(prompt, at); got != want {
			t.Errorf("imageName(%q) = %q, want %q", prompt, got, want)
		}
	}
	dir := t.TempDir()
	name := filepath.Join(dir, "a-red-star-20261207-201530")
	os.WriteFile(name+".png", []byte("the user's own file"), 0o644)
	for _, want := range []string{name + "-2.png", name + "-3.png"} {
		if got, err := writeNew(name, []byte("drawn")); err != nil || got != want {
			t.Errorf("writeNew: %q, %v; want %q", got, err, want)
		}
	}
	if b, _ := os.ReadFile(name + ".png"); string(b) != "the user's own file" {
		t.Error("writeNew wrote over a file")
	}
}
