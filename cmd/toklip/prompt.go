package main

import (
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// imageExts are the file name endings of the images toklip reads (visiontok decodes them by
// content; the ending only says which words of a message are meant as images).
var imageExts = []string{".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}

// splitImages takes the image files a message names out of it, as ollama's chat does: a word
// that is the path of an existing file with an image's ending (a path dragged into the
// terminal: quoted, or with its spaces escaped by backslashes) is attached rather than sent as
// text. The other words stay as they were typed.
func splitImages(msg string) (text string, paths []string) {
	var b strings.Builder
	for _, w := range words(msg) {
		if p := w.value; isImagePath(p) {
			paths = append(paths, p)
			continue
		}
		b.WriteString(msg[w.start:w.end])
	}
	if len(paths) == 0 {
		return msg, nil
	}
	return strings.TrimSpace(b.String()), paths // each word took the spaces before it along
}

func isImagePath(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	isImage := false
	for _, e := range imageExts {
		isImage = isImage || ext == e
	}
	if !isImage {
		return false
	}
	st, err := os.Stat(expandHome(p))
	return err == nil && st.Mode().IsRegular()
}

// expandHome reads a leading ~/ as the home folder, as a shell would have.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// unquotePath reads one path as a shell would: quoted in ' or ", or with backslash escapes.
func unquotePath(s string) string {
	ws := words(strings.TrimSpace(s))
	if len(ws) == 1 {
		return expandHome(ws[0].value)
	}
	return expandHome(strings.TrimSpace(s))
}

// word is one word of a message: where it is (with the spaces before it, so that cutting it
// out leaves the rest as typed) and its value with quotes and escapes read.
type word struct {
	start, end int
	value      string
}

// words splits s at unquoted, unescaped white space.
func words(s string) []word {
	var out []word
	i := 0
	for i < len(s) {
		start := i
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
		if i == len(s) {
			break
		}
		var v strings.Builder
		var quote byte
	scan:
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case quote != 0 && c == quote:
				quote = 0
			case quote != 0:
				v.WriteByte(c)
			case c == '\'' || c == '"':
				quote = c
			case c == '\\' && i+1 < len(s):
				i++
				v.WriteByte(s[i])
			case unicode.IsSpace(rune(c)):
				break scan
			default:
				v.WriteByte(c)
			}
		}
		out = append(out, word{start, i, v.String()})
	}
	if n := len(out); n > 0 && out[n-1].end < len(s) {
		out[n-1].end = len(s) // the trailing spaces go with the last word
	}
	return out
}
