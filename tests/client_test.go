package tests

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/toklip/toklip/demo"
)

// The command line as ollama's is: with a server answering at TOKLIP_HOST, run, generate, list,
// show, ps and stop ask it (the server's store, not this process's; the answers checked against
// the scene and the prompt), and say so on stderr; with none, list reads the store and says so,
// and ps and stop say there is no server.
func TestCommandsAskTheServer(t *testing.T) {
	base, _, _, _, _ := startServe(t)
	// Models only the server's store holds: the commands below see them only through the server.
	for _, name := range []string{"served-only", "served-two"} {
		resp, err := http.Post(base+"/api/copy", "application/json", strings.NewReader(`{"source": "toklip-demo", "destination": "`+name+`"}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("copy on the server: %v %v", resp, err)
		}
	}
	bin := toklipBinary(t)
	dir := t.TempDir()
	t.Chdir(dir)
	env := append(os.Environ(), "TOKLIP_HOST="+strings.TrimPrefix(base, "http://"), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache"))
	toklip := func(args ...string) string {
		t.Helper()
		code, out, errOut := runBinary(t, bin, dir, env, args...)
		if code != 0 || args[0] != "ps" && args[0] != "stop" && !strings.Contains(errOut, "using the server at "+base) {
			t.Fatalf("toklip %q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
		return out
	}

	if out := toklip("list"); !strings.Contains(out, "served-only") || !strings.Contains(out, "toklip-demo") {
		t.Errorf("list: %q", out)
	}
	if out := toklip("show", "served-only"); !strings.Contains(out, "  Capabilities\n    completion\n    vision\n    embedding\n    image\n") || !regexp.MustCompile(`\n    guidance_scale +3\n`).MatchString(out) {
		t.Errorf("show: %q", out)
	}
	scene := demo.Scenes(demo.HeldOut, 1, 17)[0]
	var buf bytes.Buffer
	png.Encode(&buf, scene.Render())
	os.WriteFile("scene.png", buf.Bytes(), 0o644)
	if out := toklip("run", "served-only", "-image", "scene.png", demo.EvalQuestion); demo.ReadAnswer(out) != demo.ReadAnswer(scene.Caption()) {
		t.Errorf("run answered %q for a scene of %q", out, scene.Caption())
	}
	// Drawn greedy through the server, as in this process (a prompt the demo model draws right).
	const prompt = "a small blue circle in the top left corner"
	if out := toklip("generate", prompt, "-o", "drawn.png"); !strings.Contains(out, "wrote drawn.png") {
		t.Errorf("generate: %q", out)
	}
	checkDrawing(t, "drawn.png", prompt)
	checkDrawing(t, drawnFile(t, toklip("run", "-draw", "Draw "+prompt+"."), "draw-a-small-blue-circle-in-the-top-left-corner"), prompt)

	scene = demo.Scenes(demo.HeldOut, 1, 18)[0]
	buf.Reset()
	png.Encode(&buf, scene.Render())
	os.WriteFile("scene.png", buf.Bytes(), 0o644)
	if out := toklip("run", "served-two", "-image", "scene.png", demo.EvalQuestion); demo.ReadAnswer(out) != demo.ReadAnswer(scene.Caption()) {
		t.Errorf("run answered %q for a scene of %q", out, scene.Caption())
	}
	// One server answered two stored models and the demo model within the minute, and holds them.
	out := toklip("ps")
	for _, name := range []string{"served-only", "served-two", "toklip-demo"} {
		if !strings.Contains(out, name) {
			t.Errorf("ps does not list %s: %q", name, out)
		}
	}
	if !regexp.MustCompile(`in (4m[0-9]+s|5m0s)`).MatchString(out) { // the 5 minutes' keep-alive, rounded to seconds
		t.Errorf("ps: %q", out)
	}
	if out := toklip("stop", "served-only"); out != "stopped served-only\n" {
		t.Errorf("stop: %q", out)
	}
	if out := toklip("ps"); strings.Contains(out, "served-only") || !strings.Contains(out, "toklip-demo") {
		t.Errorf("ps after stop: %q", out)
	}
	code, _, errOut := runBinary(t, bin, dir, env, "run", "no-such-model", "hello")
	if code != 1 || !strings.Contains(errOut, `the server says: the model "no-such-model" does not exist`) {
		t.Errorf("run with an unknown model: exit %d, %q", code, errOut)
	}

	// No server: list and show read the store, ps and stop need one.
	env = append(env, "TOKLIP_HOST=127.0.0.1:1")
	if code, out, errOut := runBinary(t, bin, dir, env, "list"); code != 0 || strings.Contains(out, "served-only") || !strings.Contains(errOut, "no server answers at http://127.0.0.1:1 (TOKLIP_HOST): reading the store") {
		t.Errorf("list with no server: exit %d, %q, %q", code, out, errOut)
	}
	for _, args := range [][]string{{"ps"}, {"stop", "toklip-demo"}} {
		if code, _, errOut := runBinary(t, bin, dir, env, args...); code != 1 || !strings.Contains(errOut, "no toklip server answers at http://127.0.0.1:1") {
			t.Errorf("%s with no server: exit %d, %q", args[0], code, errOut)
		}
	}
}
