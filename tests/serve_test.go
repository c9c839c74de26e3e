package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/modelfiles"
)

// The README's main job, as a user runs it: `toklip serve` on the embedded demo model, asked by
// OpenAI's Go client about a scene and for a drawing (each checked against the scene or the
// prompt), with -parallel and an API key; SIGINT then drains it and it exits 0.
func TestServeWithOpenAIClient(t *testing.T) {
	base, cmd, exited, stderr, later := startServe(t, "-parallel", "2", "-api-key", "sesame")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wrong := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	if _, err := wrong.Models.List(ctx); err == nil {
		t.Error("a wrong API key was accepted")
	}
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sesame"), option.WithMaxRetries(0))
	scene := demo.Scenes(demo.HeldOut, 1, 11)[0]
	var buf bytes.Buffer
	if err := png.Encode(&buf, scene.Render()); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: modelfiles.DemoName,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}),
			openai.TextContentPart(demo.EvalQuestion),
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := demo.ReadAnswer(resp.Choices[0].Message.Content), demo.ReadAnswer(scene.Caption()); got != want {
		t.Errorf("answer %q for a scene of %q", resp.Choices[0].Message.Content, scene.Caption())
	}

	const prompt = "a small green triangle in the bottom left corner"
	img, err := c.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: prompt, Model: modelfiles.DemoName})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(img.Data[0].B64JSON)
	if err != nil {
		t.Fatal(err)
	}
	pic, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := demo.Check(pic), demo.ReadAnswer(prompt); got != want {
		t.Errorf("the drawing reads as %+v, the prompt asked for %+v", got, want)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGINT")
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Error("the server still answers after it exited")
	}
	// One log line per request on stderr (the wrong key's 401 too), and a word when it drains.
	for _, want := range []string{"| 401 |", "GET /v1/models", "| 200 |", "POST /v1/chat/completions | ", "POST /v1/images/generations | ", "prompt tokens"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve's log lacks %q:\n%s", want, stderr.String())
		}
	}
	if out := later(); !strings.Contains(out, "shutting down: no new requests; finishing those in flight") {
		t.Errorf("serve said nothing when it drained: %q", out)
	}
}

// startServe runs `toklip serve -port 0 args...` on the demo model in a fresh folder and waits
// until it says it is serving: its base URL, the process, its exit, its stderr, and a function
// that returns what it printed on stdout after that once it has exited. It is killed when the
// test ends.
func startServe(t *testing.T, args ...string) (base string, cmd *exec.Cmd, exited chan error, stderr *bytes.Buffer, later func() string) {
	t.Helper()
	dir := t.TempDir()
	return startServeIn(t, dir, append(os.Environ(), "TOKLIP_MODELS="+filepath.Join(dir, "models"), "TOKLIP_CACHE="+filepath.Join(dir, "cache")), args...)
}

// startServeIn is startServe in dir with the environment env (its store, say).
func startServeIn(t *testing.T, dir string, env []string, args ...string) (base string, cmd *exec.Cmd, exited chan error, stderr *bytes.Buffer, later func() string) {
	t.Helper()
	bin := toklipBinary(t)
	cmd = exec.Command(bin, append([]string{"serve", "-port", "0"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	// "serving toklip-demo on http://127.0.0.1:PORT/v1" once the model is in.
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, url, ok := strings.Cut(lines.Text(), "serving "+modelfiles.DemoName+" on "); ok {
			base = strings.TrimSuffix(url, "/v1")
			break
		}
	}
	if base == "" {
		t.Fatalf("serve never said it was serving: %s", stderr.String())
	}
	var rest strings.Builder
	drained := make(chan struct{})
	go func() { // keep the pipe drained, its lines kept for later
		defer close(drained)
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
	}()
	later = func() string { <-drained; return rest.String() }
	return base, cmd, exited, stderr, later
}
