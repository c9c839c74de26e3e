//go:build !toklip_nodemo

package modelfiles

import (
	"embed"
	"io/fs"
)

// The demo model's two files, as tools/demo/train.py trains them and `make demo-model` converts
// them: the vocabulary-extended Qwen2 with its projector, and TokLIP.
//
//go:embed toklip-demo/lm.gguf toklip-demo/vision.gguf toklip-demo/Modelfile
var embedded embed.FS

var demoFS fs.FS = embedded
