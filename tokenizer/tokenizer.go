package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is the tokenization algorithm of a vocabulary.
type Kind int

const (
	// ByteLevelBPE is GPT-2 style BPE over bytes, after a regex pre-tokenizer: Qwen2/2.5/3, Llama 3.
	ByteLevelBPE Kind = iota
	// SentencePieceBPE is BPE over characters with spaces written "▁" and unknown characters
	// spelled as <0xXX> byte tokens: Gemma (the SigLIP2 text tower), Llama 2.
	SentencePieceBPE
)

// TokenType is a token's type as GGUF records it in tokenizer.ggml.token_type.
type TokenType int32

const (
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// Tokenizer turns text into token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	kind   Kind
	vocab  []string // id -> piece, in the model's alphabet (byte-level characters, or "▁" for space)
	types  []TokenType
	ids    map[string]int32 // pieces and added tokens, for ID
	pieces map[string]int32 // the model's own pieces, which encoding looks up
	merges map[uint64]merge
	rules  [][2]string // the merges in rank order, for writing GGUF
	scores []float32   // SentencePiece scores, when the vocabulary came with them
	added  matcher

	// byte-level BPE
	split        *splitter
	nfc          bool
	ignoreMerges bool       // a word that is itself a token is not merged up from bytes (Llama 3)
	byteIDs      [256]int32 // the one-byte token of each byte

	// SentencePiece BPE
	spaceMarker  bool // spaces are written as "▁"
	prependSpace bool // "▁" is put before the text
	stripSpace   bool // the decoder drops one leading space
	byteFallback bool
	fuseUnknown  bool
	unknown      int32      // -1 when the vocabulary has no unknown token
	byteTokens   [256]int32 // <0xXX> tokens, -1 where the vocabulary has none

	BOS, EOS, Pad  int32 // -1 when absent
	AddBOS, AddEOS bool
	ChatTemplate   string

	cache wordCache
}

// EncodeOptions change how text is encoded. The zero value encodes text as HuggingFace's
// tokenizer.encode(text, add_special_tokens=False) does.
type EncodeOptions struct {
	AddSpecial   bool // add BOS and EOS where the tokenizer's files ask for them
	SplitSpecial bool // treat special tokens written in the text as plain text (for untrusted input)
}

// Kind is the tokenization algorithm.
func (t *Tokenizer) Kind() Kind { return t.kind }

// VocabSize is the number of ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// ID returns the id of a token given as text (an added token's content, or a piece).
func (t *Tokenizer) ID(token string) (int32, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// Piece returns a token's piece as the vocabulary spells it, and its type.
func (t *Tokenizer) Piece(id int32) (string, TokenType) {
	if id < 0 || int(id) >= len(t.vocab) {
		return "", 0
	}
	return t.vocab[id], t.types[id]
}

// Encode returns the token ids of text.
func (t *Tokenizer) Encode(text string, o EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/3+2)
	if o.AddSpecial && t.AddBOS && t.BOS >= 0 {
		out = append(out, t.BOS)
	}
	pos, first := 0, true
	for pos <= len(text) {
		start, end, tok, ok := t.added.next(text, pos, !o.SplitSpecial)
		if !ok {
			start = len(text)
		}
		if start > pos {
			out = t.encodeSegment(out, text[pos:start], first)
		}
		first = false
		if !ok {
			break
		}
		out = append(out, tok.ID)
		pos = end
	}
	if o.AddSpecial && t.AddEOS && t.EOS >= 0 {
		out = append(out, t.EOS)
	}
	return out
}

// encodeSegment encodes text that holds no added token. first says the segment starts the text.
func (t *Tokenizer) encodeSegment(out []int32, s string, first bool) []int32 {
	if t.kind == SentencePieceBPE {
		return t.encodeSentencePiece(out, s, first)
	}
	if t.nfc {
		s = NFC(s)
	}
	t.split.split(s, func(word string) {
		out = append(out, t.encodeWord(word)...)
	})
	return out
}

func (t *Tokenizer) encodeWord(word string) []int32 {
	if ids, ok := t.cache.get(word); ok {
		return ids
	}
	var ids []int32
	if id, ok := t.pieces[byteLevel(word)]; ok && t.ignoreMerges {
		ids = []int32{id}
	} else {
		ids = make([]int32, len(word))
		for i := 0; i < len(word); i++ {
			ids[i] = t.byteIDs[word[i]]
		}
		ids = bpe(t.merges, ids)
	}
	t.cache.put(word, ids)
	return ids
}

func (t *Tokenizer) encodeSentencePiece(out []int32, s string, first bool) []int32 {
	if t.spaceMarker {
		s = strings.ReplaceAll(s, " ", "▁")
	}
	if t.prependSpace && first {
		s = "▁" + s
	}
	syms := make([]int32, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if id, ok := t.pieces[s[i:i+size]]; ok && !(r == utf8.RuneError && size == 1) {
			syms = append(syms, id)
		} else if t.byteFallback && t.hasBytes(s[i:i+size]) {
			for j := i; j < i+size; j++ {
				syms = append(syms, t.byteTokens[s[j]])
			}
		} else if t.unknown >= 0 && !(t.fuseUnknown && len(syms) > 0 && syms[len(syms)-1] == t.unknown) {
			syms = append(syms, t.unknown)
		}
		i += size
	}
	return append(out, bpe(t.merges, syms)...)
}

// hasBytes reports whether every byte of a character has a <0xXX> token, as byte fallback needs.
func (t *Tokenizer) hasBytes(char string) bool {
	for i := 0; i < len(char); i++ {
		if t.byteTokens[char[i]] < 0 {
			return false
		}
	}
	return true
}

// AddTokens appends added tokens to the vocabulary, with the ids that follow it, and returns
// the first id. It extends a tokenizer before use (an LLM's image tokens, say); it must not run
// while other goroutines encode.
func (t *Tokenizer) AddTokens(contents []string, special bool) (int32, error) {
	first := int32(len(t.vocab))
	for i, c := range contents {
		if c == "" {
			return 0, fmt.Errorf("add tokens: token %d is empty", i)
		}
		if id, dup := t.ids[c]; dup {
			return 0, fmt.Errorf("add tokens: %q is already token %d", c, id)
		}
	}
	typ := TypeUserDefined
	if special {
		typ = TypeControl
	}
	for i, c := range contents {
		id := first + int32(i)
		t.vocab = append(t.vocab, c)
		t.types = append(t.types, typ)
		t.ids[c] = id
		t.added.add(AddedToken{ID: id, Content: c, Special: special})
	}
	return first, nil
}

// Decode returns the text of ids. Bytes that do not form UTF-8 (a sequence cut by the ids'
// end, say) become U+FFFD. skipSpecial drops control tokens. Ids outside the vocabulary are
// dropped: they cannot come from the model.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	var b []byte
	for _, id := range ids {
		b = t.appendPiece(b, id, skipSpecial, len(b) == 0)
	}
	return toValidUTF8(b)
}

// TokenBytes is what token id adds to a decoded text that it continues: its raw bytes, which may
// be part of a UTF-8 character; none for control tokens.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	return t.appendPiece(nil, id, true, false)
}

// appendPiece appends the bytes of one token; first says nothing has been decoded before it (a
// SentencePiece decoder drops the leading space that encoding added).
func (t *Tokenizer) appendPiece(dst []byte, id int32, skipSpecial, first bool) []byte {
	if id < 0 || int(id) >= len(t.vocab) {
		return dst
	}
	typ := t.types[id]
	if typ == TypeControl || typ == TypeUnknown && t.kind == ByteLevelBPE {
		if skipSpecial {
			return dst
		}
		return append(dst, t.vocab[id]...)
	}
	if typ == TypeUserDefined {
		return append(dst, t.vocab[id]...)
	}
	piece := t.vocab[id]
	if t.kind == ByteLevelBPE {
		return fromByteLevel(dst, piece)
	}
	if typ == TypeByte {
		var v byte
		if _, err := fmt.Sscanf(piece, "<0x%02X>", &v); err == nil {
			return append(dst, v)
		}
	}
	if t.spaceMarker {
		piece = strings.ReplaceAll(piece, "▁", " ")
	}
	if first && t.stripSpace {
		piece = strings.TrimPrefix(piece, " ")
	}
	return append(dst, piece...)
}

// toValidUTF8 replaces every byte that is not part of a UTF-8 character with U+FFFD.
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		sb.WriteRune(r)
		b = b[size:]
	}
	return sb.String()
}
