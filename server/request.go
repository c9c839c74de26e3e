package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/options"
)

// decode reads a JSON body strictly: one object, types as declared (a wrong type names its field).
func decode(body io.Reader, v any) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return invalid("", "the request body is empty: send a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return invalid("", "the request body holds more than one JSON value")
	}
	return nil
}

// content is a message's content: a string, or an array of parts.
type content struct {
	Text  *string
	Parts []contentPart
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

func (c *content) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`"`)) {
		return json.Unmarshal(b, &c.Text)
	}
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	return json.Unmarshal(b, &c.Parts)
}

type chatMessage struct {
	Role    string  `json:"role"`
	Content content `json:"content"`
}

// messages turns the request's messages into the engine's, reading each image's bytes (a data
// URL, or a fetch); the engine decodes and encodes them.
func (s *Server) messages(ctx context.Context, in []chatMessage) ([]llm.Message, error) {
	if len(in) == 0 {
		return nil, invalid("messages", "messages must hold at least one message")
	}
	images := 0
	for _, m := range in { // counted first: no image is encoded for a request refused for their number
		for _, p := range m.Content.Parts {
			if p.Type == "image_url" {
				images++
			}
		}
	}
	if images > s.opts.MaxImages {
		return nil, invalid("messages", "%d images in one request, at most %d", images, s.opts.MaxImages)
	}
	var out []llm.Message
	for i, m := range in {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant":
		default:
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q is not one of system, developer, user, assistant", i, m.Role)
		}
		msg := llm.Message{Role: role}
		if m.Content.Text != nil {
			msg.Content = append(msg.Content, llm.Part{Text: *m.Content.Text})
		}
		for j, p := range m.Content.Parts {
			param := fmt.Sprintf("messages[%d].content[%d]", i, j)
			switch p.Type {
			case "text":
				msg.Content = append(msg.Content, llm.Part{Text: p.Text})
			case "image_url":
				if p.ImageURL == nil || p.ImageURL.URL == "" {
					return nil, invalid(param+".image_url.url", "%s: an image_url part needs image_url.url", param)
				}
				data, err := s.imageBytes(ctx, p.ImageURL.URL)
				if err != nil {
					return nil, withCode(invalid(param+".image_url.url", "%s: %v", param, err), "invalid_image_url")
				}
				msg.Content = append(msg.Content, llm.Part{Image: data})
			default:
				return nil, invalid(param+".type", "%s: part type %q is not supported (text, image_url)", param, p.Type)
			}
		}
		out = append(out, msg)
	}
	return out, nil
}

// imageBytes reads an image_url: a data URL, or an http(s) URL when the server was started with
// hosts to fetch from (off by default: a server that fetched whatever a client names could be
// turned against the network it sits in).
func (s *Server) imageBytes(ctx context.Context, u string) ([]byte, error) {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return dataURL(u)
	}
	if s.fetch == nil {
		return nil, fmt.Errorf("this server does not fetch image URLs (its operator can allow hosts with -image-host); send the image as a data URL (data:image/png;base64,...)")
	}
	return s.fetch.fetch(ctx, u)
}

// dataURL decodes "data:image/...;base64,...".
func dataURL(u string) ([]byte, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil, fmt.Errorf("not a data URL (data:image/png;base64,...) or an http(s) URL")
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("a data URL must be base64: data:image/png;base64,...")
	}
	if mt := strings.TrimSuffix(meta, ";base64"); mt != "" && !strings.HasPrefix(mt, "image/") {
		return nil, fmt.Errorf("media type %q is not an image", mt)
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %v", err)
	}
	return data, nil
}

// stops reads "stop": a string or up to 4 strings.
func stops(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, invalid("stop", "stop must be a string or an array of strings")
	}
	if len(many) > 4 {
		return nil, invalid("stop", "stop holds %d strings, at most 4", len(many))
	}
	return many, nil
}

// optionError is an options.Error as OpenAI's error for an invalid parameter.
func optionError(err error) error {
	if oe, ok := errors.AsType[*options.Error](err); ok {
		return invalid(oe.Name, "%v", oe)
	}
	return err
}
