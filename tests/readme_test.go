package tests

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The README's quick start, followed word for word on a copy of the repository as a clone holds
// it (its tracked and new files, nothing ignored: no bin/, no caches): the packages it lists are
// there, terminal 1's `make run` builds and serves, and every command of terminal 2 prints what
// the README says it prints. Go's build cache and module cache are this machine's, as a user's
// second build would find them; the home folder (the store, the history) is new.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary from a copy of the repository")
	}
	blocks := quickStart(t)
	if len(blocks) < 3 || !strings.Contains(blocks[0], "apt-get install") {
		t.Fatalf("the README's quick start: %d blocks, the first %q", len(blocks), blocks[0])
	}
	// The packages it lists (the test installs nothing: .ci/run does).
	for _, tool := range []string{"gcc", "g++", "make", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start's %s is not installed: %v", tool, err)
		}
	}
	if _, err := os.Stat("/usr/include/jpeglib.h"); err != nil {
		t.Fatalf("libjpeg62-turbo-dev is not installed: %v", err)
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:8750"); err != nil {
		t.Fatalf("the quick start serves on 127.0.0.1:8750, which is taken: %v", err)
	} else {
		ln.Close()
	}
	repo := copyRepository(t)
	home := filepath.Join(t.TempDir(), "home")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		out, _ := exec.Command("go", "env", k).Output()
		env = append(env, k+"="+strings.TrimSpace(string(out)))
	}

	// Terminal 1.
	cmds := console(blocks[1])
	if len(cmds) != 1 || cmds[0].line != "make run" {
		t.Fatalf("terminal 1 is not `make run`: %+v", cmds)
	}
	server := exec.Command("bash", "-c", "exec "+cmds[0].line)
	server.Dir, server.Env = repo, env
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make, and the server it starts
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var serverLog strings.Builder
	var mu sync.Mutex
	server.Stderr = &lockedWriter{&mu, &serverLog}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-server.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
		}
	})
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			mu.Lock()
			serverLog.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !said && strings.Contains(sc.Text(), cmds[0].want) {
				said = true
				up <- true
			}
		}
		if !said {
			up <- false
		}
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("make run ended without saying %q:\n%s", cmds[0].want, serverLog.String())
		}
	case <-time.After(10 * time.Minute):
		t.Fatalf("make run did not say %q in 10 minutes:\n%s", cmds[0].want, serverLog.String())
	}

	// Terminal 2: every command, in order, in one shell's folder; each prints what the README
	// shows.
	for _, block := range blocks[2:] {
		for _, c := range console(block) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			sh := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", c.line)
			sh.Dir, sh.Env = repo, env
			var stdout, stderr bytes.Buffer
			sh.Stdout, sh.Stderr = &stdout, &stderr
			err := sh.Run()
			cancel()
			if err != nil || strings.TrimSpace(stdout.String()) != c.want {
				mu.Lock()
				log := serverLog.String()
				mu.Unlock()
				t.Fatalf("$ %s\nprinted %q (%v; stderr %q), the README says %q\nthe server's log:\n%s", c.line, stdout.String(), err, stderr.String(), c.want, log)
			}
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// quickStart returns the code blocks of the README's "Quick start" section, in order.
func quickStart(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Quick start\n")
	if !ok {
		t.Fatal("the README has no Quick start section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "\n```")
		if !ok {
			return blocks
		}
		_, rest, _ = strings.Cut(rest, "\n") // the fence's language
		body, after, ok := strings.Cut(rest, "```\n")
		if !ok {
			t.Fatal("a code block of the quick start is not closed")
		}
		blocks = append(blocks, body)
		section = after
	}
}

// command is a console block's "$ " line and what it prints (the lines up to the next one).
type command struct{ line, want string }

func console(block string) []command {
	var cmds []command
	for line := range strings.Lines(block) {
		line = strings.TrimRight(line, "\n")
		if rest, ok := strings.CutPrefix(line, "$ "); ok {
			cmds = append(cmds, command{line: rest})
		} else if n := len(cmds); n > 0 {
			cmds[n-1].want = strings.TrimSpace(cmds[n-1].want + "\n" + line)
		}
	}
	return cmds
}

// copyRepository copies the repository's files as a clone of its working tree holds them (git's
// tracked files and the new ones it does not ignore) into a new folder.
func copyRepository(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "toklip")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("..", name)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // a file deleted in the working tree, or a link
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
