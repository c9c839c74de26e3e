package unified

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/ggml"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/sampler"
)

// quantizedViT measures what quantizing the ViT does to drawn images, on the one trained model
// there is here (the embedded demo model, semantic fusion, F32 ViT): the same greedy guided
// draws of 12 random demo scenes with the file's ViT and with its matrices quantized to each
// type, counting equal ids and the scenes demo.Check reads as asked. Random-weight models cannot
// answer this: their near-flat distributions turn any rounding into a different id.
func quantizedViT(dir string, types ...string) {
	lm, vision := filepath.Join("modelfiles", "toklip-demo", "lm.gguf"), filepath.Join("modelfiles", "toklip-demo", "vision.gguf")
	rng := rand.New(rand.NewPCG(3, 4))
	var scenes []demo.Scene
	for range 12 {
		scenes = append(scenes, demo.Random(rng, rng.IntN(len(demo.Shapes)), rng.IntN(len(demo.Colors)), rng.IntN(len(demo.Positions)), rng.IntN(len(demo.Sizes))))
	}
	ref, refRead := drawScenes(lm, vision, scenes)
	fmt.Printf("demo model (semantic fusion), 12 greedy guided draws: file ViT (F32) reads %d of 12 scenes as asked\n", refRead)
	for _, typ := range types {
		mix, err := ggml.ParseMix(typ)
		if err != nil {
			log.Fatal(err)
		}
		path := filepath.Join(dir, "toklip-demo-vit-"+typ+".gguf")
		if err := ggml.QuantizeFile(vision, path, mix, ggml.QuantizeOptions{}); err != nil {
			log.Fatal(err)
		}
		ids, read := drawScenes(lm, path, scenes)
		same, total := 0, 0
		for i := range ids {
			for j := range ids[i] {
				if j < len(ref[i]) && ids[i][j] == ref[i][j] {
					same++
				}
			}
			total += len(ref[i])
		}
		fmt.Printf("  ViT %-5s: ids equal to the F32 ViT's %d of %d; reads %d of 12 scenes as asked\n", typ, same, total, read)
		os.Remove(path)
	}
}

// drawScenes draws each scene's caption greedily and returns the ids and how many images
// demo.Check reads as the caption asked.
func drawScenes(lm, vision string, scenes []demo.Scene) (ids [][]int32, read int) {
	e, err := llm.Open(context.Background(), lm, vision, llm.EngineOptions{Backbone: llm.Options{Sequences: 2}})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	for _, s := range scenes {
		r, err := e.Draw(context.Background(), llm.DrawRequest{Prompt: s.Caption(), Options: llm.ImageOptions{Guidance: 3, Sampler: sampler.Params{Temperature: 0}}})
		if err != nil {
			log.Fatal(err)
		}
		var got []int32
		for ev := range r.Events() {
			switch ev := ev.(type) {
			case llm.ImageDone:
				got = ev.Image.IDs
				if f := demo.Check(ev.Image.Image); f == (demo.Found{Shape: s.Shape, Color: s.Color, Position: s.Position, Size: s.Size}) {
					read++
				}
			case llm.Failed:
				log.Fatal(ev.Err)
			}
		}
		ids = append(ids, got)
	}
	return ids, read
}
