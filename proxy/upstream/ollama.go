package upstream

import (
	"encoding/json"
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
	"time"
)

// ollamaVersion is what GET /api/version answers.
const ollamaVersion = "0.12.6"

// ollamaFormat is Ollama's native API: POST /api/chat and POST /api/generate. Both
// stream unless the request says "stream": false. Ollama has no keys; with
// Server.APIKey set it wants the bearer token, as a proxy in front of it would.
//
// A chat reply is answered as the message's thinking (Reasoning), content (Content)
// and tool_calls (ToolCalls, their Arguments as the arguments object); a generate
// reply as thinking and response. done_reason is "stop", or Finish when it is set
// (other than "tool_calls").
//
// A stream is NDJSON: one object a line, thinking pieces then content pieces, the
// tool calls whole in one line, and a last line with done true, the durations and
// counts (and context, for generate). A mid-stream failure is a line {"error":...}.
type ollamaFormat struct{}

func (ollamaFormat) parse(path string, body []byte) (*Request, error) {
	r, err := parseHead(path, body, "invalid character in request body: it must be a JSON object", "model is required")
	if err != nil {
		return nil, err
	}
	raw := r.Raw
	if v, ok := raw["stream"]; !ok || v == nil {
		r.Stream = true // Ollama streams unless told not to
	}
	if path == OllamaGeneratePath {
		if r.Prompt, err = field[string](raw, "prompt", "a string"); err != nil {
			return nil, err
		}
		r.System, err = field[string](raw, "system", "a string")
		return r, err
	}
	msgs, err := field[[]any](raw, "messages", "an array")
	if err != nil {
		return nil, err
	}
	for i, v := range msgs {
		param := fmt.Sprintf("messages[%d]", i)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, typeError(param, "an object", v)
		}
		role, err := field[string](m, "role", "a string")
		if err != nil {
			return nil, err
		}
		content, err := field[string](m, "content", "a string")
		if err != nil {
			return nil, err
		}
		r.Messages = append(r.Messages, Message{Role: role, Content: content})
	}
	return r, nil
}

func (ollamaFormat) authorized(h http.Header, key string) bool {
	return h.Get("Authorization") == "Bearer "+key
}

// ollamaErrors are Ollama's errors by status (it has no error types).
var ollamaErrors = errorTable{
	400: {"invalid_request_error", "invalid request"},
	401: {"invalid_request_error", "unauthorized"},
	404: {"invalid_request_error", "model %q not found, try pulling it first"},
	429: {"server_error", "server busy, please try again.  maximum pending requests exceeded"},
	500: {"server_error", "llama runner process has terminated: exit status 2"},
	503: {"server_error", "server busy, please try again.  maximum pending requests exceeded"},
}

func (ollamaFormat) statusError(status int, req *Request) *Error {
	e := ollamaErrors.error(status)
	if e.Status == http.StatusNotFound {
		model := ""
		if req != nil {
			model = req.Model
		}
		e.Message = fmt.Sprintf(e.Message, model)
	}
	return e
}

func (ollamaFormat) errorBody(e *Error) []byte { return marshal(obj{{"error", e.Message}}) }

func (ollamaFormat) headers(http.Header, *answer) {}

// doneReason returns the done_reason of reply r.
func (r Reply) doneReason() string {
	if r.Finish == "" || r.Finish == "tool_calls" {
		return "stop"
	}
	return r.Finish
}

// ollamaLine returns one line of an answer: its model and time, and fields.
func ollamaLine(a *answer, fields ...kv) obj {
	return append(obj{{"model", a.req.Model}, {"created_at", time.Now().UTC().Format(time.RFC3339Nano)}}, fields...)
}

// message returns a chat message with the given content and thinking (left out when
// empty) and the reply's tool calls if calls.
func (ollamaFormat) message(a *answer, content, thinking string, calls bool) kv {
	m := obj{{"role", "assistant"}, {"content", content}}
	if thinking != "" {
		m = append(m, kv{"thinking", thinking})
	}
	if calls {
		var tc []any
		for _, p := range a.parts(0) {
			if p.kind == partCall {
				tc = append(tc, obj{{"function", obj{{"name", p.name}, {"arguments", json.RawMessage(p.text)}}}})
			}
		}
		m = append(m, kv{"tool_calls", tc})
	}
	return kv{"message", m}
}

// text returns the line's text field: a chat message, or generate's response and
// thinking.
func (f ollamaFormat) text(a *answer, content, thinking string, calls bool) []kv {
	if a.req.Path == OllamaChatPath {
		return []kv{f.message(a, content, thinking, calls)}
	}
	fields := []kv{{"response", content}}
	if thinking != "" {
		fields = append(fields, kv{"thinking", thinking})
	}
	return fields
}

// final returns the fields of the last line after its text: done, the reason, the
// counts and durations (nanoseconds, as if the model ran at 50 tokens a second).
func (ollamaFormat) final(a *answer) []kv {
	u := a.usage()
	fields := []kv{{"done", true}, {"done_reason", a.replies[0].doneReason()}}
	if a.req.Path == OllamaGeneratePath {
		context := make([]int, 0, min(u.TotalTokens, 4096))
		for i := range cap(context) {
			context = append(context, 1+i%32000)
		}
		fields = append(fields, kv{"context", context})
	}
	prompt, eval := int64(u.PromptTokens)*2_000_000, int64(u.CompletionTokens)*20_000_000
	return append(fields, kv{"total_duration", 1_500_000 + prompt + eval}, kv{"load_duration", 1_500_000},
		kv{"prompt_eval_count", u.PromptTokens}, kv{"prompt_eval_duration", prompt},
		kv{"eval_count", u.CompletionTokens}, kv{"eval_duration", eval})
}

func (f ollamaFormat) whole(a *answer) []byte {
	r, calls := a.replies[0], false
	for _, p := range a.parts(0) {
		calls = calls || p.kind == partCall
	}
	fields := append(f.text(a, r.Content, r.Reasoning, calls), f.final(a)...)
	return marshal(ollamaLine(a, fields...))
}

func (f ollamaFormat) events(a *answer, rng *rand.Rand) iter.Seq[event] {
	return func(yield func(event) bool) {
		notDone := kv{"done", false}
		line := func(last bool, fields ...kv) bool {
			return yield(event{data: marshal(ollamaLine(a, fields...)), last: last})
		}
		calls := false
		for _, p := range a.parts(0) {
			if p.kind == partCall {
				if !calls && !line(false, append(f.text(a, "", "", true), notDone)...) {
					return
				}
				calls = true
				continue
			}
			for piece := range pieces(rng, p.text) {
				content, thinking := piece, ""
				if p.kind == partReasoning {
					content, thinking = "", piece
				}
				if !line(false, append(f.text(a, content, thinking, false), notDone)...) {
					return
				}
			}
		}
		line(true, append(f.text(a, "", "", false), f.final(a)...)...)
	}
}

func (f ollamaFormat) errorEvent(a *answer, _ int) event {
	return event{data: f.errorBody(f.statusError(http.StatusInternalServerError, a.req))}
}

func (ollamaFormat) done() []byte { return nil }
func (ollamaFormat) ndjson() bool { return true }

// ollamaModels are the models GET /api/tags lists. Any model name is accepted.
var ollamaModels = []string{"llama3.2:latest", "qwen2.5-coder:7b", "upstream-echo:latest"}

func ollamaDetails() obj {
	return obj{{"parent_model", ""}, {"format", "gguf"}, {"family", "llama"}, {"families", []string{"llama"}},
		{"parameter_size", "3.2B"}, {"quantization_level", "Q4_K_M"}}
}

func ollamaTags() []byte {
	var models []any
	for i, name := range ollamaModels {
		models = append(models, obj{{"name", name}, {"model", name}, {"modified_at", "2025-06-01T12:00:00.000000000Z"},
			{"size", 2019393189}, {"digest", fmt.Sprintf("%064x", i+1)}, {"details", ollamaDetails()}})
	}
	return marshal(obj{{"models", models}})
}

// ollamaShow answers POST /api/show for any model.
func ollamaShow(w http.ResponseWriter, body []byte) {
	raw, _ := decodeObject(body)
	model, _ := raw["model"].(string)
	if model == "" {
		model, _ = raw["name"].(string)
	}
	if model == "" {
		writeFormatError(w, ollamaFormat{}, invalid("model", "", "model is required"))
		return
	}
	writeJSON(w, http.StatusOK, marshal(obj{{"modelfile", "FROM " + model + "\n"}, {"parameters", ""},
		{"template", "{{ .Prompt }}"}, {"details", ollamaDetails()},
		{"model_info", obj{{"general.architecture", "llama"}}}, {"capabilities", []string{"completion", "tools", "thinking"}},
		{"modified_at", "2025-06-01T12:00:00.000000000Z"}}))
}
