package upstream

import (
	"encoding/json"
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
	"slices"
)

// messagesFormat is the Anthropic Messages API, POST /v1/messages. It accepts the
// key in x-api-key or as a bearer token.
//
// A reply is answered as content blocks, in order: a thinking block (Reasoning, with
// a signature), a text block (Content) and tool_use blocks (ToolCalls, their
// Arguments as the input object). stop_reason is "tool_use" when there are calls,
// else "end_turn"; Finish "length" is "max_tokens", "stop" is "end_turn",
// "tool_calls" is "tool_use", and any other Finish is sent as given.
//
// A stream is SSE with an "event:" line naming each event's type: message_start,
// a ping, per block content_block_start, content_block_delta (text_delta,
// thinking_delta then one signature_delta, input_json_delta) with now and then a
// ping between them, content_block_stop, then message_delta and message_stop. A
// mid-stream failure is an "error" event with an overloaded_error.
type messagesFormat struct{}

func (messagesFormat) parse(path string, body []byte) (*Request, error) {
	r, err := parseHead(path, body, "There was an error parsing the body of your request: it must be a JSON object.", "model: Field required")
	if err != nil {
		return nil, err
	}
	raw := r.Raw
	switch v := raw["max_tokens"].(type) {
	case nil:
		return nil, invalid("max_tokens", "", "max_tokens: Field required")
	case float64:
		if v != float64(int64(v)) || v < 1 {
			return nil, invalid("max_tokens", "", "max_tokens: Input should be a valid integer greater than 0")
		}
	default:
		return nil, invalid("max_tokens", "", "max_tokens: Input should be a valid integer")
	}
	if r.System, err = textOf(raw["system"], "system", ".%d", "text"); err != nil {
		return nil, err
	}
	msgs, err := field[[]any](raw, "messages", "an array")
	if err != nil {
		return nil, err
	}
	if msgs == nil {
		return nil, invalid("messages", "", "messages: Field required")
	}
	for i, v := range msgs {
		if err := r.addMessagesMessage(i, v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addMessagesMessage reads one message: its tool_result blocks become "tool"
// messages, its text blocks the message itself (left out when there were only tool
// results).
func (r *Request) addMessagesMessage(i int, v any) error {
	param := fmt.Sprintf("messages.%d", i)
	m, ok := v.(map[string]any)
	if !ok {
		return invalid(param, "", "%s: Input should be a valid dictionary", param)
	}
	role, _ := m["role"].(string)
	if role != "user" && role != "assistant" {
		return invalid(param+".role", "", "%s.role: Input should be 'user' or 'assistant'", param)
	}
	blocks, isBlocks := m["content"].([]any)
	if !isBlocks {
		text, err := textOf(m["content"], param+".content", ".%d", "text")
		if err != nil {
			return err
		}
		r.Messages = append(r.Messages, Message{Role: role, Content: text})
		return nil
	}
	results := 0
	for j, b := range blocks {
		block, ok := b.(map[string]any)
		if !ok {
			return invalid(fmt.Sprintf("%s.content.%d", param, j), "", "%s.content.%d: Input should be a valid dictionary", param, j)
		}
		if block["type"] == "tool_result" {
			text, err := textOf(block["content"], fmt.Sprintf("%s.content.%d.content", param, j), ".%d", "text")
			if err != nil {
				return err
			}
			r.Messages = append(r.Messages, Message{Role: "tool", Content: text})
			results++
		}
	}
	text, err := textOf(blocks, param+".content", ".%d", "text")
	if err != nil {
		return err
	}
	if text != "" || results == 0 {
		r.Messages = append(r.Messages, Message{Role: role, Content: text})
	}
	return nil
}

func (messagesFormat) authorized(h http.Header, key string) bool {
	return h.Get("X-Api-Key") == key || h.Get("Authorization") == "Bearer "+key
}

// messagesErrorTypes are the error types of the Messages API; an Error of another
// type is sent with the type its status has.
var messagesErrorTypes = []string{"invalid_request_error", "authentication_error", "permission_error",
	"not_found_error", "request_too_large", "rate_limit_error", "api_error", "overloaded_error"}

// messagesErrors are the Messages API's errors by status.
var messagesErrors = errorTable{
	400: {"invalid_request_error", "invalid request"},
	401: {"authentication_error", "invalid x-api-key"},
	403: {"permission_error", "Your API key does not have permission to use the specified resource."},
	404: {"not_found_error", "Not found"},
	413: {"request_too_large", "Request exceeds the maximum allowed number of bytes."},
	429: {"rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."},
	500: {"api_error", "Internal server error"},
	503: {"overloaded_error", "Overloaded"},
	529: {"overloaded_error", "Overloaded"},
}

func (messagesFormat) statusError(status int, _ *Request) *Error { return messagesErrors.error(status) }

func (f messagesFormat) errorBody(e *Error) []byte {
	typ := e.Type
	if !slices.Contains(messagesErrorTypes, typ) {
		typ = f.statusError(e.Status, nil).Type
	}
	return marshal(typed("error", kv{"error", typed(typ, kv{"message", e.Message})}))
}

func (messagesFormat) headers(h http.Header, _ *answer) {
	h.Set("Request-Id", "req_01"+randomID(22))
	h.Set("Anthropic-Organization-Id", "00000000-0000-4000-8000-000000000000")
}

// stopReason returns the stop_reason of reply r.
func (r Reply) stopReason() string {
	switch r.Finish {
	case "":
		if len(r.ToolCalls) > 0 {
			return "tool_use"
		}
		return "end_turn"
	case "stop":
		return "end_turn"
	case "length":
		return "max_tokens"
	case "tool_calls":
		return "tool_use"
	}
	return r.Finish
}

// signature is the signature of a thinking block: opaque to clients, which send it
// back.
func signature(thinking string) string {
	return "EqQB" + fmt.Sprintf("%016x", hashBytes([]byte(thinking))) + randomID(40)
}

// block returns the content block of part p: empty (as content_block_start carries
// it) or whole.
func (p part) block(whole bool, sig string) obj {
	text := p.text
	if !whole {
		text, sig = "", ""
	}
	switch p.kind {
	case partReasoning:
		return typed("thinking", kv{"thinking", text}, kv{"signature", sig})
	case partCall:
		input := json.RawMessage("{}")
		if whole {
			input = json.RawMessage(p.text)
		}
		return typed("tool_use", kv{"id", p.callID}, kv{"name", p.name}, kv{"input", input})
	}
	return typed("text", kv{"text", text})
}

// message returns the message object: with no content, no stop_reason and one output
// token (whole false, as message_start carries it), or whole.
func (messagesFormat) message(a *answer, whole bool, sig string) obj {
	u := a.usage()
	content, stop, out := []any{}, any(nil), 1
	if whole {
		for _, p := range a.parts(0) {
			content = append(content, p.block(true, sig))
		}
		stop, out = a.replies[0].stopReason(), u.CompletionTokens
	}
	return obj{{"id", a.id}, {"type", "message"}, {"role", "assistant"}, {"model", a.req.Model},
		{"content", content}, {"stop_reason", stop}, {"stop_sequence", nil},
		{"usage", obj{{"input_tokens", u.PromptTokens}, {"cache_creation_input_tokens", 0},
			{"cache_read_input_tokens", 0}, {"output_tokens", out}, {"service_tier", "standard"}}}}
}

func (f messagesFormat) whole(a *answer) []byte {
	return marshal(f.message(a, true, signature(a.replies[0].Reasoning)))
}

// deltaTypes are the delta types and their text fields, by part kind.
var deltaTypes = map[partKind][2]string{
	partReasoning: {"thinking_delta", "thinking"},
	partText:      {"text_delta", "text"},
	partCall:      {"input_json_delta", "partial_json"},
}

func (f messagesFormat) events(a *answer, rng *rand.Rand) iter.Seq[event] {
	return func(yield func(event) bool) {
		emit := func(typ string, fields ...kv) bool {
			return yield(event{name: typ, data: marshal(typed(typ, fields...)), last: typ == "message_stop"})
		}
		sig := signature(a.replies[0].Reasoning)
		if !emit("message_start", kv{"message", f.message(a, false, "")}) || !emit("ping") {
			return
		}
		for i, p := range a.parts(0) {
			index := kv{"index", i}
			if !emit("content_block_start", index, kv{"content_block", p.block(false, "")}) {
				return
			}
			dt := deltaTypes[p.kind]
			for piece := range pieces(rng, p.text) {
				if rng.IntN(24) == 0 && !emit("ping") {
					return
				}
				if !emit("content_block_delta", index, kv{"delta", typed(dt[0], kv{dt[1], piece})}) {
					return
				}
			}
			if p.kind == partReasoning && !emit("content_block_delta", index, kv{"delta", typed("signature_delta", kv{"signature", sig})}) {
				return
			}
			if !emit("content_block_stop", index) {
				return
			}
		}
		r := a.replies[0]
		if !emit("message_delta", kv{"delta", obj{{"stop_reason", r.stopReason()}, {"stop_sequence", nil}}},
			kv{"usage", obj{{"output_tokens", a.usage().CompletionTokens}}}) {
			return
		}
		emit("message_stop")
	}
}

func (f messagesFormat) errorEvent(*answer, int) event {
	return event{name: "error", data: f.errorBody(f.statusError(529, nil))}
}

func (messagesFormat) done() []byte { return nil }
func (messagesFormat) ndjson() bool { return false }
