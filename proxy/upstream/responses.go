package upstream

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
)

// responsesFormat is the OpenAI Responses API, POST /v1/responses. Its auth, error
// bodies and headers are those of the other OpenAI endpoints.
//
// A reply is answered as output items, in order: a reasoning item (rs_) whose summary
// is Reply.Reasoning, a message (msg_) with one output_text part holding Content,
// function_call items (fc_) for ToolCalls and custom_tool_call items (ctc_) for
// CustomToolCalls. Finish "length" (or "max_output_tokens") makes the response
// "incomplete" with incomplete_details.reason "max_output_tokens", and its stream end
// with response.incomplete instead of response.completed.
//
// A stream is SSE with an "event:" line naming each event's type, sequence numbers
// from 0, and no [DONE]. A mid-stream failure is an "error" event.
type responsesFormat struct{ openAIFormat }

func (responsesFormat) parse(path string, body []byte) (*Request, error) {
	r, err := parseHead(path, body, openAINotJSON, "Missing required parameter: 'model'.")
	if err != nil {
		return nil, err
	}
	raw := r.Raw
	if r.System, err = field[string](raw, "instructions", "a string"); err != nil {
		return nil, err
	}
	switch in := raw["input"].(type) {
	case nil:
	case string:
		r.Messages = []Message{{Role: "user", Content: in}}
	case []any:
		for i, v := range in {
			if err := r.addInputItem(fmt.Sprintf("input[%d]", i), v); err != nil {
				return nil, err
			}
		}
	default:
		return nil, typeError("input", "a string or an array", in)
	}
	return r, nil
}

// addInputItem reads one item of input: a message (with or without "type"), a tool
// call's output (a "tool" message), or a call the model made earlier (an assistant
// message). Other items (reasoning, references) are left out.
func (r *Request) addInputItem(param string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return typeError(param, "an object", v)
	}
	typ, err := field[string](m, "type", "a string")
	if err != nil {
		err.(*Error).Param = param + ".type"
		return err
	}
	switch typ {
	case "", "message":
		role, _ := m["role"].(string)
		switch role {
		case "user", "system", "developer", "assistant":
		default:
			return invalid(param+".role", "invalid_value", "Invalid value for '%s.role': expected one of 'user', 'system', 'developer' or 'assistant'.", param)
		}
		text, err := textOf(m["content"], param+".content", "[%d]", "input_text", "output_text", "text")
		if err != nil {
			return err
		}
		r.Messages = append(r.Messages, Message{Role: role, Content: text})
	case "function_call_output", "custom_tool_call_output":
		text, err := textOf(m["output"], param+".output", "[%d]", "input_text", "output_text", "text")
		if err != nil {
			return err
		}
		r.Messages = append(r.Messages, Message{Role: "tool", Content: text})
	case "function_call", "custom_tool_call":
		r.Messages = append(r.Messages, Message{Role: "assistant"})
	}
	return nil
}

// responseItem is one output item of a response, with its id.
type responseItem struct {
	part
	id string
}

// responseItems returns the output items of a's reply.
func responseItems(a *answer) []responseItem {
	var items []responseItem
	for _, p := range a.parts(0) {
		prefix := map[partKind]string{partReasoning: "rs_", partText: "msg_", partCall: "fc_", partCustom: "ctc_"}[p.kind]
		items = append(items, responseItem{part: p, id: prefix + randomID(48)})
	}
	return items
}

// incomplete reports whether reply r stopped at its token limit.
func (r Reply) incomplete() bool {
	return r.Finish == "length" || r.Finish == "max_output_tokens"
}

// item returns the item as output_item.added (done false: empty, in progress) or
// output_item.done and the response (done true: whole) carry it.
func (it responseItem) item(done bool, incomplete bool) obj {
	text, status := it.text, "completed"
	if !done {
		text, status = "", "in_progress"
	} else if incomplete {
		status = "incomplete"
	}
	id := kv{"id", it.id}
	switch it.kind {
	case partReasoning:
		summary := []any{}
		if done {
			summary = append(summary, summaryPart(text))
		}
		return typed("reasoning", id, kv{"summary", summary})
	case partCall:
		return typed("function_call", id, kv{"status", status}, kv{"arguments", text}, kv{"call_id", it.callID}, kv{"name", it.name})
	case partCustom:
		return typed("custom_tool_call", id, kv{"status", status}, kv{"call_id", it.callID}, kv{"input", text}, kv{"name", it.name})
	}
	content := []any{}
	if done {
		content = append(content, textPart(text))
	}
	return typed("message", id, kv{"status", status}, kv{"content", content}, kv{"role", "assistant"})
}

func textPart(text string) obj {
	return typed("output_text", kv{"annotations", []any{}}, kv{"logprobs", []any{}}, kv{"text", text})
}

func summaryPart(text string) obj { return typed("summary_text", kv{"text", text}) }

// response returns the Response object: in progress with no output and no usage
// (final false), or whole.
func (responsesFormat) response(a *answer, items []responseItem, final bool) obj {
	raw, r := a.req.Raw, a.replies[0]
	status, output := "in_progress", []any{}
	var usage, incomplete any
	if final {
		status = "completed"
		if r.incomplete() {
			status, incomplete = "incomplete", obj{{"reason", "max_output_tokens"}}
		}
		for _, it := range items {
			output = append(output, it.item(true, r.incomplete()))
		}
		u := a.usage()
		usage = obj{{"input_tokens", u.PromptTokens}, {"input_tokens_details", obj{{"cached_tokens", 0}}},
			{"output_tokens", u.CompletionTokens}, {"output_tokens_details", obj{{"reasoning_tokens", a.reasoningTokens()}}},
			{"total_tokens", u.TotalTokens}}
	}
	return obj{{"id", a.id}, {"object", "response"}, {"created_at", a.created}, {"status", status},
		{"background", false}, {"error", nil}, {"incomplete_details", incomplete},
		{"instructions", echo(raw, "instructions", nil)}, {"max_output_tokens", echo(raw, "max_output_tokens", nil)},
		{"max_tool_calls", nil}, {"model", a.req.Model}, {"output", output},
		{"parallel_tool_calls", echo(raw, "parallel_tool_calls", true)},
		{"previous_response_id", echo(raw, "previous_response_id", nil)},
		{"reasoning", echo(raw, "reasoning", obj{{"effort", nil}, {"summary", nil}})},
		{"service_tier", "default"}, {"store", echo(raw, "store", true)}, {"temperature", echo(raw, "temperature", 1.0)},
		{"text", echo(raw, "text", obj{{"format", obj{{"type", "text"}}}, {"verbosity", "medium"}})},
		{"tool_choice", echo(raw, "tool_choice", "auto")}, {"tools", echo(raw, "tools", []any{})},
		{"top_logprobs", 0}, {"top_p", echo(raw, "top_p", 1.0)}, {"truncation", echo(raw, "truncation", "disabled")},
		{"usage", usage}, {"user", echo(raw, "user", nil)}, {"metadata", echo(raw, "metadata", obj{})}}
}

func (f responsesFormat) whole(a *answer) []byte {
	return marshal(f.response(a, responseItems(a), true))
}

func (f responsesFormat) events(a *answer, rng *rand.Rand) iter.Seq[event] {
	return func(yield func(event) bool) {
		seq := 0
		emit := func(typ string, fields ...kv) bool {
			o := append(typed(typ, fields...), kv{"sequence_number", seq})
			seq++
			return yield(event{name: typ, data: marshal(o), last: typ == "response.completed" || typ == "response.incomplete"})
		}
		items := responseItems(a)
		start := f.response(a, items, false)
		if !emit("response.created", kv{"response", start}) || !emit("response.in_progress", kv{"response", start}) {
			return
		}
		incomplete := a.replies[0].incomplete()
		for i, it := range items {
			out := kv{"output_index", i}
			if !emit("response.output_item.added", out, kv{"item", it.item(false, false)}) {
				return
			}
			ev := itemEventsOf[it.kind]
			head := []kv{{"item_id", it.id}, out}
			if ev.index != "" {
				head = append(head, kv{ev.index, 0})
			}
			with := func(fields ...kv) []kv { return append(append([]kv(nil), head...), fields...) }
			if ev.opened != "" && !emit(ev.opened, with(kv{"part", ev.part("")})...) {
				return
			}
			for p := range pieces(rng, it.text) {
				if !emit(ev.delta, with(append([]kv{{"delta", p}}, ev.extra...)...)...) {
					return
				}
			}
			done := with(kv{ev.field, it.text})
			if it.kind == partCall {
				done = with(kv{"name", it.name}, kv{ev.field, it.text})
			}
			if !emit(ev.done, append(done, ev.extra...)...) {
				return
			}
			if ev.closed != "" && !emit(ev.closed, with(kv{"part", ev.part(it.text)})...) {
				return
			}
			if !emit("response.output_item.done", out, kv{"item", it.item(true, incomplete)}) {
				return
			}
		}
		end := "response.completed"
		if incomplete {
			end = "response.incomplete"
		}
		emit(end, kv{"response", f.response(a, items, true)})
	}
}

// itemEvents names the events that stream an item's text: opened and closed (with
// the part, empty then whole) around the deltas and the done event that carries the
// whole text in field. index names the part's index field, if the item has parts;
// extra fields go with each delta and the done event.
type itemEvents struct {
	opened, delta, done, closed string
	index, field                string
	part                        func(string) obj
	extra                       []kv
}

var itemEventsOf = map[partKind]itemEvents{
	partReasoning: {opened: "response.reasoning_summary_part.added", delta: "response.reasoning_summary_text.delta",
		done: "response.reasoning_summary_text.done", closed: "response.reasoning_summary_part.done",
		index: "summary_index", field: "text", part: summaryPart},
	partText: {opened: "response.content_part.added", delta: "response.output_text.delta",
		done: "response.output_text.done", closed: "response.content_part.done",
		index: "content_index", field: "text", part: textPart, extra: []kv{{"logprobs", []any{}}}},
	partCall: {delta: "response.function_call_arguments.delta", done: "response.function_call_arguments.done",
		field: "arguments"},
	partCustom: {delta: "response.custom_tool_call_input.delta", done: "response.custom_tool_call_input.done",
		field: "input"},
}

func (responsesFormat) errorEvent(_ *answer, seq int) event {
	e := statusError(http.StatusInternalServerError)
	return event{name: "error", data: marshal(typed("error", kv{"code", "server_error"}, kv{"message", e.Message},
		kv{"param", nil}, kv{"sequence_number", seq}))}
}

func (responsesFormat) done() []byte { return nil }
