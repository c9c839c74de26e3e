// Package lineedit reads the messages of the interactive chat from a terminal: the line editor
// of golang.org/x/term (Left/Right, Home/End and Ctrl-A/E, Ctrl-K/U/W, Up/Down through the
// history, bracketed paste), with what a chat needs on top of it: Ctrl-C told apart from Ctrl-D
// (x/term ends ReadLine with io.EOF for both), """ messages over several lines, the lines of one
// paste kept in one message, and a history kept in a file between sessions.
//
// The terminal is in raw mode only while a line is read: the answer prints in the terminal's
// own mode, where Ctrl-C is SIGINT and the caller can stop the answer with it.
package lineedit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Interrupted is returned by Read when the user pressed Ctrl-C: Line is what they had typed,
// which is dropped (not sent, not kept in the history).
type Interrupted struct{ Line string }

func (e *Interrupted) Error() string { return "interrupted (Ctrl-C)" }

// Editor reads lines from a terminal. It is not safe for concurrent use.
type Editor struct {
	in   *ctrlC
	t    *term.Terminal
	fd   int // the terminal's file descriptor; -1 when the input is not a terminal
	hist History
}

// New returns an editor that reads keys from in and echoes to out (both the terminal), keeping
// its lines in h (nil: in memory, for this session only).
func New(in io.Reader, out io.Writer, h History) *Editor {
	if h == nil {
		h = NewHistory("", 0)
	}
	e := &Editor{in: &ctrlC{r: in}, fd: -1, hist: h}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		e.fd = int(f.Fd())
	}
	e.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{e.in, out}, "")
	e.t.History = editorHistory{e}
	return e
}

// Read reads one message: a line, a """ string over several lines (until a line ending in
// """), or the lines of one paste followed by Enter. prompt starts the first line, more the
// ones after it. At the end of the input (Ctrl-D at an empty line) it returns io.EOF; at
// Ctrl-C, an *Interrupted.
func (e *Editor) Read(prompt, more string) (string, error) {
	if e.fd >= 0 {
		st, err := term.MakeRaw(e.fd)
		if err != nil {
			return "", err
		}
		defer term.Restore(e.fd, st)
		if w, h, err := term.GetSize(e.fd); err == nil {
			e.t.SetSize(w, h)
		}
		// Bracketed paste: the terminal marks pasted text, so that a pasted newline does not send
		// the message half-written.
		e.t.SetBracketedPasteMode(true)
		defer e.t.SetBracketedPasteMode(false)
	}
	var lines []string
	quoted := false // inside a """ string
	e.t.SetPrompt(prompt)
	for {
		line, err := e.t.ReadLine()
		if e.in.hit {
			e.in.hit = false
			return "", &Interrupted{Line: strings.Join(append(lines, line), "\n")}
		}
		pasted := errors.Is(err, term.ErrPasteIndicator)
		if err != nil && !pasted {
			return "", err
		}
		switch {
		case !quoted && len(lines) == 0 && strings.HasPrefix(line, `"""`):
			rest := line[3:]
			if len(rest) >= 3 && strings.HasSuffix(rest, `"""`) {
				return strings.TrimSuffix(rest, `"""`), nil
			}
			quoted = true
			if rest != "" {
				lines = append(lines, rest)
			}
		case quoted:
			if s, ok := strings.CutSuffix(line, `"""`); ok {
				return strings.Join(append(lines, s), "\n"), nil
			}
			lines = append(lines, line)
		case pasted:
			lines = append(lines, line)
		default:
			// A paste that ended with a newline leaves the message's end to the Enter after it.
			return strings.TrimRight(strings.Join(append(lines, line), "\n"), "\n"), nil
		}
		e.t.SetPrompt(more)
	}
}

// ctrlC passes the keys through, turning Ctrl-C into Enter (so that x/term's ReadLine returns,
// with the line typed so far) and noting that it was pressed. A Ctrl-C is only ever the first
// byte a Read returns: the bytes before it come back from one Read, and the key from the next,
// so that every line x/term completes before it is not taken for the interrupted one.
type ctrlC struct {
	r       io.Reader
	pending []byte // read but not passed on yet
	hit     bool
}

func (c *ctrlC) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		n, err := c.r.Read(p)
		if n == 0 {
			return 0, err
		}
		c.pending = append(c.pending[:0], p[:n]...)
	}
	b := c.pending
	if b[0] == 3 {
		c.hit = true
		c.pending = b[1:]
		p[0] = '\r'
		return 1, nil
	}
	n := len(b)
	if i := bytes.IndexByte(b, 3); i > 0 {
		n = i
	}
	n = copy(p, b[:n])
	c.pending = b[n:]
	return n, nil
}

// editorHistory is x/term's view of the editor's history: an interrupted line is not kept, nor
// an empty one, nor one the same as the last.
type editorHistory struct{ e *Editor }

func (h editorHistory) Add(entry string) {
	if h.e.in.hit || strings.TrimSpace(entry) == "" || (h.e.hist.Len() > 0 && h.e.hist.At(0) == entry) {
		return
	}
	h.e.hist.Add(entry)
}

func (h editorHistory) Len() int          { return h.e.hist.Len() }
func (h editorHistory) At(idx int) string { return h.e.hist.At(idx) }
