package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
	"github.com/toklip/toklip/visiontok"
)

var (
	fuzzOnce    sync.Once
	fuzzHandler http.Handler
)

// fuzzServer is the demo model behind the real handler, one ggml thread each (the fuzzer runs
// two workers on this machine's two cores).
func fuzzServer(t *testing.T) http.Handler {
	fuzzOnce.Do(func() {
		files, err := modelfiles.Demo()
		if err != nil {
			t.Fatal(err)
		}
		one := ggml.Options{Threads: 1}
		e, err := llm.Open(t.Context(), files.LM, files.Vision, llm.EngineOptions{
			Backbone: llm.Options{Options: one}, Vision: visiontok.Options{Options: one}})
		if err != nil {
			t.Fatal(err)
		}
		fuzzHandler = server.New(e, server.Options{Model: modelfiles.DemoName, MaxBodyBytes: 1 << 20}).Handler()
	})
	return fuzzHandler
}

var fuzzRoutes = []string{"/v1/chat/completions", "/v1/images/generations", "/v1/embeddings"}

// Any body on any route is answered as OpenAI answers: 200 with JSON or an event stream, or an
// error status with the error object (message, type, param, code); never a 500 (a 500 is a bug:
// the recovery middleware turns a panic into one), never a stream that carries a server error.
func FuzzRequestBodies(f *testing.F) {
	var scene bytes.Buffer
	png.Encode(&scene, demo.Scenes(demo.Train, 1, 1)[0].Render())
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(scene.Bytes())
	f.Add(uint8(0), `{"model":"toklip-demo","max_tokens":8,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"`+url+`"}},{"type":"text","text":"Describe the image."}]}]}`)
	f.Add(uint8(0), `{"model":"toklip-demo","stream":true,"max_tokens":4,"n":2,"stop":["."],"logit_bias":{"5":-100},"messages":[{"role":"system","content":"x"},{"role":"user","content":"Draw a red star."}]}`)
	f.Add(uint8(0), `{"model":"toklip-demo","response_format":{"type":"json_object"},"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}`)
	f.Add(uint8(0), `{"model":"toklip-demo","modalities":["text","image"],"max_tokens":80,"messages":[{"role":"user","content":"Draw a small blue circle."}]}`)
	f.Add(uint8(1), `{"model":"toklip-demo","prompt":"a red star","n":1,"response_format":"b64_json","stream":true,"partial_images":1}`)
	f.Add(uint8(1), `{"model":"toklip-demo","prompt":"a red star","guidance_scale":2,"negative_prompt":"blue","output_format":"jpeg"}`)
	f.Add(uint8(2), `{"model":"toklip-demo","input":["a red star","`+url+`"],"encoding_format":"base64"}`)
	f.Add(uint8(2), `{"model":"toklip-demo","input":[[1,2]]}`)
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		h := fuzzServer(t)
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		out := rec.Body.String()
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s answered %d: %s", path, rec.Code, out)
		case rec.Code == 200 && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream"):
			if strings.Contains(out, `"server_error"`) {
				t.Fatalf("%s streamed a server error: %s", path, out)
			}
		case rec.Code == 200:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s answered 200 with a body that is not JSON: %.200s", path, out)
			}
		default:
			var e struct {
				Error map[string]json.RawMessage `json:"error"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || len(e.Error["message"]) == 0 || len(e.Error["type"]) == 0 ||
				e.Error["param"] == nil || e.Error["code"] == nil {
				t.Fatalf("%s answered %d without OpenAI's error object: %s", path, rec.Code, out)
			}
		}
	})
}

var fuzzOllamaRoutes = []string{"/api/chat", "/api/generate", "/api/embed", "/api/show"}

// Any body on ollama's routes is answered as ollama answers: 200 with JSON, or newline-delimited
// JSON objects none of which is an error a server bug caused; or an error status with
// {"error": "message"}; never a 500.
func FuzzOllamaBodies(f *testing.F) {
	var scene bytes.Buffer
	png.Encode(&scene, demo.Scenes(demo.Train, 1, 1)[0].Render())
	img := base64.StdEncoding.EncodeToString(scene.Bytes())
	f.Add(uint8(0), `{"model":"toklip-demo","options":{"temperature":0,"num_predict":8},"messages":[{"role":"user","content":"Describe the image.","images":["`+img+`"]}]}`)
	f.Add(uint8(0), `{"model":"toklip-demo:latest","stream":false,"format":"json","options":{"num_predict":6,"stop":["."]},"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}`)
	f.Add(uint8(1), `{"model":"toklip-demo","prompt":"Describe the image.","images":["`+img+`"],"system":"be brief","options":{"num_predict":4,"seed":3}}`)
	f.Add(uint8(2), `{"model":"toklip-demo","input":["a red star","data:image/png;base64,`+img+`"]}`)
	f.Add(uint8(1), `{"model":"toklip-demo","prompt":"a red star","width":64,"height":64,"stream":false,"options":{"seed":1,"top_k":5}}`)
	f.Add(uint8(3), `{"model":"toklip-demo"}`)
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		h := fuzzServer(t)
		path := fuzzOllamaRoutes[int(route)%len(fuzzOllamaRoutes)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		out := rec.Body.String()
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s answered %d: %s", path, rec.Code, out)
		case rec.Code == 200:
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if !json.Valid([]byte(line)) {
					t.Fatalf("%s answered 200 with a line that is not JSON: %.200s", path, line)
				}
				if strings.Contains(line, "the server failed") {
					t.Fatalf("%s streamed a server error: %s", path, line)
				}
			}
		default:
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s answered %d without ollama's error object: %s", path, rec.Code, out)
			}
		}
	})
}
