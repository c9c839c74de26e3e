package tests

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	xdraw "golang.org/x/image/draw"

	"github.com/toklip/toklip/demo"
)

// terminal is the binary running in a pseudo-terminal, as a user's shell runs it.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer // everything the program wrote
	mark int          // where the next wait starts looking
	done chan error
}

func startTerminal(t *testing.T, bin, dir string, env []string, args ...string) *terminal {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir = env, dir
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, cmd: cmd, pty: f, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { term.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		f.Close()
		if t.Failed() {
			t.Logf("the terminal showed:\n%s", term.all())
		}
	})
	return term
}

func (term *terminal) all() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// wait waits until the output since the last wait holds want, and moves past it.
func (term *terminal) wait(want string) string {
	term.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		s := term.out.String()[term.mark:]
		if i := strings.Index(s, want); i >= 0 {
			term.mark += i + len(want)
			term.mu.Unlock()
			return s[:i+len(want)]
		}
		term.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	term.t.Fatalf("the terminal never showed %q; since the last step it showed:\n%q", want, term.all()[term.mark:])
	return ""
}

// send types keys.
func (term *terminal) send(keys string) {
	term.t.Helper()
	if _, err := term.pty.Write([]byte(keys)); err != nil {
		term.t.Fatal(err)
	}
}

// The interactive chat driven through a pseudo-terminal as a user types: a dragged-in quoted
// path with a space in its name, a message over several lines, Up to send the last line again,
// /set parameter changing the answer, Ctrl-C stopping an answer while the chat goes on, Ctrl-C
// at an empty prompt, /show, Ctrl-D to leave, and the history kept for the next chat.
func TestInteractiveChatInATerminal(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	env := append(userEnv(dir), "TERM=xterm")
	const caption = "a large red star in the center"
	if code, _, errOut := runBinary(t, bin, dir, env, "scene", caption, "-o", "my scene.png"); code != 0 {
		t.Fatal(errOut)
	}
	term := startTerminal(t, bin, dir, env, "run")
	term.wait(">>> ")

	// A path dragged into the terminal is quoted (its name has a space); the rest is the message.
	term.send("'" + filepath.Join(dir, "my scene.png") + "' " + demo.EvalQuestion + "\r")
	got := term.wait(">>> ")
	if !strings.Contains(got, "attached ") || demo.ReadAnswer(got) != demo.ReadAnswer(caption) {
		t.Fatalf("dragged path and question: %q", got)
	}
	// Up brings a line back (twice: past /clear; the demo model was trained on single turns);
	// Enter sends it again, its image attached again.
	term.send("/clear\r")
	term.wait("conversation cleared")
	term.wait(">>> ")
	term.send("\x1b[A\x1b[A\r")
	if got := term.wait(">>> "); demo.ReadAnswer(got) != demo.ReadAnswer(caption) {
		t.Fatalf("Up, Up, Enter: %q", got)
	}
	// A message over several lines is one message: one exchange more in the conversation.
	term.send("/clear\r")
	term.wait("conversation cleared")
	term.wait(">>> ")
	term.send(`"""` + "\r" + "Describe" + "\r")
	term.wait("... ")
	term.send("the image." + `"""` + "\r")
	term.wait(">>> ")
	term.send("/show info\r")
	if got := term.wait(">>> "); !regexp.MustCompile(`messages +2 in the conversation`).MatchString(got) {
		t.Fatalf("after a message over two lines, /show info: %q", got)
	}
	// /set parameter: two tokens at most, then the whole answer again.
	term.send("/clear\r")
	term.wait("conversation cleared")
	term.wait(">>> ")
	term.send("/set parameter num_predict 2\r")
	term.wait("set parameter num_predict to 2")
	term.wait(">>> ")
	term.send("/image my\\ scene.png\r")
	term.wait("attached my scene.png")
	term.wait(">>> ")
	term.send(demo.EvalQuestion + "\r")
	got = term.wait(">>> ")
	whole := "A large red star in the center."
	part := got[strings.LastIndex(got, demo.EvalQuestion)+len(demo.EvalQuestion):]
	part = strings.TrimSpace(strings.TrimSuffix(regexp.MustCompile("\x1b\\[[?0-9;]*[a-zA-Z]").ReplaceAllString(part, ""), ">>> "))
	if part == "" || part == whole || !strings.HasPrefix(whole, part) {
		t.Fatalf("num_predict 2: answered %q (whole: %q)", part, whole)
	}
	term.send("/show parameters\r")
	if got := term.wait(">>> "); !regexp.MustCompile(`num_predict +2`).MatchString(got) {
		t.Fatalf("/show parameters: %q", got)
	}
	// Ctrl-C while an image is drawn stops it; the chat goes on, and no image is written.
	term.send("/set parameter num_predict -1\r")
	term.wait(">>> ")
	term.send("/clear\r")
	term.wait("conversation cleared")
	term.wait(">>> ")
	term.send("/draw\r")
	term.wait("drawing on")
	term.wait(">>> ")
	term.send("Draw a small blue circle in the center.\r")
	term.wait("drawing: 1 of")
	term.send("\x03")
	term.wait("(stopped)")
	term.wait(">>> ")
	if drawn, _ := filepath.Glob(filepath.Join(dir, "draw-*.png")); len(drawn) > 0 {
		t.Fatalf("the stopped drawing was written: %v", drawn)
	}
	term.send("/draw\r")
	term.wait("drawing off")
	term.wait(">>> ")
	term.send("'" + filepath.Join(dir, "my scene.png") + "' " + demo.EvalQuestion + "\r")
	if got := term.wait(">>> "); demo.ReadAnswer(got) != demo.ReadAnswer(caption) {
		t.Fatalf("after Ctrl-C: %q", got)
	}
	// Ctrl-C at an empty prompt says how to leave; typed text and Ctrl-C drops the text.
	term.send("\x03")
	term.wait("Use Ctrl-D or /bye to leave.")
	term.wait(">>> ")
	term.send("never sent\x03")
	term.wait(">>> ")
	term.send("/nonsense\r")
	term.wait("unknown command /nonsense (/? for help)")
	term.wait(">>> ")
	term.send("\x04")
	select {
	case err := <-term.done:
		if err != nil {
			t.Fatalf("Ctrl-D: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Ctrl-D did not end the chat")
	}
	history, err := os.ReadFile(filepath.Join(home, ".toklip", "history"))
	if err != nil || !strings.Contains(string(history), "/set parameter num_predict 2\n") || strings.Contains(string(history), "never sent") {
		t.Fatalf("history file: %q, %v", history, err)
	}
	// The next chat goes back through it with Up.
	term = startTerminal(t, bin, dir, env, "run")
	term.wait(">>> ")
	term.send("\x1b[A")
	term.wait("/nonsense")
	term.send("\x15/bye\r")
	if err := <-term.done; err != nil {
		t.Fatalf("/bye: %v", err)
	}
}

// A message piped into run is answered with only the answer on stdout; nothing else is printed
// there (no banner, no prompts), and list logs nothing about the backend.
func TestPipedRunAndQuietCommands(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := userEnv(dir)
	const caption = "a small green square in the top left corner"
	runBinary(t, bin, dir, env, "scene", caption, "-o", "scene.png")
	cmd := exec.Command(bin, "run", "-image", "scene.png")
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = strings.NewReader(demo.EvalQuestion + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("piped run: %v, %s", err, errOut.String())
	}
	if lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); len(lines) != 1 || demo.ReadAnswer(lines[0]) != demo.ReadAnswer(caption) {
		t.Fatalf("piped run's stdout: %q", out.String())
	}
	// The image's path in the piped message attaches it, as in the chat.
	cmd = exec.Command(bin, "run", "toklip-demo")
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = strings.NewReader("./scene.png " + demo.EvalQuestion)
	if b, err := cmd.Output(); err != nil || demo.ReadAnswer(string(b)) != demo.ReadAnswer(caption) {
		t.Fatalf("piped run with a path in the message: %v, %q", err, b)
	}
	if code, _, errOut := runBinary(t, bin, dir, env, "list"); code != 0 || errOut != "toklip: no server answers at http://127.0.0.1:1 (TOKLIP_HOST): reading the store\n" {
		t.Fatalf("list's stderr: %q", errOut)
	}
}

// Seeds: without one, two drawings at temperature 1 differ; -verbose prints the seed each
// used, and giving it back draws the same image again.
func TestRandomSeedsRepeatable(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := userEnv(dir)
	draw := func(out string, extra ...string) (seed string) {
		t.Helper()
		args := append([]string{"generate", "a small blue circle in the center", "-temperature", "1", "-verbose", "-o", out}, extra...)
		code, _, errOut := runBinary(t, bin, dir, env, args...)
		m := regexp.MustCompile(`seed: (\d+)`).FindStringSubmatch(errOut)
		if code != 0 || m == nil {
			t.Fatalf("generate: exit %d, %q", code, errOut)
		}
		return m[1]
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s1, s2 := draw("a.png"), draw("b.png")
	if s1 == s2 || bytes.Equal(read("a.png"), read("b.png")) {
		t.Fatalf("two drawings without a seed: seeds %s and %s, images equal %v", s1, s2, bytes.Equal(read("a.png"), read("b.png")))
	}
	if s := draw("c.png", "-seed", s1); s != s1 || !bytes.Equal(read("a.png"), read("c.png")) {
		t.Fatalf("-seed %s gave seed %s, the same image: %v", s1, s, bytes.Equal(read("a.png"), read("c.png")))
	}
}

// A drawn image is shown in the terminal where it can show pictures: kitty's graphics protocol
// (decoded here back into the picture: the model's image scaled up, drawn as asked) and iTerm2's
// inline images; piped, the output holds only the file's name.
func TestDrawnImagesShownInTheTerminal(t *testing.T) {
	bin := toklipBinary(t)
	dir := t.TempDir()
	env := userEnv(dir)
	const prompt = "a small blue circle in the center"
	kitty := startTerminal(t, bin, dir, append(env, "TERM=xterm-kitty"), "generate", prompt, "-o", "kitty.png")
	kitty.wait("wrote kitty.png")
	var data strings.Builder
	for _, m := range regexp.MustCompile("\x1b_G(?:a=T,f=100,)?m=([01]);([A-Za-z0-9+/=]*)\x1b\\\\").FindAllStringSubmatch(kitty.all(), -1) {
		data.WriteString(m[2])
	}
	raw, err := base64.StdEncoding.DecodeString(data.String())
	if err != nil || len(raw) == 0 {
		t.Fatalf("kitty graphics: %v (%d base64 bytes)", err, data.Len())
	}
	shown, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b := shown.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("shown at %v, want 256 x 256 (the %d px image scaled up)", b, demo.Size)
	}
	// The picture shown is the one written, scaled up by a whole factor.
	checkDrawing(t, filepath.Join(dir, "kitty.png"), prompt)
	small := image.NewRGBA(image.Rect(0, 0, demo.Size, demo.Size))
	xdraw.NearestNeighbor.Scale(small, small.Bounds(), shown, shown.Bounds(), xdraw.Src, nil)
	if got, want := demo.Check(small), demo.ReadAnswer(prompt); got != want {
		t.Errorf("the image shown reads as %+v, the prompt asked for %+v", got, want)
	}

	iterm := startTerminal(t, bin, dir, append(env, "TERM=xterm-256color", "TERM_PROGRAM=iTerm.app"), "run", "-draw", "Draw "+prompt+".")
	iterm.wait("\x1b]1337;File=inline=1;")
	iterm.wait("\a")
	if err := <-iterm.done; err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-draw", "Draw "+prompt+".")
	cmd.Env, cmd.Dir = append(env, "TERM=xterm-kitty"), dir
	if out, err := cmd.Output(); err != nil || strings.Contains(string(out), "\x1b") || !strings.HasPrefix(string(out), "[image: ") {
		t.Errorf("piped: %v %q", err, out)
	}
}
