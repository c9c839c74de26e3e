package llm_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
)

// The engine is one door: what the model can do, a chat about an image, a drawing. A Run's
// progress comes back as events to range over (text as it is decoded, image steps, the images,
// each choice's answer, the usage).
func Example() {
	ctx := context.Background()
	files, err := modelfiles.Demo() // the embedded demo model
	if err != nil {
		log.Fatal(err)
	}
	e, err := llm.Open(ctx, files.LM, files.Vision, llm.EngineOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	in := e.Info()
	fmt.Println("reads images:", in.ReadsImages, "draws:", in.Draws, "embeds:", in.Embeds)

	var scene bytes.Buffer // a small green circle in the center
	if err := png.Encode(&scene, demo.Scenes(demo.HeldOut, 1, 7)[0].Render()); err != nil {
		log.Fatal(err)
	}
	chat, err := e.Chat(ctx, llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: []llm.Part{
		{Image: scene.Bytes()}, {Text: demo.EvalQuestion},
	}}}})
	if err != nil {
		log.Fatal(err)
	}
	for ev := range chat.Events() {
		switch ev := ev.(type) {
		case llm.TextDelta:
			fmt.Print(ev.Text)
		case llm.Usage:
			fmt.Printf("\n%d prompt tokens, %d of them the image's\n", ev.PromptTokens, ev.PromptImageTokens)
		case llm.Failed:
			log.Fatal(ev.Err)
		}
	}

	const prompt = "a small blue circle in the top left corner"
	draw, err := e.Draw(ctx, llm.DrawRequest{Prompt: prompt})
	if err != nil {
		log.Fatal(err)
	}
	steps := 0
	for ev := range draw.Events() {
		switch ev := ev.(type) {
		case llm.ImageStep:
			steps++
		case llm.ImageDone:
			fmt.Println(steps, "ids; the drawing reads as the prompt:", demo.Check(ev.Image.Image) == demo.ReadAnswer(prompt))
		case llm.Failed:
			log.Fatal(ev.Err)
		}
	}
	// Output:
	// reads images: true draws: true embeds: true
	// A small green circle in the center.
	// 92 prompt tokens, 64 of them the image's
	// 64 ids; the drawing reads as the prompt: true
}
