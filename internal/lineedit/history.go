package lineedit

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"
)

// History is x/term's: index 0 is the most recent line.
type History = term.History

// DefaultHistoryLines is how many lines a history keeps.
const DefaultHistoryLines = 1000

// FileHistory is the most recent lines, kept in a file (one line each) when it has one.
type FileHistory struct {
	path  string
	max   int
	lines []string // oldest first
}

// NewHistory returns a history of at most max lines (0: DefaultHistoryLines), read from the file
// at path and added to it (path "": in memory only). A file that cannot be read or written
// leaves the history in memory, with a warning: a chat does not fail for its history.
func NewHistory(path string, max int) *FileHistory {
	if max <= 0 {
		max = DefaultHistoryLines
	}
	h := &FileHistory{path: path, max: max}
	if path == "" {
		return h
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return h
	}
	if err != nil {
		slog.Warn("the chat history cannot be read", "err", err)
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		h.push(sc.Text())
	}
	return h
}

func (h *FileHistory) push(line string) {
	h.lines = append(h.lines, line)
	if len(h.lines) > 2*h.max { // trimmed now and then, not at every line
		h.lines = append(h.lines[:0], h.lines[len(h.lines)-h.max:]...)
	}
}

// Add keeps a line, and appends it to the file.
func (h *FileHistory) Add(line string) {
	if strings.ContainsAny(line, "\r\n") {
		return // one line per entry; x/term's lines have none
	}
	h.push(line)
	if h.path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o755); err != nil {
		slog.Warn("the chat history cannot be written", "err", err)
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		slog.Warn("the chat history cannot be written", "err", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		slog.Warn("the chat history cannot be written", "err", err)
	}
}

// Len is the number of lines kept (at most max).
func (h *FileHistory) Len() int { return min(len(h.lines), h.max) }

// At is the line idx places back from the most recent.
func (h *FileHistory) At(idx int) string { return h.lines[len(h.lines)-1-idx] }
