package tokenizer

import "unicode/utf8"

// StreamDecoder decodes ids one at a time for streaming, and never splits a character: bytes
// that may still become a character (a UTF-8 sequence cut between two tokens, common for CJK
// and emoji in byte-level vocabularies) are held until the next token completes them.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	pending     []byte
	started     bool // some text has been decoded
}

// NewStreamDecoder starts decoding a new stream of ids.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Add decodes one more id and returns the text it completes, possibly "".
func (d *StreamDecoder) Add(id int32) string {
	before := len(d.pending)
	d.pending = d.t.appendPiece(d.pending, id, d.skipSpecial, !d.started)
	d.started = d.started || len(d.pending) > before
	keep := incompleteTail(d.pending)
	out := toValidUTF8(d.pending[:len(d.pending)-keep])
	d.pending = append(d.pending[:0], d.pending[len(d.pending)-keep:]...)
	return out
}

// Flush returns what is still held, with bytes that never became a character as U+FFFD.
func (d *StreamDecoder) Flush() string {
	out := toValidUTF8(d.pending)
	d.pending = d.pending[:0]
	return out
}

// incompleteTail is the length of the suffix of b that is the start of a UTF-8 character still
// missing bytes (at most 3); 0 when b ends on a character boundary or with bytes that cannot be
// completed.
func incompleteTail(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < 0x80 {
			return 0 // ASCII: the end is a boundary
		}
		if c >= 0xC0 { // a lead byte: incomplete if it announces more bytes than follow
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
