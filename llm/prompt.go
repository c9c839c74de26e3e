package llm

import (
	"fmt"
	"strings"
	"time"

	"github.com/toklip/toklip/tokenizer"
)

// Message is one turn of a chat: a role and its content, text and images in order.
type Message struct {
	Role    string // system, user or assistant
	Content []Part
}

// Part is a piece of a message: text, or an image (its file's bytes: PNG, JPEG, GIF, WebP or BMP).
type Part struct {
	Text  string
	Image []byte
}

// Prompt is a rendered chat as backbone inputs (sequence unset), how many of them are image
// tokens, and how long each of its images took to decode and encode (a cached image: to find).
type Prompt struct {
	Inputs       []Input
	ImageTokens  int
	ImageEncodes []time.Duration
}

// PartError is a failure of one part of a chat: part Part of message Message (an image that does
// not decode, or any image for a model that reads none).
type PartError struct {
	Message, Part int
	Err           error
}

func (e *PartError) Error() string {
	return fmt.Sprintf("messages[%d].content[%d]: %v", e.Message, e.Part, e.Err)
}

func (e *PartError) Unwrap() error { return e.Err }

// BuildPrompt renders msgs with the model's chat template and turns them into inputs: text is
// tokenized (special tokens only in the template's own text), each image becomes its begin token,
// one TokLIP feature per image token, and its end token. generationPrompt appends the assistant's
// turn header.
func (e *Engine) BuildPrompt(msgs []Message, generationPrompt bool) (*Prompt, error) {
	if err := validate(msgs); err != nil {
		return nil, err
	}
	return e.prompt(e.tmpl.render(msgs, generationPrompt), e.tmpl.Name == plain.Name)
}

// rawPrompt is the messages' content with no template: text with its special tokens read as
// such, images where they are, the tokenizer's BOS first if it adds one.
func (e *Engine) rawPrompt(msgs []Message, _ bool) (*Prompt, error) {
	var segs []segment
	for i, m := range msgs {
		for _, s := range content(i, m) {
			s.template = true
			segs = append(segs, s)
		}
	}
	return e.prompt(segs, true)
}

// prompt turns segments into inputs, with the tokenizer's BOS first when bos and it adds one.
func (e *Engine) prompt(segs []segment, bos bool) (*Prompt, error) {
	p := &Prompt{}
	if bos && e.tok.AddBOS && e.tok.BOS >= 0 {
		p.Inputs = append(p.Inputs, Input{Token: e.tok.BOS})
	}
	it := e.lm.Config().Images
	for _, s := range segs {
		if s.image == nil {
			for _, id := range e.tok.Encode(s.text, tokenizer.EncodeOptions{SplitSpecial: !s.template}) {
				p.Inputs = append(p.Inputs, Input{Token: id})
			}
			continue
		}
		start := time.Now()
		enc, err := e.EncodeImage(s.image)
		if err != nil {
			return nil, &PartError{Message: s.msg, Part: s.part, Err: err}
		}
		p.ImageEncodes = append(p.ImageEncodes, time.Since(start))
		p.Inputs = append(p.Inputs, Input{Token: it.Begin})
		for _, f := range enc.Features {
			p.Inputs = append(p.Inputs, Input{Feature: f})
		}
		p.Inputs = append(p.Inputs, Input{Token: it.End})
		p.ImageTokens += len(enc.Features)
	}
	if n, max := len(p.Inputs), e.lm.Options().ContextLength; n >= max {
		return nil, fmt.Errorf("%w: the prompt takes %d tokens, the context holds %d", ErrContextFull, n, max)
	}
	return p, nil
}

// A segment of a rendered chat: template text (special tokens allowed), message text (special
// tokens are plain text: a user cannot forge <|im_end|>), or an image.
type segment struct {
	text      string
	template  bool
	image     []byte
	msg, part int // an image's place in the chat, for its errors
}

// Template renders a chat in a model family's format. Images become image segments, which the
// prompt builder expands to begin, features, end.
type Template struct {
	Name   string
	render func(msgs []Message, generationPrompt bool) []segment
}

// The formats the backbones use. The GGUF's tokenizer.chat_template (a Jinja program) names the
// family; toklip renders it in Go, as ollama's renderers do, rather than run Jinja.
var (
	chatML = Template{Name: "chatml", render: func(msgs []Message, gen bool) []segment {
		var out []segment
		for i, m := range msgs {
			out = append(out, segment{text: "<|im_start|>" + m.Role + "\n", template: true})
			out = append(out, content(i, m)...)
			out = append(out, segment{text: "<|im_end|>\n", template: true})
		}
		if gen {
			out = append(out, segment{text: "<|im_start|>assistant\n", template: true})
		}
		return out
	}}
	llama3 = Template{Name: "llama3", render: func(msgs []Message, gen bool) []segment {
		out := []segment{{text: "<|begin_of_text|>", template: true}}
		for i, m := range msgs {
			out = append(out, segment{text: "<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n", template: true})
			out = append(out, content(i, m)...)
			out = append(out, segment{text: "<|eot_id|>", template: true})
		}
		if gen {
			out = append(out, segment{text: "<|start_header_id|>assistant<|end_header_id|>\n\n", template: true})
		}
		return out
	}}
	// plain is for a backbone whose template names no known family: "role: content" lines.
	plain = Template{Name: "plain", render: func(msgs []Message, gen bool) []segment {
		var out []segment
		for i, m := range msgs {
			out = append(out, segment{text: m.Role + ": ", template: true})
			out = append(out, content(i, m)...)
			out = append(out, segment{text: "\n", template: true})
		}
		if gen {
			out = append(out, segment{text: "assistant: ", template: true})
		}
		return out
	}}
)

func content(i int, m Message) []segment {
	out := make([]segment, 0, len(m.Content))
	for j, p := range m.Content {
		if p.Image != nil {
			out = append(out, segment{image: p.Image, msg: i, part: j})
		} else {
			out = append(out, segment{text: p.Text})
		}
	}
	return out
}

// templateFor picks the format from the file's chat template and checks that the tokenizer has
// its special tokens.
func templateFor(tok *tokenizer.Tokenizer, jinja string) Template {
	has := func(tokens ...string) bool {
		for _, t := range tokens {
			if _, ok := tok.ID(t); !ok {
				return false
			}
		}
		return true
	}
	switch {
	case strings.Contains(jinja, "<|im_start|>") && has("<|im_start|>", "<|im_end|>"):
		return chatML
	case strings.Contains(jinja, "<|start_header_id|>") && has("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		return llama3
	}
	return plain
}

// validate checks the messages' roles. A message may be empty: the unconditional branch of
// guided generation is an empty user message.
func validate(msgs []Message) error {
	if len(msgs) == 0 {
		return fmt.Errorf("no messages")
	}
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return fmt.Errorf("message %d: role %q is not system, user or assistant", i, m.Role)
		}
	}
	return nil
}
