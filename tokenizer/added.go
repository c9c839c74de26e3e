package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in raw text before any other processing, as HuggingFace's
// "added_tokens": special tokens (<|im_start|>, image tokens) and user-defined ones (<think>).
type AddedToken struct {
	ID      int32
	Content string
	Special bool // a control token: skipped by Decode with skipSpecial, not parsed when SplitSpecial is off
	LStrip  bool // the match also takes the whitespace on its left
	RStrip  bool // ... and on its right
	// SingleWord matches only where the token is not inside a word.
	SingleWord bool
}

// matcher finds added tokens in text, leftmost first and longest among those starting at the same
// place (HuggingFace's LeftmostLongest). A byte trie keeps this cheap with many tokens: 16384
// image tokens cost one table lookup per byte of text that cannot start a token.
type matcher struct {
	root   trieNode
	first  [256]bool
	tokens []AddedToken
}

type trieNode struct {
	children map[byte]*trieNode
	token    int // index in tokens, or -1
}

func (m *matcher) add(t AddedToken) {
	if t.Content == "" {
		return
	}
	n := &m.root
	for i := 0; i < len(t.Content); i++ {
		c := t.Content[i]
		if n.children == nil {
			n.children = map[byte]*trieNode{}
		}
		child, ok := n.children[c]
		if !ok {
			child = &trieNode{token: -1}
			n.children[c] = child
		}
		n = child
	}
	if n.token >= 0 {
		m.tokens[n.token] = t // a later definition of the same content wins, as in HuggingFace
		return
	}
	n.token = len(m.tokens)
	m.tokens = append(m.tokens, t)
	m.first[t.Content[0]] = true
}

func (m *matcher) empty() bool { return len(m.tokens) == 0 }

// next finds the first added token in text[from:]; start and end delimit the text it consumes
// (whitespace included for LStrip/RStrip tokens). ok is false when there is none.
func (m *matcher) next(text string, from int, special bool) (start, end int, tok AddedToken, ok bool) {
	for i := from; i < len(text); i++ {
		if !m.first[text[i]] {
			continue
		}
		n, best := &m.root, -1
		bestEnd := 0
		for j := i; j < len(text) && n.children != nil; j++ {
			n = n.children[text[j]]
			if n == nil {
				break
			}
			if n.token >= 0 && (special || !m.tokens[n.token].Special) {
				best, bestEnd = n.token, j+1
			}
		}
		if best < 0 {
			continue
		}
		t := m.tokens[best]
		if t.SingleWord && (isWordBefore(text, i) || isWordAfter(text, bestEnd)) {
			continue
		}
		start, end = i, bestEnd
		if t.LStrip {
			for start > from {
				r, size := utf8.DecodeLastRuneInString(text[from:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= size
			}
		}
		if t.RStrip {
			for end < len(text) {
				r, size := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += size
			}
		}
		return start, end, t, true
	}
	return 0, 0, AddedToken{}, false
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func isWordBefore(text string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return i > 0 && isWordRune(r)
}

func isWordAfter(text string, i int) bool {
	r, _ := utf8.DecodeRuneInString(text[i:])
	return i < len(text) && isWordRune(r)
}
