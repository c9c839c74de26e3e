// Command bench runs toklip's benchmarks (make bench runs them in turn through
// tools/bench/run.sh; the GPU check, tools/gpu/check.sh, runs this one binary there):
//
//	bench backbone [-dir .bench] [-tokenizer tokenizer.json] [-llamacpp script.mjs|""] [-gpu-layers N]
//	bench vision   [-dir .bench] [-gpu-layers N]
//	bench unified  [-dir .bench] [-gpu-layers N]
//	bench parity   -lm F.gguf -vision F.gguf   (GPU against CPU, tools/bench/parity)
package main

import (
	"fmt"
	"os"

	"github.com/toklip/toklip/tools/bench/backbone"
	"github.com/toklip/toklip/tools/bench/parity"
	"github.com/toklip/toklip/tools/bench/unified"
	"github.com/toklip/toklip/tools/bench/vision"
)

func main() {
	runs := map[string]func([]string){"backbone": backbone.Main, "vision": vision.Main, "unified": unified.Main, "parity": parity.Main}
	if len(os.Args) < 2 || runs[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: bench backbone|vision|unified|parity [flags]")
		os.Exit(2)
	}
	runs[os.Args[1]](os.Args[2:])
}
