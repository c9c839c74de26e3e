package gguf

import (
	"errors"
	"fmt"
	"strconv"
)

// Kinds of model-file errors, for errors.Is. Every error this package returns about a file is a
// *FileError that wraps one of them and names the file, and the key or tensor when there is one.
var (
	ErrFormat        = errors.New("malformed GGUF")
	ErrTruncated     = errors.New("truncated file")
	ErrLimit         = errors.New("count beyond limits")
	ErrArchitecture  = errors.New("unknown architecture")
	ErrMissingKey    = errors.New("missing key")
	ErrKeyType       = errors.New("wrong key type")
	ErrMissingTensor = errors.New("missing tensor")
	ErrShape         = errors.New("wrong tensor shape")
	ErrType          = errors.New("wrong tensor type")
	ErrPlacement     = errors.New("tensor name breaks ollama's placement rules")
)

// FileError is a problem with one model file.
type FileError struct {
	Path   string
	Key    string // the metadata key concerned, if any
	Tensor string // the tensor concerned, if any
	Kind   error  // one of the Err* values above
	Detail string
}

func (e *FileError) Error() string {
	s := e.Path + ": "
	switch {
	case e.Key != "":
		s += "key " + strconv.Quote(e.Key) + ": "
	case e.Tensor != "":
		s += "tensor " + strconv.Quote(e.Tensor) + ": "
	}
	return s + e.Kind.Error() + ": " + e.Detail
}

func (e *FileError) Unwrap() error { return e.Kind }

func fileErr(path, key, tensor string, kind error, format string, args ...any) *FileError {
	return &FileError{Path: path, Key: key, Tensor: tensor, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
