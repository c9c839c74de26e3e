package server

import (
	"encoding/json"
)

// The model's Modelfile gives defaults (modelfiles.Options): a request's field that is absent
// takes the PARAMETER of the same meaning, SYSTEM becomes the system message of a chat that has
// none, and the MESSAGEs come before the request's. What OpenAI's request cannot say (top_k,
// min_p, repeat_penalty, repeat_last_n) is applied in checkChat.

func orDefault[T any](field **T, def *T) {
	if *field == nil && def != nil {
		v := *def
		*field = &v
	}
}

func (s *Server) chatDefaults(r *chatRequest) {
	d := s.opts.Defaults
	if d == nil {
		return
	}
	o := s.defaults
	orDefault(&r.Temperature, o.Temperature)
	orDefault(&r.TopP, o.TopP)
	orDefault(&r.PresencePenalty, o.PresencePenalty)
	orDefault(&r.FrequencyPenalty, o.FrequencyPenalty)
	orDefault(&r.GuidanceScale, o.Guidance)
	if o.Seed != nil && r.Seed == nil {
		r.Seed = ptr(int64(*o.Seed))
	}
	if r.MaxTokens == nil && r.MaxCompletionTokens == nil {
		orDefault(&r.MaxTokens, o.NumPredict)
	}
	if len(o.Stop) > 0 && len(r.Stop) == 0 {
		r.Stop, _ = json.Marshal(o.Stop)
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
	o := s.defaults
	orDefault(&r.GuidanceScale, o.Guidance)
	orDefault(&r.Temperature, o.ImageTemperature)
	if o.Seed != nil && r.Seed == nil {
		r.Seed = ptr(int64(*o.Seed))
	}
	orDefault(&r.TopK, o.ImageTopK)
}
