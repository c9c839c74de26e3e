package lineedit

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keys returns the keystrokes one Read at a time, as a terminal delivers them.
type keys []string

func (k *keys) Read(p []byte) (int, error) {
	if len(*k) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*k)[0])
	(*k)[0] = (*k)[0][n:]
	if (*k)[0] == "" {
		*k = (*k)[1:]
	}
	return n, nil
}

const (
	up        = "\x1b[A"
	left      = "\x1b[D"
	ctrlA     = "\x01"
	keyCtrlC  = "\x03"
	ctrlD     = "\x04"
	ctrlK     = "\x0b"
	ctrlU     = "\x15"
	ctrlW     = "\x17"
	pasteOn   = "\x1b[200~"
	pasteOff  = "\x1b[201~"
	enter     = "\r"
	backspace = "\x7f"
)

// read reads every message of a session until its end, and what ended each (nil, or the error).
func read(t *testing.T, e *Editor) (msgs []string, errs []error) {
	t.Helper()
	for range 100 {
		m, err := e.Read(">>> ", "... ")
		if errors.Is(err, io.EOF) {
			return msgs, errs
		}
		msgs, errs = append(msgs, m), append(errs, err)
	}
	t.Fatal("no end of input")
	return nil, nil
}

func TestEditing(t *testing.T) {
	in := keys{
		"hello" + enter,
		up + enter, // the last line again
		"world" + ctrlA + "big " + enter,
		"drop this" + ctrlU + "kept" + enter,
		"abc def" + ctrlW + "xyz" + enter,
		"abcdef" + left + left + left + ctrlK + enter,
		"typed, then" + keyCtrlC, // dropped
		keyCtrlC,                 // at an empty line
		`"""first` + enter + "second" + enter + `third"""` + enter,
		`"""one line"""` + enter,
		pasteOn + "pasted one\rpasted two\r" + pasteOff + enter,
		pasteOn + "pasted three" + pasteOff + " and typed" + enter,
		"x" + backspace + "y" + enter,
		ctrlD,
	}
	var out strings.Builder
	e := New(&in, &out, nil)
	msgs, errs := read(t, e)
	want := []string{"hello", "hello", "big world", "kept", "abc xyz", "abc", "", "",
		"first\nsecond\nthird", "one line", "pasted one\npasted two", "pasted three and typed", "y"}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages %q, want %d", len(msgs), msgs, len(want))
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("message %d = %q, want %q", i, msgs[i], want[i])
		}
	}
	for i, err := range errs {
		var ir *Interrupted
		isInt := errors.As(err, &ir)
		if wantInt := i == 6 || i == 7; isInt != wantInt {
			t.Errorf("message %d: error %v", i, err)
		}
		if i == 6 && ir.Line != "typed, then" {
			t.Errorf("interrupted line %q", ir.Line)
		}
		if i == 7 && ir.Line != "" {
			t.Errorf("interrupted empty line %q", ir.Line)
		}
	}
	if !strings.Contains(out.String(), ">>> ") || !strings.Contains(out.String(), "... ") {
		t.Errorf("prompts not echoed: %q", out.String())
	}
}

func TestHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "history")
	in := keys{"first" + enter, "second" + enter, "second" + enter, "interrupted" + keyCtrlC, ctrlD}
	e := New(&in, io.Discard, NewHistory(path, 0))
	read(t, e)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "first\nsecond\n" {
		t.Fatalf("history file %q, %v", b, err)
	}
	// A new session goes back through the old one's lines.
	in = keys{up + up + enter, ctrlD}
	e = New(&in, io.Discard, NewHistory(path, 0))
	if msgs, _ := read(t, e); len(msgs) != 1 || msgs[0] != "first" {
		t.Fatalf("Up twice in a new session: %q", msgs)
	}
	h := NewHistory(path, 2)
	for _, l := range []string{"a", "b", "c", "d", "e"} {
		h.Add(l)
	}
	if h.Len() != 2 || h.At(0) != "e" || h.At(1) != "d" {
		t.Fatalf("bounded history: len %d", h.Len())
	}
}

func ExampleEditor_Read() {
	in := keys{`"""a message` + "\r" + `over two lines"""` + "\r"}
	e := New(&in, io.Discard, nil)
	msg, _ := e.Read(">>> ", "... ")
	os.Stdout.WriteString(msg + "\n")
	// Output:
	// a message
	// over two lines
}
