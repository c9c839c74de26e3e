// Command scenes writes demo scenes for the training recipe (tools/demo/train.py) and for the
// PyTorch evaluation (tools/demo/evaluate.py): the pixels of n scenes of a split as one raw file
// (n x 64 x 64 x 3 bytes, RGB, row-major) and their attributes and captions as JSON lines, so
// that PyTorch sees exactly the scenes this repository draws.
//
//	go run ./tools/demo/scenes -split train -n 20000 -seed 1 -o data/train
//	go run ./tools/demo/scenes -eval data/eval   # every set of demo.EvalSets, and eval.json listing them
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/toklip/toklip/demo"
)

func main() {
	split := flag.String("split", "train", "train, heldout or unseen")
	n := flag.Int("n", 1000, "scenes")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("o", "", "output path prefix: writes PREFIX.u8 and PREFIX.jsonl")
	eval := flag.String("eval", "", "write the evaluation sets into this folder instead")
	flag.Parse()
	var err error
	if *eval != "" {
		err = writeEval(*eval)
	} else {
		err = run(*split, *n, *seed, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scenes:", err)
		os.Exit(1)
	}
}

func run(splitName string, n int, seed uint64, out string) error {
	split, err := demo.ParseSplit(splitName)
	if err != nil {
		return err
	}
	if out == "" || n <= 0 {
		return fmt.Errorf("give -o PREFIX and a positive -n")
	}
	return write(demo.Scenes(split, n, seed), out)
}

// writeEval writes each evaluation set as NAME.u8 and NAME.jsonl, and eval.json: the sets in
// order, with their task, split, size and the question the understanding sets ask.
func writeEval(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var sets []map[string]any
	for _, e := range demo.EvalSets {
		if err := write(e.Scenes(), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		sets = append(sets, map[string]any{"name": e.Name(), "task": e.Task, "split": e.Split.String(), "n": e.N})
	}
	b, err := json.MarshalIndent(map[string]any{"question": demo.EvalQuestion, "sets": sets}, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "eval.json"), b, 0o644)
}

func write(scenes []demo.Scene, out string) error {
	pix, err := os.Create(out + ".u8")
	if err != nil {
		return err
	}
	defer pix.Close()
	meta, err := os.Create(out + ".jsonl")
	if err != nil {
		return err
	}
	defer meta.Close()
	pw, mw := bufio.NewWriter(pix), bufio.NewWriter(meta)
	enc := json.NewEncoder(mw)
	for _, s := range scenes {
		img := s.Render()
		for i := 0; i < len(img.Pix); i += 4 {
			pw.Write(img.Pix[i : i+3])
		}
		if err := enc.Encode(map[string]any{"caption": s.Caption(), "shape": s.Shape, "color": s.Color,
			"position": s.Position, "size": s.Size}); err != nil {
			return err
		}
	}
	if err := pw.Flush(); err != nil {
		return err
	}
	if err := mw.Flush(); err != nil {
		return err
	}
	if err := pix.Close(); err != nil {
		return err
	}
	return meta.Close()
}
