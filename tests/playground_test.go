package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/toklip/toklip/demo"
)

// The playground in a real browser (Debian's headless Chromium, driven by chromedp): it loads
// with no console error, its tabs and chat work by keyboard, it describes an uploaded scene, draws in the chat and in the Draw panel
// with partial renders first and final images the checker reads as asked, ranks the true
// caption first for 5 scenes, and fits a phone's width. Screenshots of each state go to the
// test's artifact folder (go test -artifacts), or to $TOKLIP_SCREENSHOTS (make screenshots).
func TestPlaygroundInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser and the demo model")
	}
	base, _, _, _, _ := startServe(t)
	b := newBrowser(t)
	dir := t.TempDir()
	b.run("the page", chromedp.Navigate(base+"/"), poll(`document.querySelector("#model").value === "toklip-demo" && document.querySelector("#caps").textContent`))
	if caps := b.text("#caps"); caps != "reads images · draws images" {
		t.Errorf("the model's capabilities read %q", caps)
	}
	b.screenshot("loaded.png")

	// The keyboard: the arrow keys move between the tabs.
	b.run("the tabs by keyboard", chromedp.Focus(chromedp.CSS("#tab-chat")), chromedp.KeyEvent(kb.ArrowRight),
		poll(`document.querySelector("#tab-draw").getAttribute("aria-selected") === "true" && !document.querySelector("#draw-panel").hidden`),
		chromedp.KeyEvent(kb.ArrowLeft), poll(`document.activeElement.id === "tab-chat" && !document.querySelector("#chat-panel").hidden`))

	// Chat: a scene attached through the file input, described.
	scene := demo.Scenes(demo.HeldOut, 1, 11)[0]
	path := writeScene(t, dir, "scene.png", scene)
	b.run("a described scene",
		chromedp.SetUploadFiles(chromedp.CSS("#chat-file"), []string{path}),
		chromedp.WaitVisible(chromedp.CSS("#attachments img")),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), demo.EvalQuestion+kb.Enter), // Enter sends
		poll(`document.querySelectorAll(".msg.assistant").length === 1 && !document.querySelector(".msg.assistant[aria-busy]")`))
	if got, answer := demo.ReadAnswer(b.text(".msg.assistant")), b.text(".msg.assistant"); got != demo.ReadAnswer(scene.Caption()) {
		t.Errorf("the playground answered %q for a scene of %q", answer, scene.Caption())
	}
	b.screenshot("described.png")
	if curl := b.text("#code-curl"); !strings.Contains(curl, "/v1/chat/completions") || !strings.Contains(curl, `"model": "toklip-demo"`) {
		t.Errorf("the request as curl: %q", curl)
	}

	// Chat that draws: partial renders, then the image, which reads as asked.
	const chatPrompt = "a large red square in the center"
	b.observePartials("#messages")
	b.run("a drawing in a new chat",
		chromedp.Click(chromedp.CSS("#clear")),
		chromedp.Click(chromedp.CSS("#chat-draw")),
		chromedp.SendKeys(chromedp.CSS("#chat-input"), "Draw "+chatPrompt+"."),
		chromedp.Click(chromedp.CSS("#send")),
		poll(`document.querySelectorAll(".msg.assistant").length === 1 && !document.querySelector(".msg.assistant[aria-busy]")`))
	b.checkPartials("the chat's drawing")
	b.checkImage(".msg.assistant img.drawn", chatPrompt)
	b.screenshot("chat.png")

	// Draw: two prompts, each with partial renders first and its timings after.
	b.run("the Draw panel", chromedp.Click(chromedp.CSS("#tab-draw")), chromedp.WaitVisible(chromedp.CSS("#d-prompt")))
	prompts := []string{"a small blue circle in the top left corner", "a large yellow triangle in the bottom right corner"}
	for i, prompt := range prompts {
		b.observePartials("#grid")
		b.run("drawing "+prompt,
			chromedp.SetValue(chromedp.CSS("#d-prompt"), prompt),
			chromedp.SetValue(chromedp.CSS("#d-n"), "1"),
			chromedp.Click(chromedp.CSS("#d-go")),
			poll(fmt.Sprintf(`document.querySelectorAll("#grid .card img.final").length === %d`, i+1)))
		b.checkPartials(prompt)
		b.checkImage("#grid .card:first-child img.final", prompt)
		if c := b.text("#grid .card:first-child figcaption"); !strings.Contains(c, "prompt ") || !strings.Contains(c, "tokens ") || !strings.Contains(c, "decode ") {
			t.Errorf("the drawing's caption %q gives no timings", c)
		}
	}
	b.screenshot("draw.png")

	// Look inside: the VQ grid and reconstruction of 5 scenes, and the 5 scenes' captions ranked
	// for each, the true one first.
	b.run("the Look inside panel", chromedp.Click(chromedp.CSS("#tab-inspect")))
	scenes := demo.Scenes(demo.HeldOut, 5, 3)
	var captions []string
	for _, s := range scenes {
		captions = append(captions, s.Caption())
	}
	for i, s := range scenes {
		name := fmt.Sprintf("look-%d.png", i)
		b.run("tokens of "+s.Caption(),
			chromedp.SetUploadFiles(chromedp.CSS("#i-file"), []string{writeScene(t, dir, name, s)}),
			poll(fmt.Sprintf(`document.querySelector("#i-name").textContent === %q && document.querySelectorAll("#i-cells div").length === 64 && !document.querySelector("#ranking li")`, name)),
			chromedp.SetValue(chromedp.CSS("#i-captions"), strings.Join(captions, "\n")),
			chromedp.Click(chromedp.CSS("#i-rank")),
			poll(`document.querySelectorAll("#ranking li").length === 5`))
		if first := b.text("#ranking li:first-child .caption"); first != s.Caption() {
			t.Errorf("scene %q: the caption ranked first is %q", s.Caption(), first)
		}
		b.checkImage("#i-recon", s.Caption()) // the round trip through the ids alone still shows it
	}
	b.run("a cell's id", chromedp.Focus(chromedp.CSS("#i-cells div:nth-child(28)")))
	if id := b.text("#i-hover"); !strings.HasPrefix(id, "row 3, column 3: id ") {
		t.Errorf("the focused cell says %q", id)
	}
	b.screenshot("inspect.png")

	// A phone's width: nothing wider than the screen.
	b.run("a phone-sized screen", chromedp.EmulateViewport(390, 844), chromedp.Click(chromedp.CSS("#tab-chat")))
	value[bool](b, "the top of the page", `window.scrollTo(0, 0); true`)
	if overflow := value[bool](b, "the page's width", `document.documentElement.scrollWidth > document.documentElement.clientWidth`); overflow {
		t.Error("the page is wider than a 390 px screen")
	}
	b.screenshot("phone.png")
	b.noConsoleErrors()
}

// With an API key, the page asks for it; a wrong one shows the server's own message, the right
// one lets the page load the models.
func TestPlaygroundAsksForTheAPIKey(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser and the demo model")
	}
	base, _, _, _, _ := startServe(t, "-api-key", "sesame")
	b := newBrowser(t)
	const said = "a valid API key is required"
	b.run("the key dialog", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#key-dialog[open] #key-input")))
	b.run("a wrong key",
		chromedp.SendKeys(chromedp.CSS("#key-input"), "wrong"),
		chromedp.Click(chromedp.CSS("#key-save")),
		poll(fmt.Sprintf(`document.querySelector("#key-dialog").open && document.querySelector("#error").textContent.includes(%q)`, said)))
	if reason := b.text("#key-reason"); !strings.Contains(reason, said) {
		t.Errorf("the dialog says %q", reason)
	}
	b.screenshot("wrong-key.png")
	b.run("the right key",
		chromedp.SetValue(chromedp.CSS("#key-input"), "sesame"),
		chromedp.Click(chromedp.CSS("#key-save")),
		poll(`document.querySelector("#model").value === "toklip-demo" && document.querySelector("#error").hidden`))
}

// browser is a headless Chromium tab with the errors its pages log.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	errors  []string
	shots   string
	started bool
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium")
		}
		t.Skip("no chromium on PATH (apt-get install chromium)")
	}
	b := &browser{t: t, shots: os.Getenv("TOKLIP_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = t.ArtifactDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 860), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				for _, a := range ev.Args {
					msg += string(a.Value) + a.Description + " "
				}
			}
		case *runtime.EventExceptionThrown:
			msg = ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				msg = ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	return b
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	if b.started { // what the page showed, to see why
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.MkdirAll(b.shots, 0o755)
			os.WriteFile(filepath.Join(b.shots, "failed.png"), shot, 0o644)
		}
		cancel()
	}
	b.mu.Lock()
	logged := strings.Join(b.errors, "\n")
	b.mu.Unlock()
	b.t.Fatalf("%s: %v (the page's errors: %s)", what, err, logged)
}

// run runs actions, within 2 minutes.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	get(b, what, chromedp.Steps(actions...))
}

// get runs an action that gives a value.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	if !b.started { // the first run starts the browser, which lives as long as its context
		if _, err := chromedp.Run(b.ctx, chromedp.Steps()); err != nil {
			b.fail("the browser", err)
		}
		b.started = true
	}
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// value is what a JavaScript expression gives.
func value[T any](b *browser, what, expr string) T {
	b.t.Helper()
	return get(b, what, chromedp.Evaluate[T](expr))
}

// poll waits, up to 2 minutes, until a JavaScript expression is true.
func poll(expr string) chromedp.Action[chromedp.Void] {
	p := chromedp.Poll[bool]("Boolean("+expr+")", chromedp.WithPollingTimeout(2*time.Minute), chromedp.WithPollingInterval(20*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := p(ctx, t)
		return chromedp.Void{}, err
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(get(b, "the text of "+sel, chromedp.TextContent(chromedp.CSS(sel))))
}

// observePartials counts, from now on, the images under sel shown with the class "partial"
// (a render of the ids drawn so far).
func (b *browser) observePartials(sel string) {
	b.t.Helper()
	value[bool](b, "watching "+sel, fmt.Sprintf(`window.partials = 0;
		new MutationObserver((ms) => { for (const m of ms) {
			const imgs = m.type === "childList" ? [...m.addedNodes] : [m.target];
			for (const n of imgs) if (n.nodeName === "IMG" && n.classList.contains("partial")) window.partials++;
		} }).observe(document.querySelector(%q), {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
		true`, sel))
}

func (b *browser) checkPartials(what string) {
	b.t.Helper()
	if n := value[int](b, "the partial renders", `window.partials`); n < 1 {
		b.t.Errorf("%s: no partial render was shown before the image", what)
	}
}

// checkImage reads the data-URL image at sel with the demo's checker.
func (b *browser) checkImage(sel, caption string) {
	b.t.Helper()
	src := get(b, "the image "+sel, chromedp.AttributeValue(chromedp.CSS(sel), "src")).Value
	raw, found := strings.CutPrefix(src, "data:image/png;base64,")
	data, err := base64.StdEncoding.DecodeString(raw)
	if !found || err != nil {
		b.t.Fatalf("%s: not a PNG data URL: %.60s", sel, src)
	}
	pic, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	if got, want := demo.Check(pic), demo.ReadAnswer(caption); got != want {
		b.t.Errorf("%s reads as %+v, want %+v (%q)", sel, got, want, caption)
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	shot := get(b, "a screenshot", chromedp.CaptureScreenshot())
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name), shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) noConsoleErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("the page logged errors:\n%s", strings.Join(b.errors, "\n"))
	}
}

func writeScene(t *testing.T, dir, name string, s demo.Scene) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, s.Render()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
