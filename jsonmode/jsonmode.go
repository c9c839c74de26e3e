// Package jsonmode recognizes prefixes of JSON text byte by byte, so that a sampler can allow
// only the tokens that keep an answer valid JSON (OpenAI's response_format json_object): a
// pushdown automaton over RFC 8259's grammar, small enough to copy for every candidate token.
package jsonmode

type mode uint8

const (
	value   mode = iota // a value is expected
	key                 // an object key (or, in an empty object, its end) is expected
	colon               // the colon after a key
	after               // a value ended inside a container: a comma or the container's end
	str                 // inside a string
	escape              // after a backslash in a string
	hex                 // inside \uXXXX
	number              // inside a number
	literal             // inside true, false or null
	done                // the top-level value ended: only whitespace may follow
)

// Number states, after: '-', '0', other digits, '.', fraction digits, 'e', exponent sign,
// exponent digits.
const (
	nSign uint8 = iota
	nZero
	nInt
	nDot
	nFrac
	nE
	nESign
	nExp
)

// State is where a JSON text is so far. The zero value expects any JSON value; NewObject's
// expects an object. States are values: copy one to try bytes without changing it.
type State struct {
	stack      *frame // the open containers, innermost first; nil at the top level
	depth      int    // how many
	mode       mode
	sub        uint8  // number state, or hex digits left
	lit        string // the rest of a literal
	isKey      bool   // the string being read is an object key
	empty      bool   // the innermost container has no member yet
	objectOnly bool   // the top-level value must be an object
	compact    bool   // no whitespace outside strings
}

// frame is an open container in a State's stack. Frames are never changed once made, so that
// copies of a State share their stacks: a copy costs a pointer, whatever the depth, and opening
// or closing a container costs one small allocation or none (a string of the open brackets,
// copied whole at each push, made a text nested n deep cost n*n/2 bytes to read).
type frame struct {
	open  byte // '{' or '['
	outer *frame
}

// MaxDepth is the deepest nesting of arrays and objects that a State accepts: encoding/json's
// limit (its decoder refuses the 10001st open bracket), so that every text accepted is one that
// Go decodes, and a bound on a State's size, which grows with the depth.
const MaxDepth = 10000

// NewObject is the state before a text whose top-level value must be an object.
func NewObject() State { return State{objectOnly: true} }

// Compact returns s refusing whitespace outside strings from now on. A model that was never
// taught JSON may otherwise spend its whole budget on the whitespace JSON allows.
func (s State) Compact() State {
	s.compact = true
	return s
}

// Complete says whether the text so far is a whole JSON value (whitespace may follow).
func (s State) Complete() bool {
	return s.mode == done || s.mode == number && s.stack == nil && (s.sub == nZero || s.sub == nInt || s.sub == nFrac || s.sub == nExp)
}

// Feed reads bytes, and says whether the text is still a prefix of valid JSON. On false, the
// state is unusable.
func (s *State) Feed(b []byte) bool {
	for _, c := range b {
		if !s.feed(c) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *State) ended() {
	if s.stack == nil {
		s.mode = done
	} else {
		s.mode = after
	}
}

func (s *State) top() byte {
	if s.stack == nil {
		return 0
	}
	return s.stack.open
}

func (s *State) push(c byte) {
	s.stack = &frame{c, s.stack}
	s.depth++
}

func (s *State) pop() {
	s.stack = s.stack.outer
	s.depth--
	s.empty = false
	s.ended()
}

func (s *State) feed(c byte) bool {
	if s.compact && isSpace(c) && s.mode != str {
		return false
	}
	switch s.mode {
	case value:
		return s.startValue(c)
	case key:
		switch {
		case isSpace(c):
		case c == '"':
			s.mode, s.isKey, s.empty = str, true, false
		case c == '}' && s.empty:
			s.pop()
		default:
			return false
		}
	case colon:
		switch {
		case isSpace(c):
		case c == ':':
			s.mode = value
		default:
			return false
		}
	case after:
		switch {
		case isSpace(c):
		case c == ',' && s.top() == '{':
			s.mode = key
		case c == ',' && s.top() == '[':
			s.mode = value
		case c == '}' && s.top() == '{', c == ']' && s.top() == '[':
			s.pop()
		default:
			return false
		}
	case str:
		switch {
		case c == '"':
			if s.isKey {
				s.mode = colon
			} else {
				s.ended()
			}
		case c == '\\':
			s.mode = escape
		case c < 0x20:
			return false // control characters must be escaped
		}
	case escape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.mode = str
		case 'u':
			s.mode, s.sub = hex, 4
		default:
			return false
		}
	case hex:
		if !isDigit(c) && (c|0x20 < 'a' || c|0x20 > 'f') {
			return false
		}
		if s.sub--; s.sub == 0 {
			s.mode = str
		}
	case literal:
		if c != s.lit[0] {
			return false
		}
		if s.lit = s.lit[1:]; s.lit == "" {
			s.ended()
		}
	case number:
		return s.feedNumber(c)
	case done:
		return isSpace(c)
	}
	return true
}

func (s *State) startValue(c byte) bool {
	if isSpace(c) {
		return true
	}
	if s.objectOnly && s.stack == nil && c != '{' {
		return false
	}
	if c == ']' && s.empty && s.top() == '[' {
		s.pop()
		return true
	}
	if (c == '{' || c == '[') && s.depth >= MaxDepth {
		return false
	}
	s.empty = false
	switch {
	case c == '{':
		s.push('{')
		s.mode, s.empty = key, true
	case c == '[':
		s.push('[')
		s.mode, s.empty = value, true
	case c == '"':
		s.mode, s.isKey = str, false
	case c == '-':
		s.mode, s.sub = number, nSign
	case c == '0':
		s.mode, s.sub = number, nZero
	case isDigit(c):
		s.mode, s.sub = number, nInt
	case c == 't':
		s.mode, s.lit = literal, "rue"
	case c == 'f':
		s.mode, s.lit = literal, "alse"
	case c == 'n':
		s.mode, s.lit = literal, "ull"
	default:
		return false
	}
	return true
}

func (s *State) feedNumber(c byte) bool {
	switch s.sub {
	case nSign:
		switch {
		case c == '0':
			s.sub = nZero
		case isDigit(c):
			s.sub = nInt
		default:
			return false
		}
		return true
	case nDot:
		if !isDigit(c) {
			return false
		}
		s.sub = nFrac
		return true
	case nE:
		switch {
		case c == '+' || c == '-':
			s.sub = nESign
		case isDigit(c):
			s.sub = nExp
		default:
			return false
		}
		return true
	case nESign:
		if !isDigit(c) {
			return false
		}
		s.sub = nExp
		return true
	}
	// nZero, nInt, nFrac, nExp: the number may end here.
	switch {
	case isDigit(c) && (s.sub == nInt || s.sub == nFrac || s.sub == nExp):
		return true
	case c == '.' && (s.sub == nZero || s.sub == nInt):
		s.sub = nDot
		return true
	case (c == 'e' || c == 'E') && s.sub != nExp:
		s.sub = nE
		return true
	}
	s.ended() // the byte after the number belongs to what follows it
	return s.feed(c)
}
