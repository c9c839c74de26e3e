package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
)

// TestMain unpacks the demo model once, into a folder of its own: modelfiles.Demo unpacks once
// per process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "toklip-cache")
	if err != nil {
		panic(err)
	}
	os.Setenv("TOKLIP_CACHE", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start serves the embedded demo model on a random loopback port and returns its base URL.
func start(t *testing.T, opts server.Options) string {
	base, _, _ := serve(t, opts)
	return base
}

// serve is start, also returning the engine and the HTTP server.
func serve(t *testing.T, opts server.Options) (string, *llm.Engine, *http.Server) {
	t.Helper()
	return serveEngine(t, opts, openDemo(t, llm.EngineOptions{}))
}

// serveEngine serves e under the demo model's name.
func serveEngine(t *testing.T, opts server.Options, e *llm.Engine) (string, *llm.Engine, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Model = modelfiles.DemoName
	srv := server.New(e, opts).HTTPServer()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), e, srv
}

// openDemo opens the embedded demo model, closed when the test ends.
func openDemo(t *testing.T, opts llm.EngineOptions) *llm.Engine {
	t.Helper()
	files, err := modelfiles.Demo()
	if err != nil {
		t.Fatal(err)
	}
	e, err := llm.Open(context.Background(), files.LM, files.Vision, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func client(base string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(base + "/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0)}, opts...)...)
}

func sceneDataURL(t *testing.T, s demo.Scene) string {
	var buf bytes.Buffer
	if err := png.Encode(&buf, s.Render()); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func describeParams(t *testing.T, s demo.Scene) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: modelfiles.DemoName,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: sceneDataURL(t, s)}),
			openai.TextContentPart(demo.EvalQuestion),
		})},
		Temperature: openai.Float(0),
	}
}

// The official client reads the model list, answers about an image (checked against the scene),
// streams with usage, and draws an image of the size the model makes.
func TestOpenAIClient(t *testing.T) {
	c := client(start(t, server.Options{}))
	ctx := context.Background()

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != modelfiles.DemoName {
		t.Fatalf("models: %+v, %v", models, err)
	}
	if !strings.Contains(models.Data[0].RawJSON(), `"output_modalities":["text","image"]`) {
		t.Errorf("the model lists no image output: %s", models.Data[0].RawJSON())
	}

	scene := demo.Scenes(demo.HeldOut, 1, 7)[0]
	resp, err := c.Chat.Completions.New(ctx, describeParams(t, scene))
	if err != nil {
		t.Fatal(err)
	}
	answer := resp.Choices[0].Message.Content
	if got, want := demo.ReadAnswer(answer), demo.ReadAnswer(scene.Caption()); got != want {
		t.Errorf("answer %q for %q", answer, scene.Caption())
	}
	if resp.Choices[0].FinishReason != "stop" || resp.Usage.PromptTokens < 64 || resp.Usage.CompletionTokens < 1 {
		t.Errorf("finish %q, usage %+v", resp.Choices[0].FinishReason, resp.Usage)
	}
	if !strings.Contains(resp.Usage.PromptTokensDetails.RawJSON(), `"image_tokens":64`) {
		t.Errorf("usage does not count the 64 image tokens: %s", resp.Usage.PromptTokensDetails.RawJSON())
	}

	params := describeParams(t, scene)
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var streamed strings.Builder
	var usage openai.CompletionUsage
	chunks := 0
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if len(ch.Choices) > 0 {
			streamed.WriteString(ch.Choices[0].Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if streamed.String() != answer || chunks < 4 || usage.TotalTokens != resp.Usage.TotalTokens {
		t.Errorf("streamed %q in %d chunks, usage %+v; want %q, usage %+v", streamed.String(), chunks, usage, answer, resp.Usage)
	}

	const prompt = "a large red square in the top right corner"
	img, err := c.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: prompt, Model: modelfiles.DemoName,
		N: openai.Int(2), Size: "1024x1024"}, option.WithJSONSet("temperature", 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Data) != 2 || img.Size != "64x64" {
		t.Fatalf("%d images of size %q", len(img.Data), img.Size)
	}
	for i, d := range img.Data {
		b, err := base64.StdEncoding.DecodeString(d.B64JSON)
		if err != nil {
			t.Fatal(err)
		}
		pic, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if got, want := demo.Check(pic), demo.ReadAnswer(prompt); got != want {
			t.Errorf("image %d: the checker finds %+v, the prompt asked for %+v", i, got, want)
		}
	}
	if img.Usage.OutputTokens != 128 {
		t.Errorf("usage %+v: want 128 output tokens (2 images of 64 ids)", img.Usage)
	}
}

// A chat that may answer with images returns them as image_url parts with PNG data URLs.
func TestChatDraws(t *testing.T) {
	base := start(t, server.Options{})
	body := `{"model":"toklip-demo","modalities":["text","image"],"temperature":0,
		"messages":[{"role":"user","content":"Draw a small green circle in the center."}]}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct {
				Content []struct {
					Type     string
					ImageURL struct{ URL string } `json:"image_url"`
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	var found bool
	for _, p := range out.Choices[0].Message.Content {
		if p.Type != "image_url" {
			continue
		}
		b64, ok := strings.CutPrefix(p.ImageURL.URL, "data:image/png;base64,")
		b, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil {
			t.Fatalf("not a PNG data URL: %.60s", p.ImageURL.URL)
		}
		pic, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := demo.Check(pic), demo.ReadAnswer("a small green circle in the center"); got != want {
			t.Errorf("the checker finds %+v, want %+v", got, want)
		}
		found = true
	}
	if !found {
		t.Fatalf("the answer holds no image: %+v", out)
	}
}

// Bad requests get the right status and OpenAI's error object with all four keys, and the server
// keeps answering.
func TestBadRequests(t *testing.T) {
	base := start(t, server.Options{MaxBodyBytes: 1 << 20})
	hugePNG := func() string { // a valid PNG header that claims 100000 x 100000 pixels
		var buf bytes.Buffer
		png.Encode(&buf, demo.Scenes(demo.Train, 1, 1)[0].Render())
		b := buf.Bytes()
		copy(b[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0}) // IHDR width and height
		binary.BigEndian.PutUint32(b[29:33], crc32.ChecksumIEEE(b[12:29]))
		return base64.StdEncoding.EncodeToString(b)
	}()
	img := func(url string) string {
		return `{"model":"toklip-demo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + url + `"}},{"type":"text","text":"hi"}]}]}`
	}
	manyImages := `{"model":"toklip-demo","messages":[{"role":"user","content":[` +
		strings.Repeat(`{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},`, 9) + `{"type":"text","text":"hi"}]}]}`
	cases := []struct {
		name, path, body string
		status           int
		param, msg       string
	}{
		{"malformed JSON", "/v1/chat/completions", `{"model":`, 400, "", "not valid JSON"},
		{"empty body", "/v1/chat/completions", ``, 400, "", "empty"},
		{"wrong type", "/v1/chat/completions", `{"model":"toklip-demo","messages":[],"temperature":"hot"}`, 400, "temperature", "expected a number"},
		{"no messages", "/v1/chat/completions", `{"model":"toklip-demo","messages":[]}`, 400, "messages", "at least one"},
		{"image top_k negative", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","top_k":-1}`, 400, "top_k", ">= 0"},
		{"image guidance out of range", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","guidance_scale":0.5}`, 400, "guidance_scale", "[1, 20]"},
		{"chat guidance out of range", "/v1/chat/completions", `{"model":"toklip-demo","messages":[{"role":"user","content":"hi"}],"guidance_scale":30}`, 400, "guidance_scale", "[1, 20]"},
		{"tokens without image", "/v1/images/tokens", `{"model":"toklip-demo"}`, 400, "image", "image is required"},
		{"tokens of no image", "/v1/images/tokens", `{"model":"toklip-demo","image":"data:image/png;base64,AAAA"}`, 400, "", "image"},
		{"tokens of a huge image", "/v1/images/tokens", `{"model":"toklip-demo","image":"data:image/png;base64,` + hugePNG + `"}`, 400, "", "pixels"},
		{"tokens, unknown model", "/v1/images/tokens", `{"model":"gpt-9","image":"data:,"}`, 404, "model", "gpt-9"},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model", `"gpt-9" does not exist`},
		{"bad role", "/v1/chat/completions", `{"model":"toklip-demo","messages":[{"role":"wizard","content":"hi"}]}`, 400, "messages[0].role", "wizard"},
		{"temperature out of range", "/v1/chat/completions", `{"model":"toklip-demo","temperature":3,"messages":[{"role":"user","content":"hi"}]}`, 400, "temperature", "[0, 2]"},
		{"json_schema", "/v1/chat/completions", `{"model":"toklip-demo","response_format":{"type":"json_schema"},"messages":[{"role":"user","content":"hi"}]}`, 400, "response_format", "not supported"},
		{"n out of range", "/v1/chat/completions", `{"model":"toklip-demo","n":0,"messages":[{"role":"user","content":"hi"}]}`, 400, "n", "not in [1, 8]"},
		{"bad base64", "/v1/chat/completions", img("data:image/png;base64,!!!"), 400, "messages[0].content[0].image_url.url", "bad base64"},
		{"not an image", "/v1/chat/completions", img("data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("hello, world"))), 400, "messages[0].content[0].image_url.url", "not a PNG"},
		{"huge PNG header", "/v1/chat/completions", img("data:image/png;base64," + hugePNG), 400, "messages[0].content[0].image_url.url", "pixels"},
		{"http image URL", "/v1/chat/completions", img("https://example.com/cat.png"), 400, "messages[0].content[0].image_url.url", "does not fetch"},
		{"too many images", "/v1/chat/completions", manyImages, 400, "messages", "9 images in one request, at most 8"},
		{"prompt over the context", "/v1/chat/completions", `{"model":"toklip-demo","messages":[{"role":"user","content":"` + strings.Repeat("red star ", 3000) + `"}]}`, 400, "messages", "context holds"},
		{"body over the limit", "/v1/chat/completions", `{"model":"toklip-demo","messages":[{"role":"user","content":"` + strings.Repeat("x", 2<<20) + `"}]}`, 413, "", "over the limit"},
		{"image n out of range", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","n":11}`, 400, "n", "not in [1, 8]"},
		{"image without prompt", "/v1/images/generations", `{"model":"toklip-demo"}`, 400, "prompt", "required"},
		{"streamed images, n 2", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","stream":true,"n":2}`, 400, "n", "draws one image"},
		{"partial_images out of range", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","stream":true,"partial_images":4}`, 400, "partial_images", "[0, 3]"},
		{"bad size", "/v1/images/generations", `{"model":"toklip-demo","prompt":"a red star","size":"big"}`, 400, "size", "WIDTHxHEIGHT"},
		{"embedding without input", "/v1/embeddings", `{"model":"toklip-demo"}`, 400, "input", "required"},
		{"embedding of token ids", "/v1/embeddings", `{"model":"toklip-demo","input":[1,2,3]}`, 400, "input", "token ids are not read"},
		{"embedding of a bad image", "/v1/embeddings", `{"model":"toklip-demo","input":["a cat","data:image/png;base64,AAAA"]}`, 400, "input[1]", "bad image"},
		{"unknown route", "/v1/nothing", `{}`, 404, "", "no route"},
	}
	for _, c := range cases {
		resp, err := http.Post(base+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Error map[string]*string `json:"error"`
		}
		json.Unmarshal(raw, &body)
		e := body.Error
		_, hasParam := e["param"]
		_, hasCode := e["code"]
		switch {
		case resp.StatusCode != c.status:
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, raw)
		case e["message"] == nil || e["type"] == nil || !hasParam || !hasCode:
			t.Errorf("%s: not OpenAI's error object: %s", c.name, raw)
		case !strings.Contains(*e["message"], c.msg):
			t.Errorf("%s: message %q does not say %q", c.name, *e["message"], c.msg)
		case c.param != "" && (e["param"] == nil || *e["param"] != c.param):
			t.Errorf("%s: param %v, want %q", c.name, e["param"], c.param)
		}
	}
	// Still healthy, and still answering.
	c := client(base)
	if _, err := c.Chat.Completions.New(context.Background(), describeParams(t, demo.Scenes(demo.HeldOut, 1, 3)[0])); err != nil {
		t.Fatalf("after the bad requests: %v", err)
	}
	// The official client sees the error object too.
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-9",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Param != "model" {
		t.Errorf("the client got %v", err)
	}
}

func TestAPIKey(t *testing.T) {
	base := start(t, server.Options{APIKey: "s3cret"})
	without, with := client(base), client(base, option.WithAPIKey("s3cret"))
	if _, err := without.Models.List(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the key: %v", err)
	}
	if _, err := with.Models.List(context.Background()); err != nil {
		t.Errorf("with the key: %v", err)
	}
	if resp, err := http.Get(base + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("health needs no key: %v %v", resp, err)
	}
}

// An image's embedding (a data URL) and its caption's share TokLIP's space: the image is nearer
// its own caption than to captions that differ in color or shape. base64 encoding carries the
// same floats.
func TestEmbeddings(t *testing.T) {
	base := start(t, server.Options{})
	c := client(base)
	scene := demo.Scenes(demo.HeldOut, 1, 11)[0]
	other := scene
	other.Color = (scene.Color + 1) % len(demo.Colors)
	other2 := scene
	other2.Shape = (scene.Shape + 1) % len(demo.Shapes)
	inputs := []string{sceneDataURL(t, scene), scene.Caption(), other.Caption(), other2.Caption()}
	resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: modelfiles.DemoName,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: inputs}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 4 || resp.Usage.PromptTokens < 64 {
		t.Fatalf("%d embeddings, usage %+v", len(resp.Data), resp.Usage)
	}
	dot := func(a, b []float64) (s float64) {
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	img := resp.Data[0].Embedding
	if n := dot(img, img); math.Abs(n-1) > 1e-4 {
		t.Errorf("not unit length: |v|^2 = %g", n)
	}
	own, color, shape := dot(img, resp.Data[1].Embedding), dot(img, resp.Data[2].Embedding), dot(img, resp.Data[3].Embedding)
	t.Logf("cosine with %q %.3f, %q %.3f, %q %.3f", scene.Caption(), own, other.Caption(), color, other2.Caption(), shape)
	if own <= color || own <= shape {
		t.Errorf("the image is not nearest its own caption")
	}

	body := `{"model":"toklip-demo","encoding_format":"base64","input":"` + scene.Caption() + `"}`
	r, err := http.Post(base+"/v1/embeddings", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct{ Data []struct{ Embedding string } }
	json.NewDecoder(r.Body).Decode(&out)
	raw, err := base64.StdEncoding.DecodeString(out.Data[0].Embedding)
	if err != nil || len(raw) != 4*len(img) {
		t.Fatalf("base64 embedding: %d bytes, %v", len(raw), err)
	}
	for i, want := range resp.Data[1].Embedding {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != float32(want) {
			t.Fatalf("base64 element %d: %g, float form %g", i, got, want)
		}
	}
}

// /metrics counts requests by route and status, tokens, time to first token and image work.
func TestMetrics(t *testing.T) {
	base := start(t, server.Options{})
	c := client(base)
	if _, err := c.Chat.Completions.New(context.Background(), describeParams(t, demo.Scenes(demo.HeldOut, 1, 5)[0])); err != nil {
		t.Fatal(err)
	}
	http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"nope","messages":[]}`))
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`toklip_requests_total{route="/v1/chat/completions",status="200"} 1`,
		`toklip_requests_total{route="/v1/chat/completions",status="404"} 1`,
		`toklip_tokens_total{kind="image_input"} 64`,
		"toklip_time_to_first_token_seconds_count 1",
		"toklip_image_encode_seconds_count 1",
		"toklip_queue_depth 0",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A streamed generation sends the partial images asked for, in order, then the completed image.
func TestImageStream(t *testing.T) {
	c := client(start(t, server.Options{}))
	const prompt = "a small purple triangle in the bottom left corner"
	stream := c.Images.GenerateStreaming(context.Background(), openai.ImageGenerateParams{Prompt: prompt,
		Model: modelfiles.DemoName, PartialImages: openai.Int(2)}, option.WithJSONSet("temperature", 0))
	var partials []int64
	var completed string
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "image_generation.partial_image":
			partials = append(partials, ev.PartialImageIndex)
		case "image_generation.completed":
			completed = ev.B64JSON
			if ev.Usage.OutputTokens != 64 || ev.Size != "64x64" {
				t.Errorf("completed: usage %+v, size %q", ev.Usage, ev.Size)
			}
			var tm struct {
				PromptMS float64 `json:"prompt_ms"`
				TokensMS float64 `json:"tokens_ms"`
				DecodeMS float64 `json:"decode_ms"`
				TotalMS  float64 `json:"total_ms"`
			}
			var completed struct{ Timings json.RawMessage }
			json.Unmarshal([]byte(ev.RawJSON()), &completed)
			raw := string(completed.Timings)
			if err := json.Unmarshal(completed.Timings, &tm); err != nil || tm.PromptMS <= 0 || tm.TokensMS <= 0 || tm.DecodeMS <= 0 ||
				tm.PromptMS+tm.TokensMS+tm.DecodeMS > tm.TotalMS {
				t.Errorf("completed: timings %s", raw)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(partials) != 2 || partials[0] != 0 || partials[1] != 1 {
		t.Errorf("partial images %v, want [0 1]", partials)
	}
	b, err := base64.StdEncoding.DecodeString(completed)
	if err != nil {
		t.Fatal(err)
	}
	pic, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := demo.Check(pic), demo.ReadAnswer(prompt); got != want {
		t.Errorf("the checker finds %+v, the prompt asked for %+v", got, want)
	}
}

// response_format url: the image is served by toklip under an unguessable URL, as a JPEG when
// asked; an unknown id is a 404 error object.
func TestImageURL(t *testing.T) {
	base := start(t, server.Options{APIKey: "k"})
	c := client(base, option.WithAPIKey("k"))
	img, err := c.Images.Generate(context.Background(), openai.ImageGenerateParams{Prompt: "a large blue circle in the center",
		Model: modelfiles.DemoName, ResponseFormat: openai.ImageGenerateParamsResponseFormatURL, OutputFormat: "jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Data) != 1 || !strings.HasPrefix(img.Data[0].URL, base+"/images/") || img.Data[0].B64JSON != "" {
		t.Fatalf("data %+v", img.Data)
	}
	resp, err := http.Get(img.Data[0].URL) // no key: the URL is the permission
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || len(b) < 100 || b[0] != 0xff || b[1] != 0xd8 {
		t.Fatalf("GET the URL: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
	if resp, _ := http.Get(base + "/images/0123"); resp == nil || resp.StatusCode != 404 {
		t.Errorf("an unknown image: %+v", resp)
	}
}

// While the model named at start loads, /health answers 503 with Retry-After; a request for it
// waits for that one load (the scheduler shares it) and is answered; once it is in, /health is 200.
func TestPreload(t *testing.T) {
	gate := make(chan struct{})
	var loads atomic.Int32
	s := server.New(nil, server.Options{Store: &modelfiles.Store{Root: t.TempDir()},
		Open: func(ctx context.Context, lm, vision string, o llm.EngineOptions) (*llm.Engine, error) {
			loads.Add(1)
			<-gate
			return llm.Open(ctx, lm, vision, o)
		}})
	t.Cleanup(s.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	preloaded := make(chan error)
	go func() { preloaded <- s.Preload(context.Background(), modelfiles.DemoName) }()
	for loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/health while loading: %d", resp.StatusCode)
	}
	answered := make(chan error)
	go func() {
		c := client(base)
		_, err := c.Chat.Completions.New(context.Background(), describeParams(t, demo.Scenes(demo.HeldOut, 1, 4)[0]))
		answered <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(gate)
	if err := <-preloaded; err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("the model loaded %d times, want once", n)
	}
	if resp, err := http.Get(base + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("health when loaded: %v %v", resp, err)
	}
}

// response_format json_object: whatever the model would rather say, the answer is a JSON object,
// or, cut short by max_completion_tokens, the start of one (the demo model was never trained to
// write JSON: greedy, it opens a key and never closes it; sampled with this seed, it writes {}).
func TestJSONObject(t *testing.T) {
	c := client(start(t, server.Options{}))
	params := describeParams(t, demo.Scenes(demo.HeldOut, 1, 2)[0])
	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
	params.MaxCompletionTokens = openai.Int(64)
	params.Seed = openai.Int(7)
	stopped := 0
	for _, temp := range []float64{0, 1} {
		params.Temperature = openai.Float(temp)
		resp, err := c.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		text, finish := resp.Choices[0].Message.Content, resp.Choices[0].FinishReason
		t.Logf("temperature %g: %q (%s)", temp, text, finish)
		var obj map[string]any
		switch {
		case finish == "stop" && json.Unmarshal([]byte(text), &obj) == nil:
			stopped++
		case finish == "length" && strings.HasPrefix(text, "{") && prefixOfJSON(text):
		default:
			t.Errorf("temperature %g: %q (%s) is neither a JSON object nor the start of one", temp, text, finish)
		}
	}
	if stopped == 0 {
		t.Error("no answer ended as a whole JSON object")
	}
}

// prefixOfJSON says whether some text completes s into valid JSON, by trying closers: enough for
// the cut-short answers above (inside a string, after a key or a value).
func prefixOfJSON(s string) bool {
	for _, tail := range []string{`"}`, `":0}`, `}`, `0}`, `"]}`, `]}`} {
		if json.Valid([]byte(s + tail)) {
			return true
		}
	}
	return false
}

// waitMetric polls /metrics until it holds line, or fails the test after 10 s.
func waitMetric(t *testing.T, base, line string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), line+"\n") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q", line)
		}
	}
}

// A client that leaves stops its work: 8 images of 64 guided ids would take over 512 step calls;
// cancelled after the first, the engine stops within a few. Shutdown lets a request in flight
// finish and answer.
func TestDisconnectAndShutdown(t *testing.T) {
	base, e, srv := serve(t, server.Options{})
	c := client(base)
	params := openai.ImageGenerateParams{Prompt: "a small red star in the center", Model: modelfiles.DemoName, N: openai.Int(8)}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Images.Generate(ctx, params); done <- err }()
	for e.BatchStats().Calls == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled request: %v", err)
	}
	waitMetric(t, base, "toklip_requests_running 0")
	if calls := e.BatchStats().Calls; calls >= 8*64 {
		t.Errorf("%d step calls: the work went on after the client left", calls)
	}

	params.N = openai.Int(4)
	type answer struct {
		n   int
		err error
	}
	got := make(chan answer, 1)
	go func() {
		img, err := c.Images.Generate(context.Background(), params)
		if err != nil {
			got <- answer{0, err}
			return
		}
		got <- answer{len(img.Data), nil}
	}()
	waitMetric(t, base, "toklip_requests_running 1")
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a.err != nil || a.n != 4 {
		t.Errorf("the request in flight at shutdown: %d images, %v", a.n, a.err)
	}
}

// The Modelfile's parameters fill what a request leaves out, and only that.
func TestModelfileDefaults(t *testing.T) {
	mf, err := modelfiles.Parse(strings.NewReader("FROM x.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := client(start(t, server.Options{Defaults: mf}))
	params := describeParams(t, demo.Scenes(demo.HeldOut, 1, 4)[0])
	resp, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage.CompletionTokens != 3 || resp.Choices[0].FinishReason != "length" {
		t.Errorf("num_predict 3: %d tokens, finish %q", resp.Usage.CompletionTokens, resp.Choices[0].FinishReason)
	}
	params.MaxTokens = openai.Int(32)
	resp, err = c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].FinishReason != "stop" {
		t.Errorf("the request's max_tokens did not override num_predict: %+v", resp.Usage)
	}
}

// Without a seed from the request or the Modelfile, each request samples with a seed of its own,
// which the response reports; sent back, it gives the same answer (and image).
func TestRandomSeedReported(t *testing.T) {
	c := client(start(t, server.Options{}))
	ctx := context.Background()
	params := describeParams(t, demo.Scenes(demo.HeldOut, 1, 5)[0])
	params.Temperature = openai.Float(1.5)
	params.MaxTokens = openai.Int(12)
	seedOf := func(f map[string]respjson.Field) int64 {
		t.Helper()
		s, err := strconv.ParseInt(f["seed"].Raw(), 10, 64)
		if err != nil {
			t.Fatalf("seed %q: %v", f["seed"].Raw(), err)
		}
		return s
	}
	seeds := map[int64]string{}
	for range 3 {
		resp, err := c.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		seeds[seedOf(resp.JSON.ExtraFields)] = resp.Choices[0].Message.Content
	}
	if len(seeds) != 3 {
		t.Fatalf("3 requests without a seed sampled with %d seeds", len(seeds))
	}
	for seed, answer := range seeds {
		params.Seed = openai.Int(seed)
		resp, err := c.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != answer || seedOf(resp.JSON.ExtraFields) != seed {
			t.Errorf("seed %d again: %q, the first time %q", seed, got, answer)
		}
		break
	}

	// An image sampled at temperature 1 (the demo Modelfile's image_temperature 0 overridden).
	img := openai.ImageGenerateParams{Prompt: "a small red star in the center", Model: modelfiles.DemoName}
	first, err := c.Images.Generate(ctx, img, option.WithJSONSet("temperature", 1))
	if err != nil {
		t.Fatal(err)
	}
	seed := seedOf(first.JSON.ExtraFields)
	again, err := c.Images.Generate(ctx, img, option.WithJSONSet("temperature", 1), option.WithJSONSet("seed", seed))
	if err != nil {
		t.Fatal(err)
	}
	if again.Data[0].B64JSON != first.Data[0].B64JSON {
		t.Errorf("the image drawn again with its seed %d differs", seed)
	}
}

// POST /v1/images/tokens: what TokLIP reads of an image, the VQ ids over its crop, and what the
// VQ decoder draws back from them, which still shows the scene.
func TestImageTokens(t *testing.T) {
	base := start(t, server.Options{})
	scene := demo.Scenes(demo.HeldOut, 1, 11)[0]
	body, _ := json.Marshal(map[string]string{"model": modelfiles.DemoName, "image": sceneDataURL(t, scene)})
	resp, err := http.Post(base+"/v1/images/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Object               string
		Grid, Size           int
		IDs                  [][]int32
		Crop, Reconstruction string
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if tok.Object != "image.tokens" || tok.Grid != 8 || tok.Size != demo.Size || len(tok.IDs) != 8 || len(tok.IDs[7]) != 8 {
		t.Fatalf("object %q, grid %d, size %d, %d rows of ids", tok.Object, tok.Grid, tok.Size, len(tok.IDs))
	}
	distinct := map[int32]bool{}
	for _, row := range tok.IDs {
		for _, id := range row {
			distinct[id] = true
		}
	}
	if len(distinct) < 2 {
		t.Errorf("one id over the whole scene: %v", tok.IDs)
	}
	for name, b64 := range map[string]string{"crop": tok.Crop, "reconstruction": tok.Reconstruction} {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		pic, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, want := demo.Check(pic), demo.ReadAnswer(scene.Caption()); got != want {
			t.Errorf("%s reads as %+v, the scene is %+v", name, got, want)
		}
	}
}

// A streamed chat that draws sends the partial renders asked for (toklip's delta.partial_image),
// in order, before the image itself.
func TestChatStreamsPartialImages(t *testing.T) {
	base := start(t, server.Options{})
	body := `{"model":"toklip-demo","modalities":["text","image"],"stream":true,"partial_images":2,
		"messages":[{"role":"user","content":"Draw a large red square in the center."}]}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var partials []int
	images := 0
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(raw)) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content      json.RawMessage
					PartialImage *struct {
						URL   string
						Index int `json:"partial_image_index"`
					} `json:"partial_image"`
				}
			}
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		for _, c := range ch.Choices {
			if p := c.Delta.PartialImage; p != nil {
				if images > 0 || !strings.HasPrefix(p.URL, "data:image/png;base64,") {
					t.Errorf("partial image %d after the image, or not a PNG data URL", p.Index)
				}
				partials = append(partials, p.Index)
			}
			if strings.Contains(string(c.Delta.Content), `"image_url"`) {
				images++
			}
		}
	}
	if len(partials) != 2 || partials[0] != 0 || partials[1] != 1 || images != 1 {
		t.Errorf("partial images %v, then %d images", partials, images)
	}
	bad := `{"model":"toklip-demo","modalities":["text","image"],"partial_images":2,"messages":[{"role":"user","content":"hi"}]}`
	if resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(bad)); err != nil || resp.StatusCode != 400 {
		t.Errorf("partial_images without a stream: %v %v", resp.StatusCode, err)
	}
}

// The playground is served at / to a browser, its files under /playground/, without a key even
// when the API needs one; anything else asking / gets the line ollama's clients check.
func TestPlaygroundFiles(t *testing.T) {
	base := start(t, server.Options{APIKey: "k"})
	get := func(path, accept string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/", "text/html,application/xhtml+xml")
	if resp.StatusCode != 200 || !strings.Contains(page, `src="/playground/playground.js"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("the page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if resp, text := get("/", ""); resp.StatusCode != 200 || !strings.HasPrefix(text, "toklip is running") {
		t.Errorf("GET / without text/html: %d %q", resp.StatusCode, text)
	}
	for file, typ := range map[string]string{"playground.js": "text/javascript", "playground.css": "text/css"} {
		if resp, body := get("/playground/"+file, ""); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) || len(body) < 1000 {
			t.Errorf("%s: %d %q, %d bytes", file, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if resp, _ := get("/playground/../server.go", ""); resp.StatusCode != 404 {
		t.Errorf("a path out of the playground's files: %d", resp.StatusCode)
	}
	if resp, _ := get("/v1/models", ""); resp.StatusCode != 401 {
		t.Errorf("the API without the key: %d", resp.StatusCode)
	}
}
