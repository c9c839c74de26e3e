package llm

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/toklip/toklip/jsonmode"
	"github.com/toklip/toklip/sampler"
	"github.com/toklip/toklip/visiontok"
)

// DefaultGuidance is the guidance scale images are drawn with unless a request or a Modelfile
// says otherwise (Janus and LlamaGen sample with scales around this).
const DefaultGuidance = 3

// ImageOptions say how image ids are drawn.
type ImageOptions struct {
	Guidance float32        // classifier-free guidance scale s in u + s(c - u); 1 is no guidance, 0 DefaultGuidance
	Sampler  sampler.Params // temperature, top-k, top-p and seed of the image ids
	Negative string         // the unconditional branch's prompt; "" is an empty user message
	Partials int            // partial renders sent with ImageStep events, evenly spaced (0: none)
}

// GeneratedImage is a drawn image: its VQ ids and its pixels.
type GeneratedImage struct {
	IDs    []int32
	Image  *image.RGBA
	Decode time.Duration // the VQ decoder's time, for metrics
}

// drawOne draws choice i of a Draw run: cond is the chat [user: prompt] with the assistant's
// header and the begin-image token, uncond the same with the negative prompt. Both run as two
// sequences of each pass.
func (e *Engine) drawOne(ctx context.Context, i int, cond, uncond []Input, opts ImageOptions, send func(Event) bool) (*Answer, error) {
	seqs, err := e.lm.AcquireWaitN(ctx, 2) // conditional and unconditional
	if err != nil {
		return nil, err
	}
	defer e.release(seqs)
	m := e.steps.join()
	ids, _, err := e.drawImage(ctx, i, seqs[0], seqs[1], cond, uncond, opts, false, send)
	m.leave() // before the VQ decode: no more steps
	if err != nil {
		return nil, err
	}
	g, err := e.decode(ids)
	if err != nil {
		return nil, err
	}
	if !send(ImageDone{Choice: i, Image: g}) {
		return nil, ctx.Err()
	}
	return &Answer{Parts: []AnswerPart{{Image: g}}, PromptTokens: len(cond), CompletionTokens: len(ids), FinishReason: "stop"}, nil
}

// decode turns drawn ids into pixels.
func (e *Engine) decode(ids []int32) (*GeneratedImage, error) {
	start := time.Now()
	img, err := e.vision.Decode(ids)
	if err != nil {
		return nil, err
	}
	return &GeneratedImage{IDs: ids, Image: img, Decode: time.Since(start)}, nil
}

// imagePrompt is a chat with one user message, the assistant's header and the begin-image token.
func (e *Engine) imagePrompt(text string) ([]Input, error) {
	var parts []Part
	if text != "" {
		parts = []Part{{Text: text}}
	}
	p, err := e.BuildPrompt([]Message{{Role: "user", Content: parts}}, true)
	if err != nil {
		return nil, err
	}
	return append(p.Inputs, Input{Token: e.lm.Config().Images.Begin}), nil
}

// drawImage runs guided generation of one image of choice i on the conditional sequence cond.
// condInputs are what cond still has to take in before the first id, ending with the
// begin-image token (a whole prompt, or just that token inside a chat); uncondInputs are the
// unconditional prompt, for uncond, an empty sequence that is cleared again before drawImage
// returns. Progress goes out as ImageStarted and ImageStep events. With continueText, the last
// id and the end-image token are fed to cond, so that text can follow, and the logits after the
// end token are returned.
func (e *Engine) drawImage(ctx context.Context, i int, cond, uncond Seq, condInputs, uncondInputs []Input, opts ImageOptions, continueText bool, send func(Event) bool) (ids []int32, next []float32, err error) {
	it := e.lm.Config().Images
	defer e.lm.Truncate(uncond, 0)
	// Both prompts in one pass; the image logits of their last positions start the loop. Every
	// pass of the loop asks for image logits only, so the backbone computes a head of Count rows.
	in := make([]Input, 0, len(condInputs)+len(uncondInputs))
	in = append(in, withSeq(condInputs, cond)...)
	in = append(in, withSeq(uncondInputs, uncond)...)
	in[len(condInputs)-1].ImageLogits, in[len(in)-1].ImageLogits = true, true
	logits, err := e.steps.step(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	c, u := logits[0], logits[1]

	var stream *visiontok.Stream
	if e.lm.Config().Projector.Fusion {
		if stream, err = e.vision.NewStream(); err != nil {
			return nil, nil, err
		}
		defer stream.Close()
	}
	s := sampler.New(opts.Sampler)
	n := it.PerImage()
	if !send(ImageStarted{Choice: i, Total: n}) {
		return nil, nil, ctx.Err()
	}
	partials := 0 // partial renders sent
	ids = make([]int32, 0, n)
	for step := range n {
		sampler.Guide(c, u, opts.Guidance) // c and u hold the image tokens' logits only
		id, err := s.Sample(c, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("image id %d: %w", step, err)
		}
		tok := it.First + id
		ids = append(ids, id)
		ev := ImageStep{Choice: i, Step: step + 1, Total: n, IDs: ids[: step+1 : step+1]}
		if partials < opts.Partials && step+1 >= (partials+1)*n/(opts.Partials+1) {
			// A partial render is a courtesy: one that fails is tried again at the next step.
			if img, err := e.renderPartial(ev.IDs); err == nil {
				ev.Partial, ev.PartialIndex = img, partials
				partials++
			}
		}
		if !send(ev) {
			return nil, nil, ctx.Err()
		}
		last := step == n-1
		if last && !continueText {
			break
		}
		in := Input{Token: tok}
		if stream != nil { // semantic fusion: the id's TokLIP feature, projected, joins its embedding
			f, err := stream.Add([]int32{id})
			if err != nil {
				return nil, nil, err
			}
			in.Feature, in.Fuse = f[0], true
		}
		if last { // the image is done: cond takes the last id and the end token, and goes on in text
			logits, err := e.steps.step(ctx, []Input{withSeq1(in, cond, false), {Seq: cond, Token: it.End, Logits: true}})
			if err != nil {
				return nil, nil, err
			}
			return ids, logits[0], nil
		}
		a, b := withSeq1(in, cond, true), withSeq1(in, uncond, true)
		logits, err := e.steps.step(ctx, []Input{a, b})
		if err != nil {
			return nil, nil, err
		}
		c, u = logits[0], logits[1]
	}
	return ids, nil, nil
}

func (e *Engine) release(seqs []Seq) {
	for _, s := range seqs {
		e.lm.Release(s)
	}
}

func withSeq(in []Input, s Seq) []Input {
	out := make([]Input, len(in))
	for i, x := range in {
		x.Seq, x.Logits = s, i == len(in)-1
		out[i] = x
	}
	return out
}

func withSeq1(in Input, s Seq, logits bool) Input {
	in.Seq, in.Logits, in.ImageLogits = s, logits, logits
	return in
}

// renderPartial decodes an image whose first ids are known, the rest filled with id 0, for
// streamed partial images.
func (e *Engine) renderPartial(ids []int32) (*image.RGBA, error) {
	full := make([]int32, e.lm.Config().Images.PerImage())
	copy(full, ids)
	return e.vision.Decode(full)
}

// ChatOptions control a chat answer.
type ChatOptions struct {
	MaxTokens int            // completion tokens, image ids included; default: what the context holds
	Sampler   sampler.Params // for text
	Stop      []string       // the answer ends before the first of these
	Images    bool           // the answer may contain images (the model opens one with its begin-image token)
	JSON      bool           // the answer is one JSON object: only tokens that keep it valid JSON are sampled
	Image     ImageOptions   // how those images are drawn
}

// Answer is a chat answer: text and images in order, and its token counts.
type Answer struct {
	Parts            []AnswerPart
	PromptTokens     int
	PromptImages     int // image tokens among the prompt tokens
	CompletionTokens int
	FinishReason     string // "stop" or "length"
}

// AnswerPart is text or an image.
type AnswerPart struct {
	Text  string
	Image *GeneratedImage
}

// Text is the answer's text, images left out.
func (a *Answer) Text() string {
	var s string
	for _, p := range a.Parts {
		s += p.Text
	}
	return s
}

// answer makes choice i of a Chat run: text goes out as TextDelta events; when the model opens
// an image and opts.Images allows it, the loop draws the image with guidance (ImageStarted,
// ImageStep, ImageDone) and goes back to text after it.
func (e *Engine) answer(ctx context.Context, i int, p *Prompt, opts ChatOptions, send func(Event) bool) (*Answer, error) {
	// An answer that may draw holds its unconditional sequence from the start: see AcquireWaitN.
	it := e.lm.Config().Images
	draws := opts.Images && it.Enabled() && e.vision != nil && !opts.JSON
	seqs, err := e.lm.AcquireWaitN(ctx, map[bool]int{false: 1, true: 2}[draws])
	if err != nil {
		return nil, err
	}
	defer e.release(seqs)
	seq := seqs[0]
	m := e.steps.join()
	defer m.leave()
	ans := &Answer{PromptTokens: len(p.Inputs), PromptImages: p.ImageTokens, FinishReason: "length"}
	budget := e.lm.Options().ContextLength - len(p.Inputs)
	if opts.MaxTokens > 0 && opts.MaxTokens < budget {
		budget = opts.MaxTokens
	}
	logits, err := e.steps.step(ctx, withSeq(p.Inputs, seq))
	if err != nil {
		return nil, err
	}
	stops := e.stopTokens()
	s := sampler.New(opts.Sampler)
	text := newStopper(opts.Stop, func(t string) { send(TextDelta{Choice: i, Text: t}) }) // a false send: the next step fails
	dec := e.tok.NewStreamDecoder(true)
	var history []int32
	var js jsonmode.State
	var pieces [][]byte
	if opts.JSON {
		js, pieces = jsonmode.NewObject().Compact(), e.tokenBytes()
	}
	flush := func() {
		if t := text.flush(); t != "" {
			ans.Parts = append(ans.Parts, AnswerPart{Text: t})
		}
	}
	for ans.CompletionTokens < budget {
		l := logits[0]
		if it.Enabled() { // image ids only inside an image; an image only when asked for and it fits
			sampler.Allow(l, 0, int(it.First))
			fits := ans.CompletionTokens+it.PerImage()+2 <= budget
			if !draws || !fits {
				l[it.Begin] = float32(math.Inf(-1))
			}
			l[it.End] = float32(math.Inf(-1))
		}
		if opts.JSON {
			constrainJSON(l, js, pieces, stops)
		}
		tok, err := s.Sample(l, history)
		if err != nil {
			return nil, err
		}
		if slices.Contains(stops, tok) {
			ans.FinishReason = "stop"
			break
		}
		if opts.JSON {
			js.Feed(pieces[tok]) // allowed by constrainJSON: cannot fail
		}
		history = append(history, tok)
		ans.CompletionTokens++
		if it.Enabled() && tok == it.Begin {
			text.add(dec.Flush())
			flush()
			uncond, err := e.imagePrompt(opts.Image.Negative)
			if err != nil {
				return nil, err
			}
			ids, next, err := e.drawImage(ctx, i, seq, seqs[1], []Input{{Token: tok}}, uncond, opts.Image, true, send)
			if err != nil {
				return nil, err
			}
			g, err := e.decode(ids)
			if err != nil {
				return nil, err
			}
			ans.Parts = append(ans.Parts, AnswerPart{Image: g})
			if !send(ImageDone{Choice: i, Image: g}) {
				return nil, ctx.Err()
			}
			ans.CompletionTokens += len(ids) + 1
			history = append(history, it.End)
			logits = [][]float32{next}
			continue
		}
		if text.add(dec.Add(tok)) {
			ans.FinishReason = "stop"
			break
		}
		if logits, err = e.steps.step(ctx, []Input{{Seq: seq, Token: tok, Logits: true}}); err != nil {
			return nil, err
		}
	}
	text.add(dec.Flush())
	flush()
	return ans, nil
}

// constrainJSON leaves only the tokens after which the answer is still a prefix of one JSON
// object: while it is incomplete, text tokens that continue it validly (never one that adds no
// text, which could repeat forever); once complete, only the stop tokens.
func constrainJSON(l []float32, js jsonmode.State, pieces [][]byte, stops []int32) {
	complete := js.Complete()
	for id := range l {
		ok := false
		switch {
		case slices.Contains(stops, int32(id)):
			ok = complete
		case !complete && id < len(pieces) && len(pieces[id]) > 0:
			next := js
			ok = next.Feed(pieces[id])
		}
		if !ok {
			l[id] = float32(math.Inf(-1))
		}
	}
}

// ErrNothingToSample is returned for options under which no token could begin an answer.
var ErrNothingToSample = errors.New("no token is left for the answer to begin with")

// answerable checks, before any work, that an answer could begin under opts: the first step's
// masks (image ids, JSON) and logit_bias bans (-100 or below) leave at least one token.
func (e *Engine) answerable(opts ChatOptions) error {
	cfg := e.lm.Config()
	l := make([]float32, cfg.Vocab)
	if it := cfg.Images; it.Enabled() {
		sampler.Allow(l, 0, int(it.First))
		if !opts.Images || e.vision == nil || opts.JSON {
			l[it.Begin] = float32(math.Inf(-1))
		}
		l[it.End] = float32(math.Inf(-1))
	}
	if opts.JSON {
		constrainJSON(l, jsonmode.NewObject().Compact(), e.tokenBytes(), e.stopTokens())
	}
	for id, b := range opts.Sampler.LogitBias {
		if b <= -100 && id >= 0 && int(id) < len(l) {
			l[id] = float32(math.Inf(-1))
		}
	}
	for _, v := range l {
		if !math.IsInf(float64(v), -1) {
			return nil
		}
	}
	why := "logit_bias bans every token the model could write"
	if opts.JSON {
		why = "logit_bias bans every token that could begin a JSON object"
	}
	return fmt.Errorf("%w: %s", ErrNothingToSample, why)
}

// tokenBytes is every token's text as bytes, made once per engine (for JSON answers).
func (e *Engine) tokenBytes() [][]byte {
	e.piecesOnce.Do(func() {
		e.pieces = make([][]byte, e.tok.VocabSize())
		for id := range e.pieces {
			e.pieces[id] = e.tok.TokenBytes(int32(id))
		}
	})
	return e.pieces
}

// stopTokens are the tokens that end an answer: the tokenizer's EOS and the templates' turn ends.
func (e *Engine) stopTokens() []int32 {
	var out []int32
	if e.tok.EOS >= 0 {
		out = append(out, e.tok.EOS)
	}
	for _, name := range []string{"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>"} {
		if id, ok := e.tok.ID(name); ok && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// stopper collects streamed text, holds back what might be the start of a stop string, and
// reports when one appears (the text before it is kept).
type stopper struct {
	stops   []string
	emit    func(string)
	pending string
	kept    string
	done    bool
}

func newStopper(stops []string, emit func(string)) *stopper {
	return &stopper{stops: slices.DeleteFunc(slices.Clone(stops), func(s string) bool { return s == "" }), emit: emit}
}

// add takes new text and reports whether a stop string was reached.
func (s *stopper) add(t string) bool {
	if s.done {
		return true
	}
	s.pending += t
	for _, stop := range s.stops {
		if i := strings.Index(s.pending, stop); i >= 0 {
			s.release(s.pending[:i])
			s.pending, s.done = "", true
			return true
		}
	}
	hold := 0 // the longest suffix of pending that begins a stop string
	for _, stop := range s.stops {
		for n := min(len(stop)-1, len(s.pending)); n > hold; n-- {
			if s.pending[len(s.pending)-n:] == stop[:n] {
				hold = n
				break
			}
		}
	}
	s.release(s.pending[:len(s.pending)-hold])
	s.pending = s.pending[len(s.pending)-hold:]
	return false
}

func (s *stopper) release(t string) {
	if t == "" {
		return
	}
	s.kept += t
	if s.emit != nil {
		s.emit(t)
	}
}

// flush releases held text (no stop string came) and returns the text kept since the last flush.
func (s *stopper) flush() string {
	if !s.done {
		s.release(s.pending)
	}
	s.pending = ""
	out := s.kept
	s.kept = ""
	return out
}
