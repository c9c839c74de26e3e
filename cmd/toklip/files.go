package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/gguf"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/llm/convert"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/models"
	"github.com/toklip/toklip/visiontok"
	visionconvert "github.com/toklip/toklip/visiontok/convert"
)

func runConvert(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	out := fs.String("o", "", "the GGUF file to write")
	typ := fs.String("type", "", "type of the weight matrices: F32, F16, BF16, Q8_0, Q4_0 (default F16 for a HuggingFace model, F32 for TokLIP, whose VQ model always stays F32)")
	name := fs.String("name", "", "general.name of the model (default: from the checkpoint)")
	tok := fs.String("tokenizer", "", "TokLIP: the text tower's tokenizer.json (SigLIP2's Gemma tokenizer)")
	heads := fs.Int("heads", 16, "TokLIP: attention heads of the ViT and text tower (16 in the released models)")
	groups := fs.Int("groups", 32, "TokLIP: GroupNorm groups of the VQ model (32 in the released models)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: -o OUT.gguf is required", errUsage)
	}
	st, err := os.Stat(pos[0])
	if err != nil {
		return err
	}
	toklip := !st.IsDir() // a TokLIP training checkpoint is one .pt file; a HuggingFace model a folder
	if *typ == "" {
		*typ = map[bool]string{true: "F32", false: "F16"}[toklip]
	}
	t, err := ggml.ParseType(*typ)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if toklip {
		err = visionconvert.Convert(pos[0], *out, visionconvert.Options{Type: t, Tokenizer: *tok, Heads: *heads, Groups: *groups, Name: *name,
			Progress: terminalProgress("writing")})
	} else {
		err = convert.Convert(pos[0], *out, convert.Options{Type: t, Name: *name, Progress: terminalProgress("writing")})
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

func runQuantize(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	typ := fs.String("type", "", "target type: F16, BF16, Q8_0, Q4_0, or llama.cpp's mixes Q4_K_M and Q6_K (norms, biases, v.* and mm.* stay as they are)")
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	mix, err := ggml.ParseMix(*typ)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := ggml.QuantizeFile(pos[0], pos[1], mix, ggml.QuantizeOptions{Progress: terminalProgress("quantizing")}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", pos[1])
	return nil
}

func runInspect(args []string, stdout io.Writer) error {
	pos, err := parse(flag.NewFlagSet("inspect", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	f, err := gguf.Open(pos[0])
	if err != nil {
		return err
	}
	name, _ := f.KV["general.name"].(string)
	fmt.Fprintf(stdout, "file          %s (%d bytes, GGUF v%d)\narchitecture  %s\nname          %s\n", f.Path, f.Size, f.Version, f.Architecture(), name)
	counts := map[string]int{}
	for _, t := range f.Tensors {
		counts[t.Type.String()]++
	}
	var types []string
	for t, n := range counts {
		types = append(types, fmt.Sprintf("%d %s", n, t))
	}
	sort.Strings(types)
	fmt.Fprintf(stdout, "tensors       %d (%s)\n", len(f.Tensors), strings.Join(types, ", "))
	if c, err := models.ReadConfig(f); err == nil {
		fmt.Fprintf(stdout, "layers        %d\nhidden        %d (ffn %d)\nheads         %d query, %d key-value, %d dims\nvocabulary    %d (output tied: %v)\ncontext       %d\nrope          base %g, scale 1/%g, %d dims\n",
			c.Layers, c.Hidden, c.FFN, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.Tied, c.ContextLength, c.RopeBase, c.RopeScale, c.RopeDim)
		if it := c.Images; it.Enabled() {
			fmt.Fprintf(stdout, "image tokens  %d from id %d, begin %d, end %d, %dx%d per image\n", it.Count, it.First, it.Begin, it.End, it.Grid, it.Grid)
		} else {
			fmt.Fprintln(stdout, "image tokens  none (text-only backbone)")
		}
	}
	if c, err := visiontok.ReadConfig(f); err == nil && f.Architecture() == visiontok.Architecture {
		fmt.Fprintf(stdout, "image         %d px, %dx%d VQ ids from a %d x %d codebook\nVQ model      channels %d x %v, %d res blocks, z %d, %d groups\nViT           %d layers, width %d, %d heads, FFN %d\n",
			c.ImageSize, c.Grid, c.Grid, c.CodebookSize, c.CodebookDim, c.Channels, c.ChannelMult, c.ResBlocks, c.ZChannels, c.Groups, c.Depth, c.Width, c.Heads, c.FFN)
		if t := c.Text; t.Depth > 0 {
			fmt.Fprintf(stdout, "text tower    %d layers, width %d, %d heads, context %d, vocabulary %d\n", t.Depth, t.Width, t.Heads, t.Context, t.Vocab)
		} else {
			fmt.Fprintln(stdout, "text tower    none")
		}
	}
	return nil
}

func runSystem(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("system", flag.ContinueOnError)
	lmPath := fs.String("lm", "", "the LLM's GGUF (instead of a model name)")
	visionPath := fs.String("vision", "", "the TokLIP GGUF (instead of a model name)")
	gpu := gpuFlag(fs)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: give at most one model name", errUsage)
	}
	fmt.Fprintf(stdout, "ggml CPU features  %s\nthreads            %d (physical cores)\narchitectures      %s\n",
		strings.Join(ggml.CPUFeatures(), " "), ggml.DefaultThreads(), strings.Join(gguf.Architectures(), ", "))
	devices := ggml.Devices()
	fmt.Fprintf(stdout, "backend libraries  %s\ndevices\n", strings.Join(ggml.LibraryPathsHint(), ", "))
	gpus := 0
	for _, d := range devices {
		fmt.Fprintf(stdout, "  %-8s %-5s %-24s %6.1f GiB free of %.1f GiB", d.Name, d.Kind, d.Description,
			float64(d.FreeBytes)/(1<<30), float64(d.TotalBytes)/(1<<30))
		if d.ComputeMajor > 0 {
			fmt.Fprintf(stdout, ", compute %d.%d, driver %d.%d", d.ComputeMajor, d.ComputeMinor, d.DriverMajor, d.DriverMinor)
		}
		fmt.Fprintln(stdout)
		if d.Kind == ggml.DeviceGPU || d.Kind == ggml.DeviceIGPU {
			gpus++
		}
	}
	if gpus == 0 {
		fmt.Fprintln(stdout, "  no GPU: `make cuda` builds ggml's CUDA library into lib/ollama (README: GPU)")
	}
	// Where a model's layers would go: the named one, or the demo model.
	name := modelfiles.DemoName
	if len(pos) == 1 {
		name = pos[0]
	}
	files, mf, err := resolveModel(name, *lmPath, *visionPath)
	if err != nil {
		return err
	}
	var opts llm.EngineOptions
	gpu.apply(&opts, mf)
	lm, vision, err := llm.Placement(devices, files.LM, files.Vision, opts)
	if err != nil {
		return err
	}
	if *lmPath != "" || *visionPath != "" {
		name = "the model"
	}
	fmt.Fprintf(stdout, "%s with -gpu-layers %s\n  LLM     %s\n", name, gpu, lm)
	if files.Vision != "" {
		fmt.Fprintf(stdout, "  TokLIP  %s\n", vision)
	}
	if lm.Note != "" {
		fmt.Fprintf(stdout, "  note: %s\n", lm.Note)
	}
	if vision.Note != "" && vision.Note != lm.Note {
		fmt.Fprintf(stdout, "  note (TokLIP): %s\n", vision.Note)
	}
	return nil
}
