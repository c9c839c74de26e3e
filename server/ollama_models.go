package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/modelfiles"
)

// ollama's routes over the models: what is stored (/api/tags, /api/show), what is loaded
// (/api/ps), and changes to the store (/api/create, /api/copy, /api/delete).

// tagged is a name as ollama's clients show it: with its tag (":latest" when it has none).
func tagged(name string) string {
	if strings.Contains(name, ":") {
		return name
	}
	return name + ":latest"
}

// details are what ollama's clients show of a model's format.
func details() api.ModelDetails {
	return api.ModelDetails{Format: "gguf", Family: "toklip", Families: []string{"toklip"}}
}

func digestOf(en entry) string {
	return strings.TrimPrefix(en.manifest.LM, "sha256:")
}

func (s *Server) ollamaTags(c *gin.Context) {
	es, err := s.entries()
	if err != nil {
		abort(c, err)
		return
	}
	out := api.ListResponse{Models: []api.ListModelResponse{}}
	for _, en := range es {
		size := en.manifest.Size
		if size == 0 {
			size = en.info.FileBytes
		}
		out.Models = append(out.Models, api.ListModelResponse{Name: tagged(en.name), Model: tagged(en.name), ModifiedAt: en.manifest.Created,
			Size: size, Digest: digestOf(en), Details: details()})
	}
	c.JSON(http.StatusOK, out)
}

// forever is the expiry ollama reports for a model kept loaded for good.
var forever = time.Now().Add(time.Duration(math.MaxInt64))

// ollamaPS lists the loaded models, most recently used first: the bytes each takes (what ggml
// allocated: the memory budget counts it; size_vram of it on GPUs) and when each unloads if no
// request comes (a model in use: its keep-alive after now).
func (s *Server) ollamaPS(c *gin.Context) {
	out := api.ProcessResponse{Models: []api.ProcessModelResponse{}}
	for _, st := range s.models.Loaded() {
		exp := st.Expires
		switch {
		case st.KeepAlive < 0:
			exp = forever
		case exp.IsZero():
			exp = time.Now().Add(st.KeepAlive)
		}
		out.Models = append(out.Models, api.ProcessModelResponse{Name: tagged(st.Name), Model: tagged(st.Name), Size: st.Size, SizeVRAM: st.Value.info.GPUMemory,
			ExpiresAt: exp, ContextLength: st.Value.info.ContextLength, Details: details()})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) ollamaShow(c *gin.Context) {
	var req api.ShowRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Model == "" {
		req.Model = req.Name // the older field
	}
	en, err := s.lookup(req.Model)
	if err != nil {
		abort(c, err)
		return
	}
	var mf *modelfiles.Modelfile
	if s.fixed != nil && en.name == s.fixed.name {
		mf = s.fixed.mf
	} else if mf, err = s.modelfile(en); err != nil {
		abort(c, err)
		return
	}
	files := en.files
	if files.LM == "" && mf != nil { // the engine given to New by its files
		files = modelfiles.Files{LM: mf.From, Vision: mf.Vision}
	}
	var resp api.ShowResponse
	if files.LM == "" { // given by files the server was not told: what the engine says
		resp = api.ShowResponse{Details: details(), Capabilities: capabilities(en.info),
			ModelInfo: map[string]any{"general.architecture": "toklip", "toklip.context_length": en.info.ContextLength, "toklip.vocab_size": en.info.Vocab}}
	} else if resp, err = Show(en.name, files, mf); err != nil {
		abort(c, storeError(err))
		return
	}
	resp.ModifiedAt = en.manifest.Created
	c.JSON(http.StatusOK, resp)
}

// storeError is a store's error as an answer: a name that is not stored is 404, a bad name or a
// file that is not a model 400.
func storeError(err error) error {
	var ne *modelfiles.NameError
	var fe *gguf.FileError
	var pe *fs.PathError
	var ue *modelfiles.UnsupportedError
	switch {
	case errors.Is(err, modelfiles.ErrNotFound):
		return withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: ptr("model"), Message: err.Error()}, "model_not_found")
	case errors.As(err, &ne), errors.As(err, &fe), errors.As(err, &pe), errors.As(err, &ue):
		return invalid("model", "%s", err.Error())
	}
	return err
}

// storeOnly refuses a change to the models when the server has no store.
func (s *Server) storeOnly(c *gin.Context) bool {
	if s.opts.Store == nil {
		abort(c, &apiError{Status: http.StatusNotImplemented, Type: "invalid_request_error",
			Message: "this server serves a model given by its files, not a model store: it cannot create, copy or delete models"})
		return false
	}
	return true
}

// createRequest is ollama's create request, with toklip's Modelfile body: a whole Modelfile
// (ollama's older API had the same field), its FROM and VISION paths on the server or model names.
type createRequest struct {
	api.CreateRequest
	Modelfile string `json:"modelfile"`
}

// ollamaCreate stores a model built from a model or files already on the server: from a
// Modelfile body, or from `from` (a model's name, or a GGUF's path on the server) with the
// system, template, messages and parameters the request gives over the model's own. Uploaded
// blobs (`files`), adapters and quantization are refused. Streams ollama's progress objects
// (status, completed of total while the files are copied), then {"status": "success"}.
func (s *Server) ollamaCreate(c *gin.Context) {
	if !s.storeOnly(c) {
		return
	}
	var req createRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	name := req.Model
	if name == "" {
		name = req.Name
	}
	name = canonical(name)
	mf, err := createModelfile(&req)
	if err != nil {
		abort(c, err)
		return
	}
	if name == "" {
		abort(c, invalid("model", "model is required: the name to store the model under"))
		return
	}
	streaming := req.Stream == nil || *req.Stream
	var line func(any)
	if streaming {
		line = newNDJSON(c).send
		line(api.ProgressResponse{Status: "reading model metadata"})
	}
	last := int64(-1)
	err = s.opts.Store.Create(name, mf, "/", func(done, total int64) {
		if streaming && (done == total || done-last >= total/100) {
			last = done
			line(api.ProgressResponse{Status: "copying model files", Total: total, Completed: done})
		}
	})
	if err != nil {
		err = storeError(err)
		if streaming {
			line(gin.H{"error": toAPIError(err).Message})
		} else {
			abort(c, err)
		}
		return
	}
	s.models.Unload(name) // a model created over one loaded loads anew on its next request
	if streaming {
		line(api.ProgressResponse{Status: "success"})
	} else {
		c.JSON(http.StatusOK, api.ProgressResponse{Status: "success"})
	}
}

// createModelfile is the Modelfile a create request describes.
func createModelfile(req *createRequest) (*modelfiles.Modelfile, error) {
	switch {
	case len(req.Files) > 0 || len(req.Adapters) > 0:
		return nil, invalid("files", "uploaded files and adapters are not read: name a model, or a GGUF on the server, in from (or FROM in modelfile)")
	case req.Quantize != "" || req.Quantization != "":
		return nil, invalid("quantize", "quantizing is not supported: store a quantized GGUF")
	case req.RemoteHost != "":
		return nil, invalid("remote_host", "remote models are not supported")
	case req.Modelfile != "" && req.From != "":
		return nil, invalid("from", "give from or modelfile, not both")
	}
	var mf modelfiles.Modelfile
	if req.Modelfile != "" {
		p, err := modelfiles.Parse(strings.NewReader(req.Modelfile))
		if err != nil {
			return nil, invalid("modelfile", "modelfile: %v", err)
		}
		mf = *p
	} else {
		if req.From == "" {
			return nil, invalid("from", "from is required: the model or GGUF file (a path on the server) to build on")
		}
		mf.From = req.From
	}
	if !filepath.IsAbs(mf.From) && strings.ContainsAny(mf.From, `/\`) {
		return nil, invalid("from", "%q: a file must be named by its absolute path on the server", mf.From)
	}
	if mf.Vision != "" && !filepath.IsAbs(mf.Vision) {
		return nil, invalid("modelfile", "VISION %q: a file must be named by its absolute path on the server", mf.Vision)
	}
	// The request's fields over the Modelfile's, checked as a Modelfile's would be: written as
	// one and parsed again.
	var extra strings.Builder
	fmt.Fprintf(&extra, "FROM x\n")
	keys := make([]string, 0, len(req.Parameters))
	for k := range req.Parameters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vals, ok := req.Parameters[k].([]any)
		if !ok {
			vals = []any{req.Parameters[k]}
		}
		for _, v := range vals {
			b, _ := json.Marshal(v)
			fmt.Fprintf(&extra, "PARAMETER %s %s\n", k, b)
		}
	}
	p, err := modelfiles.Parse(strings.NewReader(extra.String()))
	if err != nil {
		return nil, invalid("parameters", "parameters: %v", err)
	}
	set := map[string]bool{}
	for _, q := range p.Parameters {
		set[q.Name] = true
	}
	mf.Parameters = slices.DeleteFunc(mf.Parameters, func(q modelfiles.Param) bool { return set[q.Name] })
	mf.Parameters = append(mf.Parameters, p.Parameters...)
	if req.System != "" {
		mf.System = req.System
	}
	if req.Template != "" {
		mf.Template = req.Template
	}
	for _, m := range req.Messages {
		mf.Messages = append(mf.Messages, modelfiles.Message{Role: m.Role, Content: m.Content})
	}
	switch l := req.License.(type) {
	case string:
		mf.License = append(mf.License, l)
	case []any:
		for _, v := range l {
			if s, ok := v.(string); ok {
				mf.License = append(mf.License, s)
			}
		}
	}
	return &mf, nil
}

func (s *Server) ollamaCopy(c *gin.Context) {
	if !s.storeOnly(c) {
		return
	}
	var req api.CopyRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	src, dst := canonical(req.Source), canonical(req.Destination)
	if src == "" || dst == "" {
		abort(c, invalid("source", "source and destination are required"))
		return
	}
	var err error
	if src == modelfiles.DemoName { // embedded, not stored: stored from its files
		err = s.opts.Store.Create(dst, &modelfiles.Modelfile{From: modelfiles.DemoName}, "/", nil)
	} else {
		err = s.opts.Store.Copy(src, dst)
	}
	if err != nil {
		abort(c, storeError(err))
		return
	}
	s.models.Unload(dst)
	c.Status(http.StatusOK)
}

// ollamaDelete removes a stored model. A loaded one keeps answering the requests that reach it
// until it unloads (its keep-alive, or `toklip stop`); then its name is unknown.
func (s *Server) ollamaDelete(c *gin.Context) {
	if !s.storeOnly(c) {
		return
	}
	var req api.DeleteRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	name := req.Model
	if name == "" {
		name = req.Name
	}
	if err := s.opts.Store.Remove(canonical(name)); err != nil {
		abort(c, storeError(err))
		return
	}
	c.Status(http.StatusOK)
}
