// Package models is where the decoder architectures toklip runs live, one package each
// (models/qwen2llama: Qwen2 and Llama in llama.cpp's GGUF layout). An architecture's package binds
// its weights by gguf tags with each type's forward right below it, reads its hyperparameters,
// checks its files, and registers itself here under its general.architecture names (Register).
// The backbone (package llm) loads any registered architecture through the Decoder interface and
// knows none of them by name.
//
// What every architecture shares is here too: the Config the backbone runs by, the image-token
// extension (keys <arch>.image.*) and TokLIP's projector (mm.*, package projector).
package models

import (
	"fmt"
	"sort"
	"sync"

	"github.com/ollama/ollama/fs"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/model"
	"github.com/ollama/ollama/model/input"

	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/projector"
)

// Config is a backbone's shape and hyperparameters. Architecture packages read the
// hyperparameters from their keys; ReadConfig adds what every architecture has the same way
// (vocabulary, tied output, image tokens, projector).
type Config struct {
	Architecture  string
	Layers        int
	Hidden        int
	FFN           int
	Heads         int
	KVHeads       int
	HeadDim       int
	Vocab         int
	ContextLength int // the length the model was trained for

	RMSEps    float32
	RopeBase  float32
	RopeScale float32 // linear position scaling: positions are multiplied by 1/factor
	RopeDim   int     // rotated dimensions of each head
	RopeNeoX  bool    // rotate halves (Qwen2) rather than adjacent pairs (Llama, after the converter's permutation)
	Tied      bool    // output projection shares token_embd

	Images    ImageTokens
	Projector projector.Config // Depth 0: no projector (a text-only model)
}

// Key is the name of an architecture's key ("qwen2.block_count" for "block_count").
func (c Config) Key(name string) string { return c.Architecture + "." + name }

// Features are TokLIP features entering a forward pass through the projector: column i of
// Values is the feature of batch position At[i]; its projection replaces that position's token
// embedding, or, where Fuse[i], is added to it.
type Features struct {
	Values ml.Tensor // [projector input width, k]
	At     []int32
	Fuse   []bool
}

// Decoder is what the backbone needs of an architecture's model beyond ollama's model.Model
// (whose Forward takes input embeddings in batch.Multimodal; its KV cache is Config().Cache).
type Decoder interface {
	model.Model
	// Init completes the model once its weights are loaded from f, and returns its Config
	// (ReadConfig's): the keys alone cannot say what the tensors do (the vocabulary, whether a
	// projector is present).
	Init(f *gguf.File) (Config, error)
	// ForwardFeatures is Forward with TokLIP features (nil: none) and, when imageHead, logits over
	// the image tokens only, [Images.Count, outputs], for passes that only draw images.
	ForwardFeatures(ctx ml.Context, batch input.Batch, feats *Features, imageHead bool) (ml.Tensor, error)
	// MatmulWeights names the weights that the forward reads only as the first operand of a
	// matrix product with float32 activations, whole or as whole groups of 8 rows: those ggml's
	// CPU backend may keep in its interleaved layouts (ggml.Repack).
	MatmulWeights() []string
}

// Architecture is what an architecture's package registers.
type Architecture struct {
	// New builds the model for ollama's loader, which then binds its tagged weights; it must
	// return a Decoder.
	New func(fs.Config) (model.Model, error)
	// Hyperparameters reads the architecture's keys: everything in Config but what ReadConfig
	// adds.
	Hyperparameters func(*gguf.File) (Config, error)
	// Check checks every tensor the model binds, with its shape and type, against c.
	Check func(f *gguf.File, c Config) error
}

var (
	mu            sync.RWMutex
	architectures = map[string]Architecture{}
)

// Register makes an architecture loadable under each of names (general.architecture values):
// by ollama's loader, by gguf's file check, and by ReadConfig. It panics on a name registered
// twice, as ollama's model.Register does. Call it from the package's init.
func Register(a Architecture, names ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, name := range names {
		if _, dup := architectures[name]; dup {
			panic("models: architecture " + name + " registered twice")
		}
		architectures[name] = a
		model.Register(name, a.New)
		gguf.RegisterArchitecture(name, func(f *gguf.File) error {
			c, err := ReadConfig(f)
			if err != nil {
				return err
			}
			return a.Check(f, c)
		})
	}
}

// Names are the registered architectures, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for name := range architectures {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// ReadConfig reads and checks a backbone's configuration: its architecture's hyperparameters,
// then the vocabulary (the token embedding's rows), whether the output is tied, the image-token
// keys and the projector.
func ReadConfig(f *gguf.File) (Config, error) {
	mu.RLock()
	a, ok := architectures[f.Architecture()]
	mu.RUnlock()
	if !ok {
		return Config{}, &gguf.FileError{Path: f.Path, Key: "general.architecture", Kind: gguf.ErrArchitecture,
			Detail: fmt.Sprintf("%q is not a decoder architecture toklip runs (%v)", f.Architecture(), Names())}
	}
	c, err := a.Hyperparameters(f)
	if err != nil {
		return c, err
	}
	c.Architecture = f.Architecture()
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return c, &gguf.FileError{Path: f.Path, Tensor: "token_embd.weight", Kind: gguf.ErrMissingTensor, Detail: "a backbone needs a 2-D token embedding"}
	}
	c.Vocab = int(emb.Shape[1])
	_, hasOutput := f.Tensor("output.weight")
	c.Tied = !hasOutput
	if c.Images, err = readImageTokens(f, c.Key, c.Vocab); err != nil {
		return c, err
	}
	if c.Projector, err = projector.ReadConfig(f, c.Architecture, c.Hidden); err != nil {
		return c, err
	}
	if c.Projector.Depth > 0 && !c.Images.Enabled() {
		return c, BadKey(f, c.Key(keyImageCount), "the file has a projector (mm.*) but no image tokens")
	}
	return c, nil
}

// BadKey is the error for a key whose value cannot be used.
func BadKey(f *gguf.File, key, format string, args ...any) error {
	return &gguf.FileError{Path: f.Path, Key: key, Kind: gguf.ErrFormat, Detail: fmt.Sprintf(format, args...)}
}
