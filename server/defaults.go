package server

import (
	"encoding/json"

	"github.com/toklip/toklip/modelfiles"
)

// The model's Modelfile gives defaults: a request's field that is absent takes the PARAMETER of
// the same meaning, SYSTEM becomes the system message of a chat that has none, and the MESSAGEs
// come before the request's.

func setFloat(field **float64, d *modelfiles.Modelfile, name string) {
	if *field == nil {
		if v, ok := d.Float(name); ok {
			*field = &v
		}
	}
}

func (s *Server) chatDefaults(r *chatRequest) {
	d := s.opts.Defaults
	if d == nil {
		return
	}
	setFloat(&r.Temperature, d, "temperature")
	setFloat(&r.TopP, d, "top_p")
	setFloat(&r.PresencePenalty, d, "presence_penalty")
	setFloat(&r.FrequencyPenalty, d, "frequency_penalty")
	setFloat(&r.GuidanceScale, d, "guidance_scale")
	if v, ok := d.Float("seed"); ok && r.Seed == nil {
		r.Seed = ptr(int64(v))
	}
	if v, ok := d.Float("num_predict"); ok && r.MaxTokens == nil && r.MaxCompletionTokens == nil && v > 0 {
		r.MaxTokens = ptr(int(v))
	}
	if stop := d.Strings("stop"); len(stop) > 0 && len(r.Stop) == 0 {
		r.Stop, _ = json.Marshal(stop)
	}
	var head []chatMessage
	hasSystem := false
	for _, m := range r.Messages {
		hasSystem = hasSystem || m.Role == "system" || m.Role == "developer"
	}
	if d.System != "" && !hasSystem {
		head = append(head, chatMessage{Role: "system", Content: content{Text: &d.System}})
	}
	for _, m := range d.Messages {
		head = append(head, chatMessage{Role: m.Role, Content: content{Text: ptr(m.Content)}})
	}
	r.Messages = append(head, r.Messages...)
}

func (s *Server) imageDefaults(r *imageRequest) {
	d := s.opts.Defaults
	if d == nil {
		return
	}
	setFloat(&r.GuidanceScale, d, "guidance_scale")
	setFloat(&r.Temperature, d, "image_temperature")
	if v, ok := d.Float("seed"); ok && r.Seed == nil {
		r.Seed = ptr(int64(v))
	}
	if v, ok := d.Float("image_top_k"); ok && r.TopK == nil {
		r.TopK = ptr(int(v))
	}
}
