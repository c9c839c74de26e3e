package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"
	ollamamodel "github.com/ollama/ollama/types/model"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/server"
)

// ollama's own Go client against toklip's ollama routes: the server answers its heartbeat and
// version, lists and shows the model with its capabilities, describes an image (the demo scene
// read back) by chat, streamed and not, and by generate, embeds text and an image, and its errors
// come back as the client's StatusError with ollama's status codes.
func TestOllamaClient(t *testing.T) {
	base := start(t, server.Options{})
	u, _ := url.Parse(base)
	c := api.NewClient(u, http.DefaultClient)
	ctx := context.Background()
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Version(ctx); err != nil || v != server.OllamaAPIVersion {
		t.Fatalf("version %q, %v", v, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list.Models) != 1 || list.Models[0].Name != "toklip-demo:latest" {
		t.Fatalf("tags: %+v, %v", list, err)
	}
	ps, err := c.ListRunning(ctx)
	if err != nil || len(ps.Models) != 1 || ps.Models[0].Name != "toklip-demo:latest" || ps.Models[0].Size < 20<<20 || ps.Models[0].ContextLength == 0 {
		t.Fatalf("ps: %+v, %v", ps, err)
	}
	show, err := c.Show(ctx, &api.ShowRequest{Model: "toklip-demo"})
	if err != nil || !slices.Contains(show.Capabilities, ollamamodel.CapabilityVision) || !slices.Contains(show.Capabilities, ollamamodel.CapabilityImage) {
		t.Fatalf("show: %+v, %v", show, err)
	}

	scene := demo.Scenes(demo.HeldOut, 1, 5)[0]
	var img bytes.Buffer
	if err := png.Encode(&img, scene.Render()); err != nil {
		t.Fatal(err)
	}
	greedy := map[string]any{"temperature": 0}
	chat := func(stream bool) (string, api.ChatResponse) {
		var text strings.Builder
		var last api.ChatResponse
		chunks := 0
		err := c.Chat(ctx, &api.ChatRequest{Model: "toklip-demo:latest", Stream: &stream, Options: greedy, Messages: []api.Message{
			{Role: "user", Content: demo.EvalQuestion, Images: []api.ImageData{img.Bytes()}},
		}}, func(r api.ChatResponse) error {
			chunks++
			text.WriteString(r.Message.Content)
			last = r
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if stream && chunks < 3 || !stream && chunks != 1 {
			t.Errorf("stream %v: %d objects", stream, chunks)
		}
		return text.String(), last
	}
	streamed, last := chat(true)
	if got, want := demo.ReadAnswer(streamed), demo.ReadAnswer(scene.Caption()); got != want {
		t.Errorf("chat answered %q for a scene of %q", streamed, scene.Caption())
	}
	if !last.Done || last.DoneReason != "stop" || last.PromptEvalCount < 64 || last.EvalCount < 1 || last.TotalDuration <= 0 {
		t.Errorf("the last object: %+v", last)
	}
	if whole, _ := chat(false); whole != streamed {
		t.Errorf("stream false gave %q, streamed %q", whole, streamed)
	}
	var generated strings.Builder
	if err := c.Generate(ctx, &api.GenerateRequest{Model: "toklip-demo", Prompt: demo.EvalQuestion, Images: []api.ImageData{img.Bytes()}, Options: greedy},
		func(r api.GenerateResponse) error { generated.WriteString(r.Response); return nil }); err != nil {
		t.Fatal(err)
	}
	if generated.String() != streamed {
		t.Errorf("generate answered %q, chat %q", generated.String(), streamed)
	}

	// raw: the prompt in the model's own format (ChatML, its special tokens read as such) answers
	// as the templated one does.
	gen := func(req *api.GenerateRequest) string {
		var out strings.Builder
		if err := c.Generate(ctx, req, func(r api.GenerateResponse) error { out.WriteString(r.Response); return nil }); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	const q = "What is drawn?"
	templated := gen(&api.GenerateRequest{Model: "toklip-demo", Prompt: q, Options: greedy})
	rawAnswer := gen(&api.GenerateRequest{Model: "toklip-demo", Raw: true, System: "ignored when raw", Options: greedy,
		Prompt: "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n"})
	if rawAnswer != templated || rawAnswer == "" {
		t.Errorf("raw answered %q, the templated prompt %q", rawAnswer, templated)
	}
	if unformatted := gen(&api.GenerateRequest{Model: "toklip-demo", Raw: true, Prompt: q, Options: greedy}); unformatted == templated {
		t.Errorf("a raw prompt without the format answered as the templated one: %q", unformatted)
	}

	// Drawing through generate, as ollama's client asks an image model: progress, then the PNG.
	const prompt = "a large red square in the top right corner"
	var drawn string
	var steps int
	if err := c.Generate(ctx, &api.GenerateRequest{Model: "toklip-demo", Prompt: prompt, Width: 64, Height: 64, Options: greedy},
		func(r api.GenerateResponse) error {
			if r.Total > 0 {
				steps++
			}
			if r.Done {
				drawn = r.Image
			}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(drawn)
	if err != nil {
		t.Fatalf("the image is not base64: %v", err)
	}
	pic, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := demo.Check(pic), demo.ReadAnswer(prompt); got != want || steps != 64 {
		t.Errorf("drawn through generate: reads as %+v (want %+v), %d progress objects (want 64)", got, want, steps)
	}

	emb, err := c.Embed(ctx, &api.EmbedRequest{Model: "toklip-demo", Input: []string{scene.Caption(), "data:image/png;base64," + base64.StdEncoding.EncodeToString(img.Bytes())}})
	if err != nil || len(emb.Embeddings) != 2 || len(emb.Embeddings[0]) != len(emb.Embeddings[1]) || emb.PromptEvalCount == 0 {
		t.Fatalf("embed: %v (%d vectors)", err, len(emb.Embeddings))
	}

	var status api.StatusError
	err = c.Chat(ctx, &api.ChatRequest{Model: "gpt-9", Messages: []api.Message{{Role: "user", Content: "hi"}}}, func(api.ChatResponse) error { return nil })
	if !errors.As(err, &status) || status.StatusCode != 404 || !strings.Contains(status.ErrorMessage, `"gpt-9" does not exist`) {
		t.Errorf("an unknown model: %v", err)
	}
	err = c.Chat(ctx, &api.ChatRequest{Model: "toklip-demo", Options: map[string]any{"temperature": "hot"}, Messages: []api.Message{{Role: "user", Content: "hi"}}},
		func(api.ChatResponse) error { return nil })
	if !errors.As(err, &status) || status.StatusCode != 400 || !strings.Contains(status.ErrorMessage, "temperature") {
		t.Errorf("an option of the wrong type: %v", err)
	}
	many := slices.Repeat([]api.ImageData{img.Bytes()}, 9) // one over the default limit of 8
	err = c.Generate(ctx, &api.GenerateRequest{Model: "toklip-demo", Prompt: "hi", Images: many}, func(api.GenerateResponse) error { return nil })
	if !errors.As(err, &status) || status.StatusCode != 400 || !strings.Contains(status.ErrorMessage, "9 images in one request, at most 8") {
		t.Errorf("too many images: %v", err)
	}
	err = c.Chat(ctx, &api.ChatRequest{Model: "toklip-demo", Options: map[string]any{"top_p": 2}, Messages: []api.Message{{Role: "user", Content: "hi"}}},
		func(api.ChatResponse) error { return nil })
	if !errors.As(err, &status) || status.StatusCode != 400 || !strings.Contains(status.ErrorMessage, "top_p 2 must be in [0, 1]") {
		t.Errorf("an option out of range: %v", err)
	}
}
