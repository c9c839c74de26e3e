package tests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toklip/toklip/demo"
)

// ollama's JS client (npm ollama, pinned in tests/ollamajs; make test installs it) against
// `toklip serve`: version, list, show, a chat about a scene streamed and not, generate, drawing
// through generate, embed, copy, create, delete, ps, and an unknown model's error, judged here.
func TestOllamaJSClient(t *testing.T) {
	if _, err := os.Stat(filepath.Join("ollamajs", "node_modules", "ollama")); err != nil {
		t.Fatal("npm's ollama package is not installed: make test installs it (cd tests/ollamajs && npm ci)")
	}
	base, _, _, stderr, _ := startServe(t)
	scene := demo.Scenes(demo.HeldOut, 1, 13)[0]
	var img bytes.Buffer
	if err := png.Encode(&img, scene.Render()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "scene.png")
	if err := os.WriteFile(path, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	const draw = "a small yellow triangle in the top left corner"
	cmd := exec.Command("node", "check.mjs", base, path, demo.EvalQuestion, draw)
	cmd.Dir = "ollamajs"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\nserver: %s", err, out, stderr)
	}
	var got struct {
		Version      string
		Models       []string
		Capabilities []string
		Chat         struct {
			Streamed, DoneReason string
			Chunks, EvalCount    int
			Done                 bool
		}
		ChatWhole, Generate string
		Draw                struct {
			Progress int
			Image    string
		}
		Embed   int
		Created struct {
			Statuses            []string
			Parameters, License string
		}
		MadeAnswer  string
		ModelsAfter []string
		PS          []struct {
			Name    string
			Size    int64
			Expires time.Time
		}
		Error *struct {
			Status  int
			Message string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Version == "" || !slices.Equal(got.Models, []string{"toklip-demo:latest"}) || !slices.Contains(got.Capabilities, "vision") {
		t.Errorf("version %q, models %v, capabilities %v", got.Version, got.Models, got.Capabilities)
	}
	if a, want := demo.ReadAnswer(got.Chat.Streamed), demo.ReadAnswer(scene.Caption()); a != want {
		t.Errorf("chat answered %q for a scene of %q", got.Chat.Streamed, scene.Caption())
	}
	if got.Chat.Chunks < 3 || !got.Chat.Done || got.Chat.DoneReason != "stop" || got.Chat.EvalCount < 1 {
		t.Errorf("the stream: %+v", got.Chat)
	}
	if got.ChatWhole != got.Chat.Streamed || got.Generate != got.Chat.Streamed {
		t.Errorf("stream false %q, generate %q, streamed %q", got.ChatWhole, got.Generate, got.Chat.Streamed)
	}
	raw, err := base64.StdEncoding.DecodeString(got.Draw.Image)
	if err != nil {
		t.Fatalf("the drawing is not base64: %v", err)
	}
	pic, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if a, want := demo.Check(pic), demo.ReadAnswer(draw); a != want || got.Draw.Progress != 64 {
		t.Errorf("drawn: reads as %+v, want %+v; %d progress objects", a, want, got.Draw.Progress)
	}
	if got.Embed != 2 {
		t.Errorf("%d embeddings for 2 inputs", got.Embed)
	}
	if c := got.Created; len(c.Statuses) < 2 || c.Statuses[len(c.Statuses)-1] != "success" || !strings.Contains(c.Parameters, "num_predict") || !strings.Contains(c.License, "js") {
		t.Errorf("create: %+v", c)
	}
	if got.MadeAnswer != got.Chat.Streamed {
		t.Errorf("the created model answered %q, the demo model %q", got.MadeAnswer, got.Chat.Streamed)
	}
	if !slices.Equal(got.ModelsAfter, []string{"toklip-demo:latest", "js-made:latest"}) {
		t.Errorf("list after copy, create and delete: %v", got.ModelsAfter)
	}
	if len(got.PS) != 2 || got.PS[0].Name != "js-made:latest" || got.PS[0].Size < 20<<20 || time.Until(got.PS[0].Expires) < 9*time.Minute || got.PS[1].Name != "toklip-demo:latest" {
		t.Errorf("ps: %+v", got.PS)
	}
	if got.Error == nil || got.Error.Status != 404 || !strings.Contains(got.Error.Message, "gpt-9") {
		t.Errorf("an unknown model: %+v", got.Error)
	}
}
