package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/sched"
)

// The models a server answers for: the engine given to New (if any) under Options.Model, and
// every model of Options.Store (the embedded demo model among them). Each loads on its first
// request and stays loaded as the scheduler decides (package sched): for its keep-alive after
// its last request, or until a model that does not fit the memory budget beside it is asked for.

// served is a loaded model as the handlers use it: its engine and its Modelfile's defaults.
type served struct {
	name     string
	e        *llm.Engine
	info     llm.Info
	mf       *modelfiles.Modelfile // nil: none (a model given by its files)
	defaults modelfiles.Options    // mf's parameters
	own      bool                  // the server opened e, and closes it when unloading it
}

// Bytes is what the loaded model allocated: the scheduler counts it from then on.
func (m *served) Bytes() int64 { return m.info.Memory }

func (m *served) Close() error {
	if m.own {
		m.e.Close()
	}
	return nil
}

// model is OpenAI's Model object, with the modalities toklip's model reads and writes.
type model struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	OwnedBy string   `json:"owned_by"`
	Input   []string `json:"input_modalities"`
	Output  []string `json:"output_modalities"`
}

// entry is a model the server can serve, loaded or not.
type entry struct {
	name     string
	files    modelfiles.Files // empty for the engine given to New
	manifest modelfiles.Manifest
	info     llm.Info // from the loaded engine, or the files' headers
}

func (en entry) model() model {
	m := model{ID: en.name, Object: "model", Created: en.manifest.Created.Unix(), OwnedBy: "toklip", Input: []string{"text"}, Output: []string{"text"}}
	if en.info.ReadsImages {
		m.Input = append(m.Input, "image")
	}
	if en.info.Draws {
		m.Output = append(m.Output, "image")
	}
	return m
}

// modelNotFound is the answer for a name the server does not have.
func modelNotFound(name string) error {
	return withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: ptr("model"),
		Message: "the model " + quote(name) + " does not exist: GET /v1/models (or `toklip list`) shows the models this server has"}, "model_not_found")
}

// canonical is a request's model name as the store names it: ollama's clients may add the
// default tag.
func canonical(name string) string { return strings.TrimSuffix(name, ":latest") }

// lookup finds a model without loading it; the store's blobs are not hashed (Get does that when
// it loads).
func (s *Server) lookup(name string) (entry, error) {
	name = canonical(name)
	if name == "" {
		return entry{}, invalid("model", "model is required")
	}
	if f := s.fixed; f != nil && name == f.name {
		return entry{name: name, info: f.info, manifest: modelfiles.Manifest{Name: name, Created: time.Unix(s.created, 0)}}, nil
	}
	if s.opts.Store == nil {
		return entry{}, modelNotFound(name)
	}
	if name == modelfiles.DemoName {
		return s.stored(modelfiles.Manifest{Name: name})
	}
	ms, err := s.opts.Store.List()
	if err != nil {
		return entry{}, err
	}
	for _, m := range ms {
		if m.Name == name {
			return s.stored(m)
		}
	}
	return entry{}, modelNotFound(name)
}

// stored is the entry of a model of the store's listing (the demo model's is its name alone).
func (s *Server) stored(m modelfiles.Manifest) (entry, error) {
	en := entry{name: m.Name, manifest: m}
	if m.Name == modelfiles.DemoName {
		f, err := modelfiles.Demo()
		if err != nil {
			return en, err
		}
		en.files, en.manifest.Created = f, time.Unix(s.created, 0)
	} else {
		en.files = s.opts.Store.Files(m)
	}
	var err error
	if en.info, err = s.inspect(en); err != nil {
		return en, fmt.Errorf("the model %q: %w", m.Name, err)
	}
	return en, nil
}

// inspect reads what a stored model can do from its files' headers, once per content.
func (s *Server) inspect(en entry) (llm.Info, error) {
	key := en.manifest.LM + " " + en.manifest.Vision
	if en.name == modelfiles.DemoName {
		key = en.files.LM + " " + en.files.Vision
	}
	s.infoMu.Lock()
	in, ok := s.infos[key]
	s.infoMu.Unlock()
	if ok {
		return in, nil
	}
	mf, err := s.modelfile(en)
	if err != nil {
		return in, err
	}
	in, err = llm.Inspect(en.files.LM, en.files.Vision, s.engineOptions(mf))
	if err != nil {
		return in, err
	}
	s.infoMu.Lock()
	s.infos[key] = in
	s.infoMu.Unlock()
	return in, nil
}

func (s *Server) modelfile(en entry) (*modelfiles.Modelfile, error) {
	if en.name == modelfiles.DemoName {
		return modelfiles.DemoModelfile()
	}
	return en.manifest.Parsed()
}

// engineOptions are the options a stored model is opened with: the server's, adjusted by its
// Modelfile.
func (s *Server) engineOptions(mf *modelfiles.Modelfile) llm.EngineOptions {
	o := s.opts.Engine
	if s.opts.Configure != nil {
		s.opts.Configure(&o, mf)
	}
	return o
}

// resolve tells the scheduler what loading a name takes, from the files' headers: cheap, since
// every request for a cold model resolves it. The load itself, shared by those requests, first
// checks a stored model's blobs against their digests (hashing every byte).
func (s *Server) resolve(name string) (sched.Spec[*served], error) {
	if f := s.fixed; f != nil && name == f.name {
		return sched.Spec[*served]{Size: f.info.Memory, Slots: f.info.Sequences, Open: func(context.Context) (*served, error) { return f, nil }}, nil
	}
	stored := name != modelfiles.DemoName && s.opts.Store != nil
	en, err := s.lookup(name)
	if err != nil {
		var ae *apiError
		if stored && !errors.As(err, &ae) { // a damaged file: the digests say how, if they can
			if _, _, gerr := s.opts.Store.Get(name); gerr != nil {
				err = gerr
			}
		}
		return sched.Spec[*served]{}, err
	}
	mf, err := s.modelfile(en)
	if err != nil {
		return sched.Spec[*served]{}, err
	}
	o := s.engineOptions(mf)
	return sched.Spec[*served]{Size: en.info.Memory, Slots: en.info.Sequences, Open: func(ctx context.Context) (*served, error) {
		files := en.files
		if stored {
			m, f, err := s.opts.Store.Get(name)
			if errors.Is(err, modelfiles.ErrNotFound) {
				return nil, modelNotFound(name) // removed since it was resolved
			}
			if err != nil {
				return nil, err
			}
			if m.LM != en.manifest.LM || m.Vision != en.manifest.Vision {
				return nil, fmt.Errorf("the model %q changed while it was loading; retry", name)
			}
			files = f
		}
		e, err := s.opts.Open(ctx, files.LM, files.Vision, o)
		if err != nil {
			return nil, fmt.Errorf("loading the model %q failed: %w", name, err)
		}
		if mf != nil && mf.Template != "" && s.opts.Log != nil { // stored before create refused TEMPLATE
			fmt.Fprintf(s.opts.Log, "%s | model %s: its Modelfile's TEMPLATE is not used (toklip writes chats in the format its file names); create it again without TEMPLATE\n",
				time.Now().Format("2006-01-02 15:04:05"), name)
		}
		return &served{name: name, e: e, info: e.Info(), mf: mf, defaults: mf.Options(), own: true}, nil
	}}, nil
}

// lease is a request's hold on its model (loaded first if need be).
type lease = sched.Lease[*served]

// use returns the request's model, loading it if it is not loaded, or answers the request with
// why not. keepAlive, if not nil, is the request's keep_alive. Release the lease when done.
func (s *Server) use(c *gin.Context, name string, keepAlive *time.Duration) (*lease, bool) {
	name = canonical(name)
	if name == "" {
		abort(c, invalid("model", "model is required"))
		return nil, false
	}
	l, err := s.models.Get(c.Request.Context(), name, keepAlive)
	var tooBig *sched.TooBigError
	switch {
	case err == nil:
		return l, true
	case c.Request.Context().Err() != nil:
		c.Abort() // nobody is there to read an answer
	case errors.As(err, &tooBig):
		abort(c, withCode(&apiError{Status: http.StatusInsufficientStorage, Type: "server_error", Param: ptr("model"), Message: err.Error()}, "model_too_large"))
	case errors.Is(err, sched.ErrClosed):
		abort(c, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: err.Error()})
	default:
		var ae *apiError
		if !errors.As(err, &ae) { // a load that failed: every request waiting on it gets this
			err = withCode(&apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}, "model_load_failed")
		}
		abort(c, err)
	}
	return nil, false
}

// enter admits a request to its model's engine for weight sequences (queue.go in package sched:
// one number, the engine's sequences, limits both), or answers it with 429 when the queue is full.
func (s *Server) enter(c *gin.Context, l *lease, weight int) (release func(), ok bool) {
	release, err := l.Enter(c.Request.Context(), weight)
	switch {
	case err == nil:
		return release, true
	case errors.Is(err, sched.ErrBusy):
		c.Header("Retry-After", "1")
		abort(c, withCode(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Message: err.Error()}, "server_busy"))
	default:
		c.Abort() // the client left while it waited
	}
	return nil, false
}

// entries lists every model the server can serve, each with what it can do.
func (s *Server) entries() ([]entry, error) {
	var out []entry
	if f := s.fixed; f != nil {
		out = append(out, entry{name: f.name, info: f.info, manifest: modelfiles.Manifest{Name: f.name, Created: time.Unix(s.created, 0)}})
	}
	if s.opts.Store == nil {
		return out, nil
	}
	ms, err := s.opts.Store.List()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if s.fixed != nil && m.Name == s.fixed.name {
			continue
		}
		en, err := s.stored(m) // from the one listing: lookup would list the store again for each
		if err != nil {
			continue // damaged: a request for it says why
		}
		out = append(out, en)
	}
	return out, nil
}

func (s *Server) listModels(c *gin.Context) {
	es, err := s.entries()
	if err != nil {
		abort(c, err)
		return
	}
	data := make([]model, len(es))
	for i, en := range es {
		data[i] = en.model()
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *Server) getModel(c *gin.Context) {
	en, err := s.lookup(c.Param("model"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, en.model())
}

// infos caches Inspect's answers by file content.
type infoCache struct {
	infoMu sync.Mutex
	infos  map[string]llm.Info
}
