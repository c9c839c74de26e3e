// Package evaluate scores a model on the demo's evaluation sets (demo.EvalSets): it describes the
// held-out scenes and draws the held-out captions through toklip's engine, or scores what the
// PyTorch evaluation (tools/demo/evaluate.py) wrote, with the same readers: demo.ReadAnswer for
// answers, demo.Check for pixels.
package evaluate

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/sampler"
)

// Guidance is the classifier-free guidance scale the evaluation draws with (greedy ids).
const Guidance = 3.0

// Options say what to run and what to tell the caller.
type Options struct {
	Sets []demo.EvalSet // default: demo.EvalSets
	Each func(Result)   // called after each item, in order
}

// Result is what the engine produced for one item of a set, and what the readers found in it.
type Result struct {
	Set    demo.EvalSet
	Index  int
	Scene  demo.Scene
	Answer string      // understanding: the answer
	Image  image.Image // generation: the drawing
	Found  demo.Found
}

// Run evaluates the engine: greedy answers to demo.EvalQuestion about each scene of the
// understanding sets, greedy guided drawings of each caption of the generation sets.
func Run(ctx context.Context, e *llm.Engine, opts Options) (demo.Metrics, error) {
	sets := opts.Sets
	if sets == nil {
		sets = demo.EvalSets
	}
	m := demo.Metrics{}
	for _, set := range sets {
		t := m.Tally(set.Name())
		for i, s := range set.Scenes() {
			r := Result{Set: set, Index: i, Scene: s}
			var err error
			switch set.Task {
			case "understanding":
				r.Answer, err = describe(ctx, e, s)
				r.Found = demo.ReadAnswer(r.Answer)
			case "generation":
				r.Image, err = draw(ctx, e, s)
				if err == nil {
					r.Found = demo.Check(r.Image)
				}
			default:
				err = fmt.Errorf("unknown task %q", set.Task)
			}
			if err != nil {
				return nil, fmt.Errorf("%s, scene %d (%s): %w", set.Name(), i, s.Caption(), err)
			}
			t.Add(s, r.Found)
			if opts.Each != nil {
				opts.Each(r)
			}
		}
	}
	return m, nil
}

func describe(ctx context.Context, e *llm.Engine, s demo.Scene) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, s.Render()); err != nil {
		return "", err
	}
	msgs := []llm.Message{{Role: "user", Content: []llm.Part{{Image: buf.Bytes()}, {Text: demo.EvalQuestion}}}}
	run, err := e.Chat(ctx, llm.ChatRequest{Messages: msgs, Options: llm.ChatOptions{MaxTokens: 32}})
	if err != nil {
		return "", err
	}
	answers, _, err := run.Wait()
	if err != nil {
		return "", err
	}
	return answers[0].Text(), nil
}

func draw(ctx context.Context, e *llm.Engine, s demo.Scene) (image.Image, error) {
	run, err := e.Draw(ctx, llm.DrawRequest{Prompt: s.Caption(), Options: llm.ImageOptions{Guidance: Guidance, Sampler: sampler.Params{}}})
	if err != nil {
		return nil, err
	}
	answers, _, err := run.Wait()
	if err != nil {
		return nil, err
	}
	return answers[0].Parts[0].Image.Image, nil
}

// Score scores the outputs files in dir (see Outputs) of every set of demo.EvalSets, with the
// same readers as Run.
func Score(dir string) (demo.Metrics, error) {
	m := demo.Metrics{}
	for _, set := range demo.EvalSets {
		o, err := ReadOutputs(dir, set)
		if err != nil {
			return nil, err
		}
		t := m.Tally(set.Name())
		for i, s := range set.Scenes() {
			if set.Task == "understanding" {
				t.Add(s, demo.ReadAnswer(o.Answers[i]))
			} else {
				t.Add(s, demo.Check(rgbImage(o.Images[i])))
			}
		}
	}
	return m, nil
}

func rgbImage(rgb []byte) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, demo.Size, demo.Size))
	for i := range demo.Size * demo.Size {
		copy(img.Pix[4*i:4*i+3], rgb[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img
}
