package convert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Token types as llama.cpp records them in tokenizer.ggml.token_type.
const (
	tokenNormal      = 1
	tokenControl     = 3
	tokenUserDefined = 4
	tokenUnused      = 5
)

// The pre-tokenizer regexes of the supported families, as their tokenizer.json files give them;
// they decide the tokenizer.ggml.pre name that llama.cpp (and toklip's tokenizer) keys on.
var preTokenizers = map[string]string{
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      "qwen2",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "llama-bpe",
}

type hfTokenizer struct {
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int    `json:"vocab"`
		Merges []json.RawMessage `json:"merges"` // "a b" strings, or ["a","b"] pairs in newer files
	} `json:"model"`
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
}

type hfTokenizerConfig struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	Pad          json.RawMessage `json:"pad_token"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// vocabKV reads tokenizer.json (and tokenizer_config.json when present) from dir and returns the
// tokenizer.* keys of llama.cpp's GGUF layout, for a vocabulary padded to size.
func vocabKV(dir string, size int, cfg hfConfig) (map[string]any, error) {
	var tok hfTokenizer
	if err := readJSON(filepath.Join(dir, "tokenizer.json"), &tok); err != nil {
		return nil, err
	}
	if tok.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer.json: model type %q is not supported (byte-level BPE only)", tok.Model.Type)
	}
	tokens := make([]string, size)
	types := make([]int32, size)
	set := func(id int, s string, typ int32) error {
		if id < 0 || id >= size {
			return fmt.Errorf("tokenizer.json: token %q has id %d, outside the model's vocabulary of %d", s, id, size)
		}
		if types[id] != 0 && tokens[id] != s {
			return fmt.Errorf("tokenizer.json: id %d is given to both %q and %q", id, tokens[id], s)
		}
		tokens[id], types[id] = s, typ
		return nil
	}
	for s, id := range tok.Model.Vocab {
		if err := set(id, s, tokenNormal); err != nil {
			return nil, err
		}
	}
	ids := map[string]int{}
	for _, a := range tok.AddedTokens {
		typ := int32(tokenUserDefined)
		if a.Special {
			typ = tokenControl
		}
		if err := set(a.ID, a.Content, typ); err != nil {
			return nil, err
		}
		ids[a.Content] = a.ID
	}
	for id := range tokens {
		if types[id] == 0 { // rows of the embedding that no token uses
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokenUnused
		}
		ids[tokens[id]] = id
	}

	merges := make([]string, len(tok.Model.Merges))
	for i, raw := range tok.Model.Merges {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			merges[i] = s
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges[i] = pair[0] + " " + pair[1]
		default:
			return nil, fmt.Errorf("tokenizer.json: merge %d is neither \"a b\" nor [\"a\", \"b\"]", i)
		}
	}

	kv := map[string]any{
		"tokenizer.ggml.model":      "gpt2",
		"tokenizer.ggml.pre":        preTokenizerName(tok.PreTokenizer, cfg),
		"tokenizer.ggml.tokens":     tokens,
		"tokenizer.ggml.token_type": types,
		"tokenizer.ggml.merges":     merges,
	}

	var tc hfTokenizerConfig
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &tc); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	special := func(raw json.RawMessage, fallback *int, key string) error {
		if name := tokenName(raw); name != "" {
			id, ok := ids[name]
			if !ok {
				return fmt.Errorf("tokenizer_config.json: %s %q is not in the vocabulary", key, name)
			}
			kv["tokenizer.ggml."+key+"_id"] = uint32(id)
		} else if fallback != nil {
			kv["tokenizer.ggml."+key+"_id"] = uint32(*fallback)
		}
		return nil
	}
	if err := special(tc.BOS, cfg.BOSTokenID, "bos_token"); err != nil {
		return nil, err
	}
	if err := special(tc.EOS, cfg.EOSTokenID, "eos_token"); err != nil {
		return nil, err
	}
	if err := special(tc.Pad, nil, "padding_token"); err != nil {
		return nil, err
	}
	addBOS := tc.AddBOS != nil && *tc.AddBOS || tc.AddBOS == nil && templatePrependsBOS(tok.PostProcessor)
	kv["tokenizer.ggml.add_bos_token"] = addBOS
	kv["tokenizer.ggml.add_eos_token"] = tc.AddEOS != nil && *tc.AddEOS
	if t := chatTemplate(tc.ChatTemplate); t != "" {
		kv["tokenizer.chat_template"] = t
	}
	return kv, nil
}

// preTokenizerName names the pre-tokenizer by its regex; an unknown one falls back to the
// architecture's usual pre-tokenizer.
func preTokenizerName(raw json.RawMessage, cfg hfConfig) string {
	for re, name := range preTokenizers {
		enc, _ := json.Marshal(re)
		if strings.Contains(string(raw), string(enc[1:len(enc)-1])) {
			return name
		}
	}
	if cfg.arch() == "qwen2" {
		return "qwen2"
	}
	return "llama-bpe"
}

// tokenName reads a special-token entry: a string, or an object with "content".
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

// templatePrependsBOS reports whether tokenizer.json's post-processor puts a special token
// before the sequence (Llama-3 adds <|begin_of_text|> this way, with no add_bos_token key).
func templatePrependsBOS(raw json.RawMessage) bool {
	var pp struct {
		Type       string            `json:"type"`
		Single     []json.RawMessage `json:"single"`
		Processors []json.RawMessage `json:"processors"`
	}
	if json.Unmarshal(raw, &pp) != nil {
		return false
	}
	if pp.Type == "Sequence" {
		for _, p := range pp.Processors {
			if templatePrependsBOS(p) {
				return true
			}
		}
		return false
	}
	return pp.Type == "TemplateProcessing" && len(pp.Single) > 0 && strings.Contains(string(pp.Single[0]), "SpecialToken")
}

// chatTemplate reads tokenizer_config.json's chat_template: a string, or a list of named
// templates of which "default" is taken.
func chatTemplate(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var named []struct{ Name, Template string }
	json.Unmarshal(raw, &named)
	for _, t := range named {
		if t.Name == "default" {
			return t.Template
		}
	}
	return ""
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}
