package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The parts of HuggingFace's tokenizer.json that the supported tokenizers use. Anything else in
// a file is an error rather than silently different ids.
type jsonFile struct {
	AddedTokens []struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		Special    bool   `json:"special"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
	} `json:"added_tokens"`
	Normalizer    *jsonStep `json:"normalizer"`
	PreTokenizer  *jsonStep `json:"pre_tokenizer"`
	PostProcessor *jsonStep `json:"post_processor"`
	Decoder       *jsonStep `json:"decoder"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int32  `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		IgnoreMerges bool              `json:"ignore_merges"`
		ByteFallback bool              `json:"byte_fallback"`
		FuseUnk      bool              `json:"fuse_unk"`
		UnkToken     *string           `json:"unk_token"`
		Dropout      *float64          `json:"dropout"`
		Prefix       *string           `json:"continuing_subword_prefix"`
		Suffix       *string           `json:"end_of_word_suffix"`
	} `json:"model"`
}

// jsonStep is one normalizer, pre-tokenizer, post-processor or decoder, possibly a Sequence.
type jsonStep struct {
	Type          string      `json:"type"`
	Steps         []*jsonStep `json:"normalizers"`
	PreTokenizers []*jsonStep `json:"pretokenizers"`
	Processors    []*jsonStep `json:"processors"`
	Decoders      []*jsonStep `json:"decoders"`
	Pattern       struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content       string            `json:"content"`
	Prepend       string            `json:"prepend"`
	Behavior      string            `json:"behavior"`
	Invert        bool              `json:"invert"`
	UseRegex      *bool             `json:"use_regex"`
	AddPrefix     bool              `json:"add_prefix_space"`
	Replacement   string            `json:"replacement"`
	PrependScheme string            `json:"prepend_scheme"`
	Split         *bool             `json:"split"`
	Start         int               `json:"start"`
	Single        []json.RawMessage `json:"single"`
}

// maxIDGap is how many ids a tokenizer.json may leave unused.
const maxIDGap = 1 << 16

// flatten lists the steps of a Sequence, or the step itself.
func (s *jsonStep) flatten() []*jsonStep {
	if s == nil {
		return nil
	}
	var inner []*jsonStep
	switch {
	case s.Steps != nil:
		inner = s.Steps
	case s.PreTokenizers != nil:
		inner = s.PreTokenizers
	case s.Processors != nil:
		inner = s.Processors
	case s.Decoders != nil:
		inner = s.Decoders
	default:
		return []*jsonStep{s}
	}
	var out []*jsonStep
	for _, st := range inner {
		out = append(out, st.flatten()...)
	}
	return out
}

type jsonConfig struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	Pad          json.RawMessage `json:"pad_token"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// FromJSON loads a HuggingFace tokenizer.json, and the tokenizer_config.json beside it if there
// is one (BOS/EOS tokens, whether to add them, the chat template).
func FromJSON(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTokenizerJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if data, err := os.ReadFile(cfgPath); err == nil {
		if err := t.parseConfig(data); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return t, nil
}

// ParseJSON reads a tokenizer.json from its bytes, and a tokenizer_config.json from config
// (nil when there is none). Any bytes are safe to give it: what is not a supported tokenizer is
// an error, in time and memory proportional to the input.
func ParseJSON(data, config []byte) (*Tokenizer, error) {
	t, err := parseTokenizerJSON(data)
	if err != nil {
		return nil, err
	}
	if config != nil {
		if err := t.parseConfig(config); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	return t, nil
}

func parseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var f jsonFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return fromJSONFile(&f)
}

func (t *Tokenizer) parseConfig(data []byte) error {
	var c jsonConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	return t.applyConfig(&c)
}

func fromJSONFile(f *jsonFile) (*Tokenizer, error) {
	m := &f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (BPE only)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 || m.Prefix != nil && *m.Prefix != "" || m.Suffix != nil && *m.Suffix != "" {
		return nil, errors.New("BPE dropout and subword prefixes/suffixes are not supported")
	}
	size := int32(0)
	for _, id := range m.Vocab {
		size = max(size, id+1)
	}
	for _, a := range f.AddedTokens {
		size = max(size, a.ID+1)
	}
	// Ids may leave gaps (unused ids), but the vocabulary is allocated by the highest id: a small
	// file must not name id 2^31-1 and make toklip allocate gigabytes.
	if limit := len(m.Vocab) + len(f.AddedTokens) + maxIDGap; int(size) > limit {
		return nil, fmt.Errorf("the highest token id is %d, for %d tokens: ids leave more than %d unused", size-1, len(m.Vocab)+len(f.AddedTokens), maxIDGap)
	}
	b := newBuilder(int(size))
	for piece, id := range m.Vocab {
		if err := b.setPiece(id, piece, TypeNormal); err != nil {
			return nil, err
		}
	}
	for _, a := range f.AddedTokens {
		if err := b.addToken(AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, LStrip: a.LStrip, RStrip: a.RStrip, SingleWord: a.SingleWord}); err != nil {
			return nil, err
		}
	}
	t := b.t
	t.ignoreMerges = m.IgnoreMerges
	t.byteFallback = m.ByteFallback
	t.fuseUnknown = m.FuseUnk
	if m.UnkToken != nil {
		id, ok := t.ids[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unknown = id
	}
	pattern, err := t.readPipeline(f)
	if err != nil {
		return nil, err
	}
	merges := make([][2]string, len(m.Merges))
	for i, raw := range m.Merges {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, s)
			}
			merges[i] = [2]string{parts[0], parts[1]}
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges[i] = [2]string{pair[0], pair[1]}
		default:
			return nil, fmt.Errorf("merge %d is neither \"a b\" nor [\"a\", \"b\"]", i)
		}
	}
	if err := b.finish(merges, nil); err != nil {
		return nil, err
	}
	// The regex last: it is the costly part (its classes are written out and compiled), and a
	// file that fails any other check should fail fast.
	if pattern != "" {
		if t.split, err = newSplitter(pattern); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// readPipeline reads the normalizer, pre-tokenizer and decoder, which decide the kind, and
// returns the pre-tokenizer's regex ("" for none), which the caller compiles.
func (t *Tokenizer) readPipeline(f *jsonFile) (pattern string, err error) {
	t.kind = SentencePieceBPE
	for _, st := range f.PreTokenizer.flatten() {
		switch st.Type {
		case "Split":
			if st.Pattern.Regex == nil || st.Behavior != "Isolated" || st.Invert {
				return "", fmt.Errorf("pre-tokenizer Split: only an Isolated, non-inverted regex is supported")
			}
			if pattern != "" {
				return "", errors.New("pre-tokenizer: only one splitting step is supported")
			}
			pattern = *st.Pattern.Regex
		case "ByteLevel":
			t.kind = ByteLevelBPE
			if st.AddPrefix {
				return "", errors.New("pre-tokenizer ByteLevel with add_prefix_space is not supported")
			}
			if st.UseRegex == nil || *st.UseRegex {
				if pattern != "" {
					return "", errors.New("pre-tokenizer: a Split and a ByteLevel that also splits")
				}
				pattern = namedPreTokenizers["gpt-2"]
			}
		case "Metaspace":
			if st.Replacement != "▁" || st.Split != nil && *st.Split {
				return "", errors.New("pre-tokenizer Metaspace: only replacement \"▁\" without splitting is supported")
			}
			t.spaceMarker = true
			t.prependSpace = st.PrependScheme == "first" || st.PrependScheme == "always"
		default:
			return "", fmt.Errorf("pre-tokenizer %q is not supported", st.Type)
		}
	}
	if t.kind == ByteLevelBPE && pattern == "" {
		return "", errors.New("a byte-level tokenizer needs a splitting pre-tokenizer")
	}
	if pattern != "" {
		if _, err := translatePattern(pattern); err != nil { // compiled by the caller, checked now
			return "", err
		}
	}
	for _, st := range f.Normalizer.flatten() {
		switch {
		case st.Type == "NFC":
			t.nfc = true
		case st.Type == "Replace" && st.Pattern.String != nil && *st.Pattern.String == " " && st.Content == "▁":
			t.spaceMarker = true
		case st.Type == "Prepend" && st.Prepend == "▁":
			t.prependSpace = true
		default:
			return "", fmt.Errorf("normalizer %q is not supported", st.Type)
		}
	}
	if t.kind == SentencePieceBPE && t.nfc {
		return "", errors.New("NFC with a SentencePiece vocabulary is not supported")
	}
	for _, st := range f.Decoder.flatten() {
		switch st.Type {
		case "ByteLevel", "ByteFallback", "Fuse", "Replace":
		case "Strip":
			t.stripSpace = st.Content == " " && st.Start == 1
		case "Metaspace":
			t.stripSpace = st.PrependScheme != "never"
		default:
			return "", fmt.Errorf("decoder %q is not supported", st.Type)
		}
	}
	for _, st := range f.PostProcessor.flatten() {
		if st.Type != "TemplateProcessing" || len(st.Single) == 0 {
			continue
		}
		// A special token before the sequence is a BOS added to every encoding; after it, an EOS.
		if name := specialIn(st.Single[0]); name != "" {
			id, ok := t.ids[name]
			if !ok {
				return "", fmt.Errorf("post-processor: special token %q is not in the vocabulary", name)
			}
			t.AddBOS, t.BOS = true, id
		}
		if name := specialIn(st.Single[len(st.Single)-1]); name != "" && len(st.Single) > 1 {
			id, ok := t.ids[name]
			if !ok {
				return "", fmt.Errorf("post-processor: special token %q is not in the vocabulary", name)
			}
			t.AddEOS, t.EOS = true, id
		}
	}
	return pattern, nil
}

func specialIn(raw json.RawMessage) string {
	var item struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	}
	if json.Unmarshal(raw, &item) != nil || item.SpecialToken == nil {
		return ""
	}
	return item.SpecialToken.ID
}

func (t *Tokenizer) applyConfig(c *jsonConfig) error {
	for _, s := range []struct {
		raw json.RawMessage
		id  *int32
		key string
	}{{c.BOS, &t.BOS, "bos_token"}, {c.EOS, &t.EOS, "eos_token"}, {c.Pad, &t.Pad, "pad_token"}} {
		name := tokenName(s.raw)
		if name == "" {
			continue
		}
		id, ok := t.ids[name]
		if !ok {
			return fmt.Errorf("%s %q is not in the vocabulary", s.key, name)
		}
		*s.id = id
	}
	if c.AddBOS != nil {
		t.AddBOS = *c.AddBOS
	}
	if c.AddEOS != nil {
		t.AddEOS = *c.AddEOS
	}
	t.ChatTemplate = chatTemplate(c.ChatTemplate)
	return nil
}

// tokenName reads a special-token entry of tokenizer_config.json: a string or {"content": ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	json.Unmarshal(raw, &o)
	return o.Content
}

// chatTemplate reads chat_template: a string, or a list of named templates ("default" is taken).
func chatTemplate(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var named []struct{ Name, Template string }
	json.Unmarshal(raw, &named)
	for _, n := range named {
		if n.Name == "default" {
			return n.Template
		}
	}
	return ""
}
