package tokenizer

import (
	"fmt"
)

// builder assembles a Tokenizer from a vocabulary, added tokens and merges, from either file format.
type builder struct {
	t      *Tokenizer
	pieces map[string]int32 // the model's own pieces, which encoding looks up (added tokens excluded)
}

func newBuilder(size int) *builder {
	return &builder{
		t: &Tokenizer{
			vocab: make([]string, size), types: make([]TokenType, size), ids: make(map[string]int32, size),
			BOS: -1, EOS: -1, Pad: -1, unknown: -1,
		},
		pieces: make(map[string]int32, size),
	}
}

func (b *builder) setPiece(id int32, piece string, typ TokenType) error {
	t := b.t
	if id < 0 || int(id) >= len(t.vocab) {
		return fmt.Errorf("token %q has id %d, outside the vocabulary of %d", piece, id, len(t.vocab))
	}
	if t.types[id] != 0 && t.vocab[id] != piece {
		return fmt.Errorf("id %d is given to both %q and %q", id, t.vocab[id], piece)
	}
	t.vocab[id], t.types[id] = piece, typ
	t.ids[piece] = id
	b.pieces[piece] = id
	return nil
}

func (b *builder) addToken(a AddedToken) error {
	t := b.t
	if a.ID < 0 || int(a.ID) >= len(t.vocab) {
		return fmt.Errorf("added token %q has id %d, outside the vocabulary of %d", a.Content, a.ID, len(t.vocab))
	}
	if a.Content == "" {
		return fmt.Errorf("added token %d is empty", a.ID)
	}
	typ := TypeUserDefined
	if a.Special {
		typ = TypeControl
	}
	if t.types[a.ID] != 0 && t.vocab[a.ID] != a.Content {
		return fmt.Errorf("id %d is given to both %q and added token %q", a.ID, t.vocab[a.ID], a.Content)
	}
	t.vocab[a.ID], t.types[a.ID] = a.Content, typ
	t.ids[a.Content] = a.ID
	t.added.add(a)
	return nil
}

// finish fills unused ids, indexes the byte tokens and builds the merge table. A merge's rank is
// its index in merges, or ranks[i] when ranks is given.
func (b *builder) finish(merges [][2]string, ranks []int32) error {
	t := b.t
	for id := range t.vocab {
		if t.types[id] == 0 {
			t.vocab[id], t.types[id] = fmt.Sprintf("[PAD%d]", id), TypeUnused
		}
	}
	if t.kind == ByteLevelBPE {
		for c := range 256 {
			id, ok := b.pieces[string(byteToRune[c])]
			if !ok {
				return fmt.Errorf("the byte-level vocabulary lacks the token for byte 0x%02X", c)
			}
			t.byteIDs[c] = id
		}
	} else {
		for c := range 256 {
			t.byteTokens[c] = -1
			if id, ok := b.pieces[fmt.Sprintf("<0x%02X>", c)]; ok {
				t.byteTokens[c] = id
				t.types[id] = TypeByte
			}
		}
	}
	t.merges = make(map[uint64]merge, len(merges))
	for rank, m := range merges {
		left, ok1 := b.pieces[m[0]]
		right, ok2 := b.pieces[m[1]]
		result, ok3 := b.pieces[m[0]+m[1]]
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("merge %d (%q %q) names a token that is not in the vocabulary", rank, m[0], m[1])
		}
		r := int32(rank)
		if ranks != nil {
			r = ranks[rank]
		}
		key := pairKey(left, right)
		if _, dup := t.merges[key]; !dup { // the first (lowest-rank) rule for a pair is the one that applies
			t.merges[key] = merge{rank: r, id: result}
		}
	}
	t.pieces = b.pieces
	t.rules = merges
	return nil
}
