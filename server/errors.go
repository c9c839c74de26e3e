package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/sampler"
	"github.com/toklip/toklip/visiontok"
)

// apiError is OpenAI's error object, with the HTTP status it is sent with. Every failure a client
// sees has this shape: {"error": {"message", "type", "param", "code"}}, all four keys present.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func invalid(param, format string, args ...any) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	return e
}

func withCode(e *apiError, code string) *apiError {
	e.Code = &code
	return e
}

// toAPIError classifies an error from decoding a request or from the engine. Errors the client
// caused are 4xx with what to fix; anything else is a 500 that says only that the server failed.
func toAPIError(err error) *apiError {
	var ae *apiError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	var b64 base64.CorruptInputError
	var part *llm.PartError
	var input *llm.InputError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &tooLarge):
		return withCode(&apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
			Message: fmt.Sprintf("the request body is over the limit of %d bytes", tooLarge.Limit)}, "request_too_large")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "the request body is not valid JSON: it ends before the value does")
	case errors.As(err, &syntax):
		return invalid("", "the request body is not valid JSON: %v (at byte %d)", err, syntax.Offset)
	case errors.As(err, &b64): // a []byte field (ollama's images) that is not base64
		return invalid("", "the request body holds bytes that are not base64 (images are base64 strings): %v", err)
	case errors.As(err, &typ):
		return invalid(typ.Field, "%s: expected %s, got a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &part) && errors.Is(err, visiontok.ErrImage):
		param := fmt.Sprintf("messages[%d].content[%d]", part.Message, part.Part)
		return withCode(invalid(param+".image_url.url", "%s: %v", param, part.Err), "invalid_image")
	case errors.As(err, &input) && errors.Is(err, visiontok.ErrImage):
		return withCode(invalid(fmt.Sprintf("input[%d]", input.Index), "%v", err), "invalid_image")
	case errors.Is(err, visiontok.ErrImage):
		return withCode(invalid("messages", "%v", err), "invalid_image")
	case errors.Is(err, llm.ErrContextFull):
		return withCode(invalid("messages", "%v", err), "context_length_exceeded")
	case errors.Is(err, llm.ErrNoVision):
		return invalid("", "%v", err)
	case errors.Is(err, sampler.ErrParams):
		return invalid("options", "%v", err)
	case errors.Is(err, llm.ErrNothingToSample):
		return withCode(invalid("logit_bias", "%v", err), "nothing_to_sample")
	case errors.Is(err, sampler.ErrNoToken): // a later step: the bans and the JSON form leave nothing
		return withCode(invalid("logit_bias", "the answer cannot go on: %v (logit_bias bans what it would need)", err), "nothing_to_sample")
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "the server failed to answer: " + err.Error()}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a number"
}

// abort sends err as the error object and stops the request: OpenAI's object, or, on ollama's
// routes (/api/...), ollama's {"error": "message"} with the same status.
func abort(c *gin.Context, err error) {
	e := toAPIError(err)
	if strings.HasPrefix(c.Request.URL.Path, "/api/") {
		c.AbortWithStatusJSON(e.Status, gin.H{"error": e.Message})
		return
	}
	if e.Status >= 500 {
		c.Header("x-should-retry", "false") // the same request fails the same way
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e})
}
