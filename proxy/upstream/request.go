package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
)

// Paths of the two completion endpoints.
const (
	ChatPath   = "/v1/chat/completions"
	LegacyPath = "/v1/completions"
)

// maxN is the largest n the API accepts.
const maxN = 128

// A Request is the parsed body of a completion request, as much as a Script needs.
type Request struct {
	Path         string    // ChatPath or LegacyPath
	Model        string    // required by both endpoints
	Messages     []Message // chat only
	Prompt       string    // legacy only: the prompt, or the first of an array of prompts
	N            int       // choices to answer; default 1
	Stream       bool
	IncludeUsage bool           // stream_options.include_usage
	Tools        bool           // the request offered at least one tool
	Raw          map[string]any // the whole body as decoded JSON
}

// A Message is one chat message. Content is the text of a string content, or the
// concatenated text parts of an array content; other parts (images, audio) are left
// out.
type Message struct {
	Role    string
	Content string
}

// LastUser returns the content of the last user message (chat) or the prompt
// (legacy).
func (r *Request) LastUser() string {
	if r.Path == LegacyPath {
		return r.Prompt
	}
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// hash identifies the request's conversation, so that the same question gets the same
// answer whatever else the request says.
func (r *Request) hash() uint64 {
	h := fnv.New64a()
	h.Write([]byte(r.Path))
	for _, m := range r.Messages {
		fmt.Fprintf(h, "\x00%s\x00%s", m.Role, m.Content)
	}
	h.Write([]byte("\x00" + r.Prompt))
	return mix(h.Sum64())
}

// mix is a 64-bit finaliser (splitmix64's): FNV's low bits alone vary too little for
// a remainder by a small number of texts.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// An Error is an API error, answered with Status and a body in OpenAI's error shape:
// {"error":{"message":...,"type":...,"param":...,"code":...}}. An empty Param or Code
// is sent as null. A Script may return one to choose the answer; any other error
// from a Script is answered as a 500 server_error.
type Error struct {
	Status  int
	Message string
	Type    string // e.g. "invalid_request_error", "server_error"
	Param   string
	Code    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message)
}

// body returns the error in OpenAI's shape.
func (e *Error) body() []byte {
	null := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	return marshal(struct {
		Error detail `json:"error"`
	}{detail{e.Message, e.Type, null(e.Param), null(e.Code)}})
}

func invalid(param, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// parseRequest checks and decodes a completion request body.
func parseRequest(path string, body []byte) (*Request, error) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || dec.More() || raw == nil {
		return nil, invalid("", "", "We could not parse the JSON body of your request. The body must be a JSON object.")
	}
	r := &Request{Path: path, Raw: raw, N: 1}
	var err error
	if r.Model, err = field[string](raw, "model", "a string"); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, invalid("model", "", "you must provide a model parameter")
	}
	if v, ok := raw["n"]; ok && v != nil {
		f, isNum := v.(float64)
		if !isNum || f != math.Trunc(f) {
			return nil, typeError("n", "an integer", v)
		}
		if f < 1 || f > maxN {
			return nil, invalid("n", "integer_out_of_range", "Invalid 'n': %v is not between 1 and %d.", f, maxN)
		}
		r.N = int(f)
	}
	if r.Stream, err = field[bool](raw, "stream", "a boolean"); err != nil {
		return nil, err
	}
	if so, err := field[map[string]any](raw, "stream_options", "an object"); err != nil {
		return nil, err
	} else if r.IncludeUsage, err = field[bool](so, "include_usage", "a boolean"); err != nil {
		err.(*Error).Param = "stream_options.include_usage"
		return nil, err
	}
	tools, err := field[[]any](raw, "tools", "an array")
	if err != nil {
		return nil, err
	}
	r.Tools = len(tools) > 0
	if path == LegacyPath {
		return r, r.parsePrompt()
	}
	return r, r.parseMessages()
}

// field returns raw[name] as a T, the zero T if it is absent or null, and an error if
// it has another type.
func field[T any](raw map[string]any, name, want string) (T, error) {
	var zero T
	v, ok := raw[name]
	if !ok || v == nil {
		return zero, nil
	}
	t, ok := v.(T)
	if !ok {
		return zero, typeError(name, want, v)
	}
	return t, nil
}

func typeError(param, want string, got any) *Error {
	kind := "an object"
	switch got.(type) {
	case string:
		kind = "a string"
	case float64:
		kind = "a number"
	case bool:
		kind = "a boolean"
	case []any:
		kind = "an array"
	}
	return invalid(param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.", param, want, kind)
}

func (r *Request) parsePrompt() error {
	switch p := r.Raw["prompt"].(type) {
	case string:
		r.Prompt = p
	case []any:
		if len(p) > 0 {
			s, ok := p[0].(string)
			if !ok {
				return typeError("prompt[0]", "a string", p[0])
			}
			r.Prompt = s
		}
	case nil:
		return invalid("prompt", "", "Missing required parameter: 'prompt'.")
	default:
		return typeError("prompt", "a string or an array of strings", p)
	}
	return nil
}

func (r *Request) parseMessages() error {
	msgs, err := field[[]any](r.Raw, "messages", "an array")
	if err != nil {
		return err
	}
	if msgs == nil {
		return invalid("messages", "", "Missing required parameter: 'messages'.")
	}
	for i, v := range msgs {
		param := fmt.Sprintf("messages[%d]", i)
		m, ok := v.(map[string]any)
		if !ok {
			return typeError(param, "an object", v)
		}
		role, err := field[string](m, "role", "a string")
		if err != nil || role == "" {
			return invalid(param+".role", "", "Invalid or missing 'role' in %s.", param)
		}
		msg := Message{Role: role}
		switch c := m["content"].(type) {
		case nil:
		case string:
			msg.Content = c
		case []any:
			var sb strings.Builder
			for j, part := range c {
				p, ok := part.(map[string]any)
				if !ok {
					return typeError(fmt.Sprintf("%s.content[%d]", param, j), "an object", part)
				}
				if text, ok := p["text"].(string); ok && (p["type"] == "text" || p["type"] == nil) {
					sb.WriteString(text)
				}
			}
			msg.Content = sb.String()
		default:
			return typeError(param+".content", "a string or an array", c)
		}
		r.Messages = append(r.Messages, msg)
	}
	return nil
}
