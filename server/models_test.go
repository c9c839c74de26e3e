package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
)

// storeServer serves a store holding alpha and beta (the demo model's files under other names and
// Modelfiles), counting the loads of each model, with a memory budget of the given number of
// demo-sized models.
type storeServer struct {
	base  string
	store *modelfiles.Store
	api   *api.Client
	mu    sync.Mutex
	loads map[string]int // by the LM file's path
}

func newStoreServer(t *testing.T, models float64, keepAlive *time.Duration) *storeServer {
	t.Helper()
	st := &modelfiles.Store{Root: t.TempDir()}
	for _, m := range []string{"alpha", "beta"} {
		// (No SYSTEM: the demo model was trained without one, and reads scenes worse with one.)
		mf, err := modelfiles.Parse(strings.NewReader("FROM toklip-demo\nPARAMETER num_predict 40\nLICENSE " + m + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Create(m, mf, t.TempDir(), nil); err != nil {
			t.Fatal(err)
		}
	}
	files, err := modelfiles.Demo()
	if err != nil {
		t.Fatal(err)
	}
	e, err := llm.Open(context.Background(), files.LM, files.Vision, llm.EngineOptions{}) // what one takes once loaded
	if err != nil {
		t.Fatal(err)
	}
	in := e.Info()
	e.Close()
	s := &storeServer{store: st, loads: map[string]int{}}
	srv := server.New(nil, server.Options{Store: st, Memory: int64(models * float64(in.Memory)), KeepAlive: keepAlive,
		Open: func(ctx context.Context, lm, vision string, o llm.EngineOptions) (*llm.Engine, error) {
			s.mu.Lock()
			s.loads[lm]++
			s.mu.Unlock()
			return llm.Open(ctx, lm, vision, o)
		}})
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	s.base = "http://" + ln.Addr().String()
	u, _ := url.Parse(s.base)
	s.api = api.NewClient(u, http.DefaultClient)
	return s
}

func (s *storeServer) totalLoads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.loads {
		n += v
	}
	return n
}

// describe asks a model about a demo scene over ollama's chat, and checks the answer.
func (s *storeServer) describe(t *testing.T, model string, seed uint64, keepAlive *api.Duration) error {
	scene := demo.Scenes(demo.HeldOut, 1, seed)[0]
	var img bytes.Buffer
	png.Encode(&img, scene.Render())
	var text strings.Builder
	no := false
	err := s.api.Chat(context.Background(), &api.ChatRequest{Model: model, Stream: &no, KeepAlive: keepAlive, Messages: []api.Message{
		{Role: "user", Content: demo.EvalQuestion, Images: []api.ImageData{img.Bytes()}},
	}}, func(r api.ChatResponse) error { text.WriteString(r.Message.Content); return nil })
	if err != nil {
		return err
	}
	if got, want := demo.ReadAnswer(text.String()), demo.ReadAnswer(scene.Caption()); got != want {
		return fmt.Errorf("%s answered %q for a scene of %q", model, text.String(), scene.Caption())
	}
	return nil
}

func (s *storeServer) loaded(t *testing.T) []string {
	t.Helper()
	ps, err := s.api.ListRunning(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ps.Models {
		names = append(names, m.Name)
	}
	return names
}

// One server answers chats for two stored models and the demo model at once (each loaded once,
// all three held together within the budget), and /api/ps shows them; /v1/models and /api/tags
// list the store.
func TestServesTheStore(t *testing.T) {
	s := newStoreServer(t, 3.5, nil)
	var wg sync.WaitGroup
	for i, m := range []string{"alpha", "beta:latest", modelfiles.DemoName, "alpha", "beta"} {
		wg.Go(func() {
			if err := s.describe(t, m, uint64(20+i), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := s.loaded(t)
	slices.Sort(got)
	if fmt.Sprint(got) != "[alpha:latest beta:latest toklip-demo:latest]" {
		t.Fatalf("loaded %v, want the three", got)
	}
	if n := s.totalLoads(); n != 3 {
		t.Errorf("%d loads for three models", n)
	}
	ps, _ := s.api.ListRunning(context.Background())
	for _, m := range ps.Models {
		if until := time.Until(m.ExpiresAt); until < 4*time.Minute || until > 5*time.Minute {
			t.Errorf("%s expires in %v, want about the default 5 minutes", m.Name, until)
		}
	}
	tags, err := s.api.List(context.Background())
	if err != nil || len(tags.Models) != 3 {
		t.Fatalf("tags %+v, %v", tags, err)
	}
	oc := client(s.base)
	models, err := oc.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
		if m.JSON.ExtraFields["output_modalities"].Raw() != `["text","image"]` {
			t.Errorf("%s: %s", m.ID, m.RawJSON())
		}
	}
	if fmt.Sprint(ids) != "[toklip-demo alpha beta]" {
		t.Errorf("/v1/models lists %v", ids)
	}
	// The Modelfile of each applies to its own requests.
	show, err := s.api.Show(context.Background(), &api.ShowRequest{Model: "beta"})
	if err != nil || show.License != "Trained by toklip's authors on generated scenes; released with toklip.\nbeta" || !strings.Contains(show.Parameters, "num_predict") {
		t.Errorf("show beta: %+v %v", show, err)
	}
}

// Over the budget, the least recently used idle model is unloaded for a new one; keep_alive 0
// unloads a model after its request; a model named nowhere is a 404 in ollama's shape.
func TestEvictionAndKeepAlive(t *testing.T) {
	s := newStoreServer(t, 2.5, nil)
	for i, m := range []string{"alpha", "beta", "alpha"} { // beta is now the least recently used
		if err := s.describe(t, m, uint64(30+i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.describe(t, modelfiles.DemoName, 33, nil); err != nil {
		t.Fatal(err)
	}
	got := s.loaded(t)
	if fmt.Sprint(got) != "[toklip-demo:latest alpha:latest]" {
		t.Fatalf("loaded %v after a third model over the budget, want the demo and alpha (beta evicted)", got)
	}
	if err := s.describe(t, "beta", 34, &api.Duration{}); err != nil { // keep_alive 0
		t.Fatal(err)
	}
	if got := s.loaded(t); slices.Contains(got, "beta:latest") || len(got) != 1 {
		t.Fatalf("after keep_alive 0: %v (beta unloaded, and one of the others for it)", got)
	}
	err := s.describe(t, "gamma", 35, nil)
	var se api.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(se.ErrorMessage, `"gamma" does not exist`) {
		t.Fatalf("an unknown model: %v", err)
	}
}

// Ten requests for a cold model load it once; a model removed from the store while loaded keeps
// answering until it is stopped (ollama's stop: generate with keep_alive 0), then is a 404.
func TestSharedLoadAndRemoval(t *testing.T) {
	s := newStoreServer(t, 0, nil)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 10 {
		wg.Go(func() {
			if err := s.describe(t, "alpha", uint64(40+i), nil); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := s.totalLoads(); n != 1 {
		t.Fatalf("ten requests for a cold model loaded it %d times", n)
	}
	if err := s.api.Delete(context.Background(), &api.DeleteRequest{Model: "alpha"}); err != nil {
		t.Fatal(err)
	}
	if err := s.describe(t, "alpha", 50, nil); err != nil {
		t.Fatalf("a removed model still loaded: %v", err)
	}
	err := s.api.Generate(context.Background(), &api.GenerateRequest{Model: "alpha", KeepAlive: &api.Duration{}}, func(r api.GenerateResponse) error {
		if !r.Done || r.DoneReason != "unload" {
			t.Errorf("stop answered %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var se api.StatusError
	if err := s.describe(t, "alpha", 51, nil); !errors.As(err, &se) || se.StatusCode != 404 {
		t.Fatalf("after stop, the removed model: %v", err)
	}
}

// ollama's create, copy and delete change the store the server serves: a model created from
// another with a system prompt answers with it, a copy answers under its new name, and a deleted
// name is gone from the list. Bad requests get ollama's error shape and status.
func TestOllamaCreateCopyDelete(t *testing.T) {
	s := newStoreServer(t, 0, nil)
	ctx := context.Background()
	var statuses []string
	// A TEMPLATE is refused (toklip writes chats in the model file's own format), with the reason.
	err := s.api.Create(ctx, &api.CreateRequest{Model: "templated", From: "alpha", Template: "{{ .Prompt }}"}, func(api.ProgressResponse) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "TEMPLATE is not supported") { // streamed: the error ends the progress
		t.Errorf("create with a template: %v", err)
	}
	err = s.api.Create(ctx, &api.CreateRequest{Model: "terse", From: "alpha", Parameters: map[string]any{"temperature": 0, "stop": []any{"\n\n"}}},
		func(p api.ProgressResponse) error { statuses = append(statuses, p.Status); return nil })
	if err != nil || statuses[len(statuses)-1] != "success" {
		t.Fatalf("create: %v %v", statuses, err)
	}
	show, err := s.api.Show(ctx, &api.ShowRequest{Model: "terse"})
	if err != nil || !strings.Contains(show.Parameters, "stop") || !strings.Contains(show.Parameters, "num_predict") || !strings.Contains(show.Modelfile, "PARAMETER temperature 0") {
		t.Fatalf("show the created model: %+v %v", show, err)
	}
	if err := s.describe(t, "terse", 60, nil); err != nil {
		t.Fatal(err)
	}
	files, _ := modelfiles.Demo()
	err = s.api.Create(ctx, &api.CreateRequest{Model: "fromfiles"}, func(api.ProgressResponse) error { return nil })
	if se := (api.StatusError{}); !errors.As(err, &se) || se.StatusCode != 400 {
		t.Errorf("create with nothing to build on: %v", err)
	}
	body := fmt.Sprintf(`{"model": "fromfiles", "stream": false, "modelfile": "FROM %s\nVISION %s\nPARAMETER temperature 0\n"}`, files.LM, files.Vision)
	resp, err := http.Post(s.base+"/api/create", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create from a Modelfile body: %v %v", resp, err)
	}
	if err := s.describe(t, "fromfiles", 61, nil); err != nil {
		t.Fatal(err)
	}

	if err := s.api.Copy(ctx, &api.CopyRequest{Source: "terse", Destination: "terse2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.api.Copy(ctx, &api.CopyRequest{Source: modelfiles.DemoName, Destination: "demo2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.describe(t, "demo2", 62, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.api.Delete(ctx, &api.DeleteRequest{Model: "terse2"}); err != nil {
		t.Fatal(err)
	}
	tags, _ := s.api.List(ctx)
	var names []string
	for _, m := range tags.Models {
		names = append(names, m.Name)
	}
	if fmt.Sprint(names) != "[toklip-demo:latest alpha:latest beta:latest demo2:latest fromfiles:latest terse:latest]" {
		t.Errorf("tags after create, copy and delete: %v", names)
	}
	for _, bad := range []struct {
		do   func() error
		code int
		want string
	}{
		{func() error { return s.api.Delete(ctx, &api.DeleteRequest{Model: "nope"}) }, 404, "no such model"},
		{func() error { return s.api.Delete(ctx, &api.DeleteRequest{Model: modelfiles.DemoName}) }, 400, "embedded"},
		{func() error { return s.api.Copy(ctx, &api.CopyRequest{Source: "nope", Destination: "x"}) }, 404, "no such model"},
		{func() error { return s.api.Copy(ctx, &api.CopyRequest{Source: "alpha", Destination: "../x"}) }, 400, "not a model name"},
		{func() error {
			no := false
			return s.api.Create(ctx, &api.CreateRequest{Model: "x", From: "/etc/passwd", Stream: &no}, func(api.ProgressResponse) error { return nil })
		}, 400, "passwd"},
		{func() error {
			no := false
			return s.api.Create(ctx, &api.CreateRequest{Model: "x", From: "alpha", Parameters: map[string]any{"temperature": 9}, Stream: &no}, func(api.ProgressResponse) error { return nil })
		}, 400, "temperature"},
	} {
		err := bad.do()
		var se api.StatusError
		if !errors.As(err, &se) || se.StatusCode != bad.code || !strings.Contains(se.ErrorMessage, bad.want) {
			t.Errorf("got %v, want %d saying %q", err, bad.code, bad.want)
		}
	}
}

// A model that cannot fit the budget even alone is refused with its size and the budget, and
// leaves the server answering the others.
func TestModelTooLarge(t *testing.T) {
	s := newStoreServer(t, 0.5, nil)
	err := s.describe(t, "alpha", 70, nil)
	var se api.StatusError
	if !errors.As(err, &se) || se.StatusCode != 507 || !strings.Contains(se.ErrorMessage, `the model "alpha" needs`) || !strings.Contains(se.ErrorMessage, "memory budget") {
		t.Fatalf("a model over the whole budget: %v", err)
	}
	if got := s.loaded(t); len(got) != 0 || s.totalLoads() != 0 {
		t.Fatalf("refused, yet loaded: %v", got)
	}
}

// A load that fails (a blob damaged on disk) answers every request waiting for it with the same
// clear error, and leaves the server answering its other models.
func TestFailedLoad(t *testing.T) {
	s := newStoreServer(t, 0, nil)
	ms, err := s.store.List()
	if err != nil {
		t.Fatal(err)
	}
	var blob string
	for _, m := range ms {
		if m.Name == "alpha" {
			blob = s.store.Files(m).Vision
		}
	}
	// (alpha and beta share this blob: both are damaged; the demo model's files are elsewhere.)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	os.WriteFile(blob, b, 0o644)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { errs[i] = s.describe(t, "alpha", uint64(80+i), nil) })
	}
	wg.Wait()
	for i, err := range errs {
		var se api.StatusError
		if !errors.As(err, &se) || se.StatusCode != 500 || !strings.Contains(se.ErrorMessage, "does not match its digest") || se.ErrorMessage != errs[0].(api.StatusError).ErrorMessage {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if s.totalLoads() != 0 {
		t.Fatal("a model whose blob does not match its digest reached the loader")
	}
	if err := s.describe(t, modelfiles.DemoName, 90, nil); err != nil {
		t.Fatalf("after a failed load: %v", err)
	}
}

// A model stored with a TEMPLATE (before create refused it) is served, and the log says once,
// when it loads, that its TEMPLATE is not used.
func TestStoredTemplateIsReported(t *testing.T) {
	st := &modelfiles.Store{Root: t.TempDir()}
	mf, err := modelfiles.Parse(strings.NewReader("FROM toklip-demo\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create("legacy", mf, t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(st.Root, "manifests", "legacy.json") // the manifest, as an older toklip wrote it
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	m["modelfile"] = m["modelfile"].(string) + "TEMPLATE \"{{ .Prompt }}\"\n"
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	srv := server.New(nil, server.Options{Store: st, Log: &log})
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	for range 2 {
		resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"legacy","max_tokens":2,"messages":[{"role":"user","content":"Describe the image."}]}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the legacy model: %v %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	if n := strings.Count(log.String(), "model legacy: its Modelfile's TEMPLATE is not used"); n != 1 {
		t.Errorf("the log says it %d times:\n%s", n, log.String())
	}
}

// syncBuffer is a log for a server's concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
