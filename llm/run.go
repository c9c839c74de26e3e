package llm

import (
	"context"
	"errors"
	"fmt"
	"image"
	"iter"
	"sync"
)

// Event is one piece of a request's answers, as the engine makes it. A Run's events are those of
// its choices, interleaved (each names its Choice), and end with Usage, or Failed when the run
// did not finish. The caller ranges over them and forwards what it needs: nothing in the engine
// calls back into its caller.
type Event interface{ event() }

// TextDelta is text that choice Choice's answer goes on with.
type TextDelta struct {
	Choice int
	Text   string
}

// ImageStarted says that choice Choice began an image of Total ids.
type ImageStarted struct {
	Choice, Total int
}

// ImageStep says that the image of choice Choice has its first Step of Total ids, IDs (shared:
// read, never written). Partial is a render of them, the ids to come filled with id 0, at the
// steps where the request asked for a partial image (the Partial-th of ImageOptions.Partials,
// counted from 0), else nil.
type ImageStep struct {
	Choice, Step, Total int
	IDs                 []int32
	Partial             *image.RGBA
	PartialIndex        int
}

// ImageDone is a drawn and decoded image of choice Choice.
type ImageDone struct {
	Choice int
	Image  *GeneratedImage
}

// ChoiceDone is choice Choice's whole answer: its parts, token counts and finish reason.
type ChoiceDone struct {
	Choice int
	Answer *Answer
}

// Usage ends a run whose choices all finished: the prompt's tokens (counted once: the choices
// share it) and the completions' tokens over all choices.
type Usage struct {
	PromptTokens      int
	PromptImageTokens int // image tokens among PromptTokens
	CompletionTokens  int
	ImageTokens       int // image ids among CompletionTokens
}

// Failed ends a run that did not finish: Err is the first failure, or the context's error when
// the caller left.
type Failed struct {
	Err error
}

func (TextDelta) event()    {}
func (ImageStarted) event() {}
func (ImageStep) event()    {}
func (ImageDone) event()    {}
func (ChoiceDone) event()   {}
func (Usage) event()        {}
func (Failed) event()       {}

// ChatRequest is a chat to answer N times (default 1). Choice i samples with the seeds of
// Options plus i, so that the choices differ and each is reproducible.
type ChatRequest struct {
	Messages []Message
	N        int
	Options  ChatOptions
	// Raw sends the messages' content as it is, with no chat template: the caller writes the
	// model's format, its special tokens read as such (ollama's raw generate).
	Raw bool
}

// DrawRequest is a prompt to draw N images of (default 1); image i samples with the seed of
// Options plus i.
type DrawRequest struct {
	Prompt  string
	N       int
	Options ImageOptions
}

// Run is a checked request whose prompt is built (its images decoded and encoded): ranging over
// Events computes its answers. A Run is used once.
type Run struct {
	// Prompt is the request's prompt: its tokens and the time each of its images took to encode.
	Prompt *Prompt

	ctx    context.Context
	n      int
	choice func(ctx context.Context, i int, send func(Event) bool) (*Answer, error)
}

// Chat checks a chat request and builds its prompt, encoding its images. Everything that can
// be known before generating is checked here (options, a logit_bias that bans every first token,
// images that do not decode, a prompt that fills the context), so that a caller can refuse the
// request before it answers anything; the Run then makes the answers.
func (e *Engine) Chat(ctx context.Context, r ChatRequest) (*Run, error) {
	opts := r.Options
	if err := opts.Sampler.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Image.Sampler.Validate(); err != nil {
		return nil, err
	}
	if err := e.answerable(opts); err != nil {
		return nil, err
	}
	if opts.Image.Guidance == 0 {
		opts.Image.Guidance = DefaultGuidance
	}
	build := e.BuildPrompt
	if r.Raw {
		build = e.rawPrompt
	}
	p, err := build(r.Messages, true)
	if err != nil {
		return nil, err
	}
	return &Run{Prompt: p, ctx: ctx, n: max(r.N, 1), choice: func(ctx context.Context, i int, send func(Event) bool) (*Answer, error) {
		o := opts
		o.Sampler.Seed += uint64(i)
		o.Image.Sampler.Seed += uint64(i)
		return e.answer(ctx, i, p, o, send)
	}}, nil
}

// Draw checks an image request and builds its prompt; the Run draws the images.
func (e *Engine) Draw(ctx context.Context, r DrawRequest) (*Run, error) {
	if e.vision == nil {
		return nil, ErrNoVision
	}
	opts := r.Options
	if err := opts.Sampler.Validate(); err != nil {
		return nil, err
	}
	if opts.Guidance == 0 {
		opts.Guidance = DefaultGuidance
	}
	if opts.Partials < 0 || opts.Partials >= e.lm.Config().Images.PerImage() {
		return nil, fmt.Errorf("%d partial images: want 0 to %d", opts.Partials, e.lm.Config().Images.PerImage()-1)
	}
	cond, err := e.imagePrompt(r.Prompt)
	if err != nil {
		return nil, err
	}
	uncond, err := e.imagePrompt(opts.Negative)
	if err != nil {
		return nil, err
	}
	return &Run{Prompt: &Prompt{Inputs: cond}, ctx: ctx, n: max(r.N, 1), choice: func(ctx context.Context, i int, send func(Event) bool) (*Answer, error) {
		o := opts
		o.Sampler.Seed += uint64(i)
		return e.drawOne(ctx, i, cond, uncond, o, send)
	}}, nil
}

// Events runs the request: its choices at once (the engine batches their forward passes), their
// events as they come. When the caller stops ranging, the choices stop at their next step.
func (r *Run) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		events := make(chan Event)
		answers := make([]*Answer, r.n)
		errs := make([]error, r.n)
		var wg sync.WaitGroup
		for i := range r.n {
			wg.Go(func() {
				send := func(ev Event) bool {
					select {
					case events <- ev:
						return true
					case <-ctx.Done():
						return false
					}
				}
				a, err := r.choice(ctx, i, send)
				if err == nil && !send(ChoiceDone{Choice: i, Answer: a}) {
					err = ctx.Err()
				}
				if err != nil {
					errs[i] = err
					cancel() // one choice failed: the others stop at their next step
					return
				}
				answers[i] = a
			})
		}
		go func() {
			wg.Wait()
			close(events)
		}()
		stopped := false
		for ev := range events {
			if !stopped && !yield(ev) {
				stopped = true
				cancel()
			}
		}
		if stopped {
			return
		}
		if err := firstError(errs); err != nil {
			yield(Failed{Err: err})
			return
		}
		yield(usageOf(answers))
	}
}

// Wait runs the request to its end: the answers in choice order, and their usage.
func (r *Run) Wait() ([]*Answer, Usage, error) {
	answers := make([]*Answer, r.n)
	for ev := range r.Events() {
		switch ev := ev.(type) {
		case ChoiceDone:
			answers[ev.Choice] = ev.Answer
		case Failed:
			return nil, Usage{}, ev.Err
		case Usage:
			return answers, ev, nil
		}
	}
	return nil, Usage{}, errors.New("the run ended without its usage") // cannot happen: Events ends with Usage or Failed
}

func usageOf(answers []*Answer) Usage {
	u := Usage{PromptTokens: answers[0].PromptTokens, PromptImageTokens: answers[0].PromptImages}
	for _, a := range answers {
		u.CompletionTokens += a.CompletionTokens
		for _, p := range a.Parts {
			if p.Image != nil {
				u.ImageTokens += len(p.Image.IDs)
			}
		}
	}
	return u
}

// firstError is the error that stopped parallel work: the first that is not a cancellation (which
// the others got when it canceled them), else a cancellation (the caller left), else nil.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}
