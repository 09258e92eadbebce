package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"strings"
)

// Paths of the endpoints that answer with a model's reply.
const (
	ChatPath           = "/v1/chat/completions" // OpenAI chat completions
	LegacyPath         = "/v1/completions"      // OpenAI legacy completions
	ResponsesPath      = "/v1/responses"        // OpenAI Responses API
	MessagesPath       = "/v1/messages"         // Anthropic Messages API
	OllamaChatPath     = "/api/chat"            // Ollama's native chat
	OllamaGeneratePath = "/api/generate"        // Ollama's native completion
)

// maxN is the largest n the API accepts.
const maxN = 128

// A Request is the parsed body of a completion request, as much as a Script needs.
// The APIs' conversations are read into Messages alike: the input items of the
// Responses API and the messages of the Messages and Ollama APIs, with tool results
// (function_call_output items, tool_result blocks, role "tool") as messages of role
// "tool", so that the last user message is the last one a person wrote.
type Request struct {
	Path         string    // one of the *Path constants
	Model        string    // required by every endpoint
	Messages     []Message // all but the legacy and Ollama generate endpoints
	Prompt       string    // legacy: the prompt, or the first of an array of prompts; Ollama generate: prompt
	System       string    // Responses: instructions; Messages and Ollama generate: system
	N            int       // choices to answer; default 1, always 1 but for the chat and legacy endpoints
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

// LastUser returns the content of the last user message, or the prompt (legacy,
// Ollama generate).
func (r *Request) LastUser() string {
	if r.Path == LegacyPath || r.Path == OllamaGeneratePath {
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
	h.Write([]byte("\x00" + r.Prompt + "\x00" + r.System))
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

// openAINotJSON is OpenAI's answer to a body that is not a JSON object.
const openAINotJSON = "We could not parse the JSON body of your request. The body must be a JSON object."

// parseHead decodes a body and reads what the request of every endpoint has: the
// model (required), stream and tools. notJSON and noModel are the API's messages for
// a body that is not an object and for a missing model.
func parseHead(path string, body []byte, notJSON, noModel string) (*Request, error) {
	raw, ok := decodeObject(body)
	if !ok {
		return nil, invalid("", "", "%s", notJSON)
	}
	r := &Request{Path: path, Raw: raw, N: 1}
	var err error
	if r.Model, err = field[string](raw, "model", "a string"); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, invalid("model", "", "%s", noModel)
	}
	if r.Stream, err = field[bool](raw, "stream", "a boolean"); err != nil {
		return nil, err
	}
	tools, err := field[[]any](raw, "tools", "an array")
	if err != nil {
		return nil, err
	}
	r.Tools = len(tools) > 0
	return r, nil
}

// parseRequest checks and decodes a completion request body.
func parseRequest(path string, body []byte) (*Request, error) {
	r, err := parseHead(path, body, openAINotJSON, "you must provide a model parameter")
	if err != nil {
		return nil, err
	}
	raw := r.Raw
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
	if so, err := field[map[string]any](raw, "stream_options", "an object"); err != nil {
		return nil, err
	} else if r.IncludeUsage, err = field[bool](so, "include_usage", "a boolean"); err != nil {
		err.(*Error).Param = "stream_options.include_usage"
		return nil, err
	}
	if path == LegacyPath {
		return r, r.parsePrompt()
	}
	return r, r.parseMessages()
}

// decodeObject decodes a body that must be one JSON object.
func decodeObject(body []byte) (map[string]any, bool) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || dec.More() || raw == nil {
		return nil, false
	}
	return raw, true
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
		text, err := textOf(m["content"], param+".content", "[%d]", "text")
		if err != nil {
			return err
		}
		r.Messages = append(r.Messages, Message{Role: role, Content: text})
	}
	return nil
}

// textOf returns the text of a content: a string, or the concatenated text of the
// parts of an array whose type is one of types (or absent); null is "". Other parts
// (images, audio, files) are left out. index formats a part's index after param in
// error messages ("[%d]" or ".%d").
func textOf(content any, param, index string, types ...string) (string, error) {
	switch c := content.(type) {
	case nil:
		return "", nil
	case string:
		return c, nil
	case []any:
		var sb strings.Builder
		for j, v := range c {
			p, ok := v.(map[string]any)
			if !ok {
				return "", typeError(param+fmt.Sprintf(index, j), "an object", v)
			}
			typ, _ := p["type"].(string)
			if text, ok := p["text"].(string); ok && (p["type"] == nil || slices.Contains(types, typ)) {
				sb.WriteString(text)
			}
		}
		return sb.String(), nil
	}
	return "", typeError(param, "a string or an array", content)
}
