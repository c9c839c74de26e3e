package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/toklip/toklip/demo"
)

// Modelfiles as ollama users write them, through the binary: FROM a model's name, the
// Modelfile that show prints making the same model again, TEMPLATE and an image_size the model
// cannot honor refused, num_ctx the loaded context, and a model's parameters meaning the same
// through run in this process and through a server.
func TestModelfilesAsOllamaUsersWriteThem(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := userEnv(dir)
	toklip := func(args ...string) (int, string, string) { return runBinary(t, bin, dir, env, args...) }
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const caption = "a large red star in the center"
	toklip("scene", caption, "-o", "scene.png")

	// FROM a model's name: its files and settings, with the new file's over them.
	write("Short", "FROM toklip-demo\nPARAMETER num_predict 3\nPARAMETER num_thread 1\nPARAMETER num_ctx 256\n")
	if code, out, errOut := toklip("create", "short", "-f", "Short"); code != 0 || out != "created short\n" {
		t.Fatalf("create FROM toklip-demo: exit %d, %q %q", code, out, errOut)
	}
	code, short, errOut := toklip("run", "short", "-image", "scene.png", demo.EvalQuestion)
	whole := "A large red star in the center."
	if short = strings.TrimSpace(short); code != 0 || short == "" || short == whole || !strings.HasPrefix(whole, short) {
		t.Fatalf("run short (num_predict 3): exit %d, %q %q", code, short, errOut)
	}
	// show -modelfile makes the same model again: its files, its parameters.
	_, printed, _ := toklip("show", "short", "-modelfile")
	if !strings.Contains(printed, "# FROM short\n") || !strings.Contains(printed, "PARAMETER guidance_scale 3\n") || !strings.Contains(printed, "PARAMETER num_predict 3\n") {
		t.Fatalf("show short -modelfile: %q", printed)
	}
	write("Again", printed)
	if code, _, errOut := toklip("create", "again", "-f", "Again"); code != 0 {
		t.Fatalf("create from show's Modelfile: exit %d, %q", code, errOut)
	}
	_, printedAgain, _ := toklip("show", "again", "-modelfile")
	if strings.Replace(printedAgain, "# FROM again\n", "# FROM short\n", 1) != printed {
		t.Fatalf("the model made from show's Modelfile shows as\n%s\nthe first as\n%s", printedAgain, printed)
	}
	if _, again, _ := toklip("run", "again", "-image", "scene.png", demo.EvalQuestion); strings.TrimSpace(again) != short {
		t.Fatalf("run again: %q, the first model %q", again, short)
	}
	// show in ollama's sections.
	_, shown, _ := toklip("show", "short")
	for _, want := range []string{"  Model\n    architecture         qwen2\n", "  Projector (TokLIP", "  Capabilities\n    completion\n    vision\n", "  Parameters\n", "  License\n"} {
		if !strings.Contains(shown, want) {
			t.Errorf("show short lacks %q:\n%s", want, shown)
		}
	}
	if _, j, _ := toklip("show", "short", "-json"); !strings.Contains(j, `"capabilities": [`) || !strings.Contains(j, `num_predict      3`) {
		t.Errorf("show -json: %s", j)
	}
	if _, j, _ := toklip("list", "-json"); !strings.Contains(j, `"name": "short"`) || !strings.Contains(j, `"name": "toklip-demo"`) {
		t.Errorf("list -json: %s", j)
	}

	// What toklip cannot honor is refused when the model is made, with the reason.
	write("Templated", "FROM toklip-demo\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n")
	if code, _, errOut := toklip("create", "templated", "-f", "Templated"); code != 1 || !strings.Contains(errOut, "TEMPLATE is not supported") {
		t.Errorf("create with a TEMPLATE: exit %d, %q", code, errOut)
	}
	write("Big", "FROM toklip-demo\nPARAMETER image_size 512\n")
	if code, _, errOut := toklip("create", "big", "-f", "Big"); code != 1 || !regexp.MustCompile(`image_size 512: this model's TokLIP file reads and draws \d+ px images`).MatchString(errOut) {
		t.Errorf("create with image_size 512: exit %d, %q", code, errOut)
	}
	write("Same", "FROM toklip-demo\nPARAMETER image_size "+strconv.Itoa(demo.Size)+"\n")
	if code, _, errOut := toklip("create", "same", "-f", "Same"); code != 0 {
		t.Errorf("create with the model's own image_size: exit %d, %q", code, errOut)
	}

	// Through a server on the same store: the same answer, and the context num_ctx asked for.
	base, _, _, _, _ := startServeIn(t, dir, env)
	served := append(env, "TOKLIP_HOST="+strings.TrimPrefix(base, "http://"))
	code, remote, errOut := runBinary(t, bin, dir, served, "run", "short", "-image", "scene.png", demo.EvalQuestion)
	if code != 0 || strings.TrimSpace(remote) != short || !strings.Contains(errOut, "using the server") {
		t.Fatalf("run short through the server: exit %d, %q (in this process: %q) %q", code, remote, short, errOut)
	}
	if _, ps, _ := runBinary(t, bin, dir, served, "ps"); !regexp.MustCompile(`\nshort +[0-9.]+ MB +256 `).MatchString(ps) {
		t.Errorf("ps: the model loaded with num_ctx 256? %q", ps)
	}
	if _, j, _ := runBinary(t, bin, dir, served, "ps", "-json"); !strings.Contains(j, `"context_length": 256`) {
		t.Errorf("ps -json: %s", j)
	}
}
