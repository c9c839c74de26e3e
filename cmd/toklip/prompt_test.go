package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Image paths in a message are taken out of it as a shell would read them (quoted, escaped);
// every other word, and the message's own spacing and lines, stay as typed.
func TestSplitImages(t *testing.T) {
	dir := t.TempDir()
	spaced := filepath.Join(dir, "my scene.png")
	plain := filepath.Join(dir, "a.JPG")
	for _, p := range []string{spaced, plain, filepath.Join(dir, "notes.txt")} {
		os.WriteFile(p, []byte("x"), 0o644)
	}
	cases := []struct {
		msg, text string
		paths     []string
	}{
		{"'" + spaced + "' Describe the image.", "Describe the image.", []string{spaced}},
		{`"` + spaced + `" and ` + plain, "and", []string{spaced, plain}},
		{filepath.Join(dir, `my\ scene.png`) + " What color?", "What color?", []string{spaced}},
		{"Compare\n  " + plain + "\nwith the last one.", "Compare\nwith the last one.", []string{plain}},
		{"/no/such.png is not here", "/no/such.png is not here", nil},
		{filepath.Join(dir, "notes.txt") + " is no image", filepath.Join(dir, "notes.txt") + " is no image", nil},
		{"a plain message", "a plain message", nil},
	}
	for _, c := range cases {
		text, paths := splitImages(c.msg)
		if text != c.text || !slices.Equal(paths, c.paths) {
			t.Errorf("splitImages(%q) = %q, %q; want %q, %q", c.msg, text, paths, c.text, c.paths)
		}
	}
}
