package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The tests of the Responses, Messages and Ollama formats: each answer is parsed as a
// client would and checked against the reply scripted for it.

// newPaths are the endpoints of the formats added beside the chat completions ones.
var newPaths = []string{ResponsesPath, MessagesPath, OllamaChatPath, OllamaGeneratePath}

// formatBody returns a request body for path whose last user message (or prompt) is
// user, streamed or not.
func formatBody(path string, stream bool, user string) map[string]any {
	switch path {
	case ResponsesPath:
		return map[string]any{"model": "gpt-5", "stream": stream, "instructions": "Be brief.",
			"input": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "input_text", "text": user}}}}}
	case MessagesPath:
		return map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream, "system": "Be brief.",
			"messages": []any{map[string]any{"role": "user", "content": user}}}
	case OllamaChatPath:
		return map[string]any{"model": "llama3.2", "stream": stream,
			"messages": []any{map[string]any{"role": "user", "content": user}}}
	}
	return map[string]any{"model": "llama3.2", "stream": stream, "prompt": user}
}

// visible returns what of r the endpoint at path answers.
func visible(path string, r Reply) Reply {
	out := Reply{Content: r.Content, Reasoning: r.Reasoning}
	if path != OllamaGeneratePath {
		out.ToolCalls = r.ToolCalls
	}
	if path == ResponsesPath {
		out.CustomToolCalls = r.CustomToolCalls
	}
	return out
}

// sameReply checks got against want; with objects the arguments are compared as
// JSON values (the APIs that carry them as objects re-encode them).
func sameReply(t *testing.T, got, want Reply, objects bool) {
	t.Helper()
	norm := func(r Reply) Reply {
		r.Finish = ""
		r.ToolCalls = append([]ToolCall(nil), r.ToolCalls...)
		for i := range r.ToolCalls {
			if a := r.ToolCalls[i].Arguments; objects {
				if a == "" {
					a = "{}"
				}
				var v any
				if err := json.Unmarshal([]byte(a), &v); err == nil {
					r.ToolCalls[i].Arguments = string(marshal(v))
				}
			}
		}
		if len(r.ToolCalls) == 0 {
			r.ToolCalls = nil
		}
		if len(r.CustomToolCalls) == 0 {
			r.CustomToolCalls = nil
		}
		return r
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("reply\n got %+v\nwant %+v", g, w)
	}
}

func decodeMap(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v: %q", err, s)
	}
	return m
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) int { f, _ := v.(float64); return int(f) }

// checkPiece checks that a delta is a piece as the chunker cuts them.
func checkPiece(t *testing.T, p string) {
	t.Helper()
	if p == "" || len(p) > 43 || !utf8.ValidString(p) {
		t.Errorf("delta %q: want 1 to 40 bytes of whole characters", p)
	}
}

// responsesReply reads the output items of a Response object.
func responsesReply(t *testing.T, resp map[string]any) Reply {
	t.Helper()
	var r Reply
	output, _ := resp["output"].([]any)
	for _, v := range output {
		item := v.(map[string]any)
		switch item["type"] {
		case "reasoning":
			for _, s := range item["summary"].([]any) {
				r.Reasoning += str(s.(map[string]any)["text"])
			}
		case "message":
			for _, c := range item["content"].([]any) {
				r.Content += str(c.(map[string]any)["text"])
			}
		case "function_call":
			if !strings.HasPrefix(str(item["call_id"]), "call_") || !strings.HasPrefix(str(item["id"]), "fc_") {
				t.Errorf("function_call ids %v %v", item["id"], item["call_id"])
			}
			r.ToolCalls = append(r.ToolCalls, ToolCall{Name: str(item["name"]), Arguments: str(item["arguments"])})
		case "custom_tool_call":
			r.CustomToolCalls = append(r.CustomToolCalls, CustomToolCall{Name: str(item["name"]), Input: str(item["input"])})
		default:
			t.Errorf("unexpected item %v", item)
		}
	}
	r.Finish = str(resp["status"])
	return r
}

// readResponsesStream checks a Responses stream strictly and returns the reply its
// deltas make, after checking that every done event and the final response agree.
func readResponsesStream(t *testing.T, body []byte) (Reply, map[string]any) {
	t.Helper()
	events, _, err := readSSE(body)
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	var final map[string]any
	type open struct {
		kind, id, name string
		text           strings.Builder
	}
	var items []*open
	cur := func(d map[string]any) *open {
		i := num(d["output_index"])
		if i >= len(items) || str(d["item_id"]) != "" && str(d["item_id"]) != items[i].id {
			t.Fatalf("event %v for an item not opened", d)
		}
		return items[i]
	}
	for i, ev := range events {
		d := decodeMap(t, ev.data)
		typ := str(d["type"])
		if ev.name != typ {
			t.Errorf("event %d: event: %q, data type %q", i, ev.name, typ)
		}
		if seq, ok := d["sequence_number"].(float64); !ok || int(seq) != i {
			t.Errorf("event %d (%s): sequence_number %v", i, typ, d["sequence_number"])
		}
		if final != nil {
			t.Errorf("event %s after the response ended", typ)
		}
		switch typ {
		case "response.created", "response.in_progress":
			resp := d["response"].(map[string]any)
			if resp["status"] != "in_progress" || len(resp["output"].([]any)) != 0 || resp["object"] != "response" {
				t.Errorf("%s: response %v", typ, resp)
			}
		case "response.output_item.added":
			item := d["item"].(map[string]any)
			if num(d["output_index"]) != len(items) {
				t.Errorf("output_index %v, want %d", d["output_index"], len(items))
			}
			items = append(items, &open{kind: str(item["type"]), id: str(item["id"]), name: str(item["name"])})
		case "response.output_text.delta", "response.reasoning_summary_text.delta",
			"response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
			checkPiece(t, str(d["delta"]))
			cur(d).text.WriteString(str(d["delta"]))
			if typ == "response.output_text.delta" && d["logprobs"] == nil {
				t.Errorf("output_text.delta without logprobs")
			}
		case "response.output_text.done", "response.reasoning_summary_text.done":
			if o := cur(d); str(d["text"]) != o.text.String() {
				t.Errorf("%s text %q, deltas %q", typ, d["text"], o.text.String())
			}
		case "response.function_call_arguments.done":
			if o := cur(d); str(d["arguments"]) != o.text.String() || str(d["name"]) != o.name {
				t.Errorf("%s %v, deltas %q", typ, d, o.text.String())
			}
		case "response.custom_tool_call_input.done":
			if o := cur(d); str(d["input"]) != o.text.String() {
				t.Errorf("%s %v, deltas %q", typ, d, o.text.String())
			}
		case "response.content_part.added", "response.reasoning_summary_part.added":
			cur(d)
		case "response.content_part.done", "response.reasoning_summary_part.done":
			if o := cur(d); str(d["part"].(map[string]any)["text"]) != o.text.String() {
				t.Errorf("%s part %v, deltas %q", typ, d["part"], o.text.String())
			}
		case "response.output_item.done":
			o := cur(d)
			one := responsesReply(t, map[string]any{"output": []any{d["item"]}})
			if got := one.Reasoning + one.Content + fmt.Sprint(one.ToolCalls, one.CustomToolCalls); !strings.Contains(got, o.text.String()) {
				t.Errorf("output_item.done %v, deltas %q", d["item"], o.text.String())
			}
			switch o.kind {
			case "reasoning":
				r.Reasoning = o.text.String()
			case "message":
				r.Content = o.text.String()
			case "function_call":
				r.ToolCalls = append(r.ToolCalls, ToolCall{Name: o.name, Arguments: o.text.String()})
			case "custom_tool_call":
				r.CustomToolCalls = append(r.CustomToolCalls, CustomToolCall{Name: o.name, Input: o.text.String()})
			}
		case "response.completed", "response.incomplete":
			final = d["response"].(map[string]any)
		default:
			t.Errorf("unexpected event %s", typ)
		}
	}
	if final == nil {
		t.Fatalf("no response.completed in %d events", len(events))
	}
	sameReply(t, responsesReply(t, final), r, false)
	r.Finish = str(final["status"])
	return r, final
}

// messagesReply reads the content blocks of a Messages message.
func messagesReply(t *testing.T, msg map[string]any) Reply {
	t.Helper()
	var r Reply
	for _, v := range msg["content"].([]any) {
		b := v.(map[string]any)
		switch b["type"] {
		case "thinking":
			r.Reasoning += str(b["thinking"])
			if str(b["signature"]) == "" {
				t.Errorf("thinking block without a signature")
			}
		case "text":
			r.Content += str(b["text"])
		case "tool_use":
			if !strings.HasPrefix(str(b["id"]), "toolu_") {
				t.Errorf("tool_use id %v", b["id"])
			}
			r.ToolCalls = append(r.ToolCalls, ToolCall{Name: str(b["name"]), Arguments: string(marshal(b["input"]))})
		}
	}
	r.Finish = str(msg["stop_reason"])
	return r
}

// readMessagesStream checks a Messages stream strictly and returns the reply its
// deltas make (tool arguments as the partial_json text), with the stop_reason.
func readMessagesStream(t *testing.T, body []byte) Reply {
	t.Helper()
	events, _, err := readSSE(body)
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	var kind, name string
	var text strings.Builder
	stopped := false
	for i, ev := range events {
		d := decodeMap(t, ev.data)
		typ := str(d["type"])
		if ev.name != typ {
			t.Errorf("event %d: event: %q, data type %q", i, ev.name, typ)
		}
		if (i == 0) != (typ == "message_start") || stopped {
			t.Errorf("event %d is %s", i, typ)
		}
		switch typ {
		case "message_start":
			m := d["message"].(map[string]any)
			if m["stop_reason"] != nil || len(m["content"].([]any)) != 0 || m["type"] != "message" {
				t.Errorf("message_start %v", m)
			}
		case "ping":
		case "content_block_start":
			b := d["content_block"].(map[string]any)
			kind, name = str(b["type"]), str(b["name"])
			text.Reset()
			if kind == "tool_use" && fmt.Sprint(b["input"]) != "map[]" {
				t.Errorf("tool_use starts with input %v", b["input"])
			}
		case "content_block_delta":
			dl := d["delta"].(map[string]any)
			want := map[string]string{"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}[kind]
			switch dt := str(dl["type"]); {
			case dt == "signature_delta" && kind == "thinking":
				if str(dl["signature"]) == "" {
					t.Errorf("empty signature")
				}
			case dt != want:
				t.Errorf("%s in a %s block", dt, kind)
			default:
				p := str(dl[map[string]string{"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}[dt]])
				checkPiece(t, p)
				text.WriteString(p)
			}
		case "content_block_stop":
			switch kind {
			case "text":
				r.Content = text.String()
			case "thinking":
				r.Reasoning = text.String()
			case "tool_use":
				r.ToolCalls = append(r.ToolCalls, ToolCall{Name: name, Arguments: text.String()})
			}
		case "message_delta":
			r.Finish = str(d["delta"].(map[string]any)["stop_reason"])
			if d["usage"].(map[string]any)["output_tokens"] == nil {
				t.Errorf("message_delta without output_tokens")
			}
		case "message_stop":
			stopped = true
		default:
			t.Errorf("unexpected event %s", typ)
		}
	}
	if !stopped {
		t.Fatalf("no message_stop in %d events", len(events))
	}
	return r
}

// ollamaReply reads one Ollama object: the message (chat) or response (generate).
func ollamaReply(t *testing.T, d map[string]any) Reply {
	t.Helper()
	var r Reply
	if m, ok := d["message"].(map[string]any); ok {
		if m["role"] != "assistant" {
			t.Errorf("message role %v", m["role"])
		}
		r.Content, r.Reasoning = str(m["content"]), str(m["thinking"])
		calls, _ := m["tool_calls"].([]any)
		for _, c := range calls {
			fn := c.(map[string]any)["function"].(map[string]any)
			if _, ok := fn["arguments"].(map[string]any); !ok {
				t.Errorf("arguments %v, want an object", fn["arguments"])
			}
			r.ToolCalls = append(r.ToolCalls, ToolCall{Name: str(fn["name"]), Arguments: string(marshal(fn["arguments"]))})
		}
	} else {
		r.Content, r.Reasoning = str(d["response"]), str(d["thinking"])
	}
	return r
}

// readNDJSON checks an Ollama stream: every line one JSON object, done false but on
// the last line, and returns the reply the lines make and the last line.
func readNDJSON(t *testing.T, body []byte) (Reply, map[string]any) {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\n")) {
		t.Fatalf("stream does not end with a line end: %q", body[max(0, len(body)-80):])
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	var r Reply
	var last map[string]any
	for i, line := range lines {
		d := decodeMap(t, line)
		if d["model"] == nil || d["created_at"] == nil {
			t.Errorf("line %d without model or created_at: %s", i, line)
		}
		done, _ := d["done"].(bool)
		if done != (i == len(lines)-1) {
			t.Fatalf("line %d of %d: done %v", i, len(lines), d["done"])
		}
		one := ollamaReply(t, d)
		if !done && len(one.ToolCalls) == 0 {
			if one.Content != "" && one.Reasoning != "" || one.Content == "" && one.Reasoning == "" {
				t.Errorf("line %d: want one piece of content or thinking: %s", i, line)
			}
			checkPiece(t, one.Content+one.Reasoning)
		}
		if done && (one.Content != "" || len(one.ToolCalls) > 0) {
			t.Errorf("last line carries text: %s", line)
		}
		r.Content += one.Content
		r.Reasoning += one.Reasoning
		r.ToolCalls = append(r.ToolCalls, one.ToolCalls...)
		last = d
	}
	checkOllamaDone(t, last)
	return r, last
}

func checkOllamaDone(t *testing.T, d map[string]any) {
	t.Helper()
	if d["done"] != true || str(d["done_reason"]) == "" {
		t.Errorf("final object %v: want done true and a done_reason", d)
	}
	for _, k := range []string{"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"} {
		if _, ok := d[k].(float64); !ok {
			t.Errorf("final object without %s", k)
		}
	}
}

// readFormat reads an answer of the endpoint at path, streamed or not, and checks
// it against want.
func readFormat(t *testing.T, path string, stream bool, body []byte, want Reply) Reply {
	t.Helper()
	var got Reply
	switch {
	case path == ResponsesPath && stream:
		got, _ = readResponsesStream(t, body)
	case path == ResponsesPath:
		got = responsesReply(t, decodeMap(t, string(body)))
	case path == MessagesPath && stream:
		got = readMessagesStream(t, body)
	case path == MessagesPath:
		got = messagesReply(t, decodeMap(t, string(body)))
	case stream:
		got, _ = readNDJSON(t, body)
	default:
		d := decodeMap(t, string(body))
		checkOllamaDone(t, d)
		got = ollamaReply(t, d)
	}
	sameReply(t, got, visible(path, want), path != ResponsesPath && !(path == MessagesPath && stream))
	return got
}

var formatReplies = []struct {
	name  string
	reply Reply
}{
	{"text", Reply{Content: longText}},
	{"unicode", Reply{Content: strings.Repeat("héllo wörld 🎉 日本語 ", 20)}},
	{"empty", Reply{}},
	{"tool calls", Reply{ToolCalls: []ToolCall{{Name: "get_weather", Arguments: `{"city": "Paris", "unit": "c"}`},
		{Name: "noop", Arguments: `{}`}}}},
	{"reasoning", Reply{Reasoning: "The user wants a loop. " + strings.Repeat("Think. ", 30), Content: "for {}"}},
	{"everything", Reply{Reasoning: "Plan: call tools.", Content: "Calling.", ToolCalls: []ToolCall{{Name: "f", Arguments: `{"x":[1,2,{"y":"ü"}]}`}},
		CustomToolCalls: []CustomToolCall{{Name: "apply_patch", Input: "*** Begin Patch\n+ é\n*** End Patch\n"}}}},
	{"custom only", Reply{CustomToolCalls: []CustomToolCall{{Name: "sh", Input: strings.Repeat("ls -l | wc ", 10)}}}},
}

func TestFormats(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, path := range newPaths {
		for _, stream := range []bool{false, true} {
			for _, tt := range formatReplies {
				t.Run(fmt.Sprintf("%s/stream=%v/%s", path, stream, tt.name), func(t *testing.T) {
					resp := post(t, ts.URL+path, formatBody(path, stream, Directive(tt.reply)), nil)
					body := readAll(t, resp.Body)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d: %s", resp.StatusCode, body)
					}
					ct := resp.Header.Get("Content-Type")
					wantCT := map[bool]string{false: "application/json", true: "text/event-stream"}[stream]
					if stream && (path == OllamaChatPath || path == OllamaGeneratePath) {
						wantCT = "application/x-ndjson"
					}
					if !strings.HasPrefix(ct, wantCT) {
						t.Errorf("Content-Type %q, want %s", ct, wantCT)
					}
					readFormat(t, path, stream, body, tt.reply)
				})
			}
		}
	}
}

// TestFormatFinish checks the stop reasons each API derives from a reply.
func TestFormatFinish(t *testing.T) {
	calls := []ToolCall{{Name: "f", Arguments: `{}`}}
	tests := []struct {
		path  string
		reply Reply
		want  string // status, stop_reason or done_reason
	}{
		{ResponsesPath, Reply{Content: "a"}, "completed"},
		{ResponsesPath, Reply{Content: "a", Finish: "length"}, "incomplete"},
		{MessagesPath, Reply{Content: "a"}, "end_turn"},
		{MessagesPath, Reply{ToolCalls: calls}, "tool_use"},
		{MessagesPath, Reply{Content: "a", Finish: "length"}, "max_tokens"},
		{MessagesPath, Reply{Content: "a", Finish: "refusal"}, "refusal"},
		{OllamaChatPath, Reply{ToolCalls: calls}, "stop"},
		{OllamaChatPath, Reply{Content: "a", Finish: "length"}, "length"},
		{OllamaGeneratePath, Reply{Content: "a"}, "stop"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%v/%s", tt.path, stream, tt.want), func(t *testing.T) {
				s := New()
				s.Script = FixedScript(tt.reply)
				rec := serve(s, tt.path, formatBody(tt.path, stream, "hi"), nil)
				body := rec.body()
				var got string
				switch {
				case tt.path == ResponsesPath && stream:
					r, final := readResponsesStream(t, body)
					got = r.Finish
					if d := final["incomplete_details"]; (got == "incomplete") != (d != nil) {
						t.Errorf("incomplete_details %v", d)
					}
				case tt.path == MessagesPath && stream:
					got = readMessagesStream(t, body).Finish
				case stream:
					_, last := readNDJSON(t, body)
					got = str(last["done_reason"])
				default:
					d := decodeMap(t, string(body))
					got = str(d["status"]) + str(d["stop_reason"]) + str(d["done_reason"])
				}
				if got != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// TestFormatDirectives checks that each format finds the directive in its last user
// message, past tool results and other content.
func TestFormatDirectives(t *testing.T) {
	want := Reply{Content: "scripted"}
	d := Directive(want)
	tests := []struct {
		name string
		path string
		body map[string]any
	}{
		{"responses string input", ResponsesPath, map[string]any{"model": "m", "input": d}},
		{"responses items", ResponsesPath, map[string]any{"model": "m", "instructions": "sys", "input": []any{
			map[string]any{"role": "developer", "content": "be nice"},
			map[string]any{"type": "message", "role": "user", "content": []any{
				map[string]any{"type": "input_text", "text": d},
				map[string]any{"type": "input_image", "image_url": "data:x"}}},
			map[string]any{"type": "reasoning", "id": "rs_1", "summary": []any{}},
			map[string]any{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
			map[string]any{"type": "function_call_output", "call_id": "c", "output": "42"},
		}}},
		{"messages blocks and tool result", MessagesPath, map[string]any{"model": "m", "max_tokens": 10,
			"system": []any{map[string]any{"type": "text", "text": "sys"}},
			"messages": []any{
				map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": d}}},
				map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": "toolu_1", "name": "f", "input": map[string]any{}}}},
				map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": "toolu_1",
					"content": []any{map[string]any{"type": "text", "text": "42"}}}}},
			}}},
		{"ollama chat tool", OllamaChatPath, map[string]any{"model": "m", "stream": false, "messages": []any{
			map[string]any{"role": "system", "content": "sys"},
			map[string]any{"role": "user", "content": d, "images": []any{"aGk="}},
			map[string]any{"role": "assistant", "content": "", "tool_calls": []any{map[string]any{"function": map[string]any{"name": "f", "arguments": map[string]any{}}}}},
			map[string]any{"role": "tool", "content": "42"},
		}}},
		{"ollama generate", OllamaGeneratePath, map[string]any{"model": "m", "stream": false, "prompt": d, "system": "sys", "raw": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.Script = FixedScript(Reply{Content: "not the directive"})
			rec := serve(s, tt.path, tt.body, nil)
			if rec.status != 200 {
				t.Fatalf("status %d: %s", rec.status, rec.body())
			}
			readFormat(t, tt.path, false, rec.body(), want)
			if last := s.LastRequest(); last.Path != tt.path || !bytes.Contains(last.Body, []byte("scripted")) {
				t.Errorf("last request %s %s", last.Path, last.Body)
			}
		})
	}
}

func TestFormatRequests(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		method string
		body   string
		status int
		want   string // in the body
	}{
		{"messages without max_tokens", MessagesPath, "POST", `{"model":"m","messages":[]}`, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`},
		{"messages without messages", MessagesPath, "POST", `{"model":"m","max_tokens":5}`, 400, `"messages: Field required"`},
		{"messages bad role", MessagesPath, "POST", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, 400, `messages.0.role`},
		{"messages bad JSON", MessagesPath, "POST", `{"model"`, 400, `"type":"invalid_request_error"`},
		{"messages bad block", MessagesPath, "POST", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[3]}]}`, 400, `messages.0.content.0`},
		{"responses without model", ResponsesPath, "POST", `{"input":"hi"}`, 400, `"param":"model"`},
		{"responses bad input", ResponsesPath, "POST", `{"model":"m","input":3}`, 400, `"param":"input"`},
		{"responses bad role", ResponsesPath, "POST", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, 400, `input[0].role`},
		{"responses no input", ResponsesPath, "POST", `{"model":"m"}`, 200, `"object":"response"`},
		{"ollama without model", OllamaChatPath, "POST", `{"messages":[]}`, 400, `{"error":"model is required"}`},
		{"ollama stream a string", OllamaGeneratePath, "POST", `{"model":"m","stream":"no"}`, 400, `{"error":`},
		{"ollama stream defaults true", OllamaChatPath, "POST", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 200, "\n"},
		{"ollama generate stream defaults true", OllamaGeneratePath, "POST", `{"model":"m","prompt":"hi"}`, 200, `"done":true`},
		{"tags", "/api/tags", "GET", ``, 200, `"models":[{"name":"llama3.2:latest"`},
		{"version", "/api/version", "GET", ``, 200, `{"version":"`},
		{"show", "/api/show", "POST", `{"model":"llama3.2"}`, 200, `"capabilities":[`},
		{"show without model", "/api/show", "POST", `{}`, 400, `{"error":"model is required"}`},
		{"ollama unknown", "/api/pull", "POST", `{}`, 404, `{"error":`},
		{"messages wrong method", MessagesPath, "GET", ``, 404, `"Invalid URL (GET /v1/messages)"`},
		{"unknown", "/v1/messages/batches", "POST", `{}`, 404, `"Invalid URL`},
	}
	ts := httptest.NewServer(New())
	defer ts.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("got %d %s; want %d with %s", resp.StatusCode, body, tt.status, tt.want)
			}
			if strings.HasPrefix(tt.name, "ollama stream defaults") {
				if resp.Header.Get("Content-Type") != "application/x-ndjson" {
					t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
				readNDJSON(t, body)
			}
		})
	}
}

func TestFormatAPIKey(t *testing.T) {
	s := New()
	s.APIKey = "sk-test"
	ts := httptest.NewServer(s)
	defer ts.Close()
	tests := []struct {
		path   string
		header map[string]string
		status int
		want   string
	}{
		{MessagesPath, map[string]string{"Authorization": "", "X-Api-Key": "sk-test"}, 200, ""},
		{MessagesPath, map[string]string{"Authorization": "Bearer sk-test"}, 200, ""},
		{MessagesPath, map[string]string{"Authorization": "", "X-Api-Key": "nope"}, 401, `{"type":"error","error":{"type":"authentication_error"`},
		{ResponsesPath, map[string]string{"Authorization": "Bearer nope"}, 401, `"code":"invalid_api_key"`},
		{ResponsesPath, map[string]string{"Authorization": "", "X-Api-Key": "sk-test"}, 401, `"invalid_api_key"`},
		{OllamaChatPath, map[string]string{"Authorization": "Bearer nope"}, 401, `{"error":"unauthorized"}`},
		{OllamaChatPath, nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.path, tt.header), func(t *testing.T) {
			resp := post(t, ts.URL+tt.path, formatBody(tt.path, false, "hi"), tt.header)
			body := readAll(t, resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("got %d %s; want %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}

// terminal reports whether a stream of the endpoint at path holds its last event.
func terminal(path string, body []byte) bool {
	switch path {
	case ResponsesPath:
		return bytes.Contains(body, []byte("event: response.completed"))
	case MessagesPath:
		return bytes.Contains(body, []byte("event: message_stop"))
	}
	return bytes.Contains(body, []byte(`"done":true`))
}

// streamEvents splits a stream into its events' data: SSE events or NDJSON lines.
func streamEvents(t *testing.T, path string, body []byte) []string {
	t.Helper()
	if path == OllamaChatPath || path == OllamaGeneratePath {
		if len(body) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	}
	events, _, err := readSSE(body)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events {
		out = append(out, ev.data)
	}
	return out
}

func TestFormatStreamFaults(t *testing.T) {
	reply := Reply{Reasoning: "Let me think about it.", Content: longText, ToolCalls: []ToolCall{{Name: "f", Arguments: `{"a":"` + strings.Repeat("b", 200) + `"}`}}}
	for _, path := range newPaths {
		t.Run(path+"/truncate", func(t *testing.T) {
			rec := serve(scripted(reply), path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "truncate:5"})
			body := rec.body()
			if events := streamEvents(t, path, body); len(events) != 5 || terminal(path, body) {
				t.Errorf("%d events, terminal %v; want 5 and none", len(events), terminal(path, body))
			}
		})
		t.Run(path+"/truncate mid-item", func(t *testing.T) {
			rec := serve(scripted(reply), path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "truncate:100000"})
			body := rec.body()
			if terminal(path, body) || len(streamEvents(t, path, body)) < 10 {
				t.Errorf("want the whole stream but its last event")
			}
		})
		t.Run(path+"/error-event", func(t *testing.T) {
			rec := serve(scripted(reply), path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "error-event:4"})
			body := rec.body()
			events := streamEvents(t, path, body)
			if len(events) != 5 || terminal(path, body) {
				t.Fatalf("%d events, want 4 and an error", len(events))
			}
			d := decodeMap(t, events[4])
			switch path {
			case ResponsesPath:
				if d["type"] != "error" || num(d["sequence_number"]) != 4 || str(d["message"]) == "" || d["code"] == nil {
					t.Errorf("error event %v", d)
				}
				if !bytes.Contains(body, []byte("event: error\n")) {
					t.Errorf("no event: error line")
				}
			case MessagesPath:
				if d["type"] != "error" || d["error"].(map[string]any)["type"] != "overloaded_error" {
					t.Errorf("error event %v", d)
				}
			default:
				if str(d["error"]) == "" || len(d) != 1 {
					t.Errorf("error line %v", d)
				}
			}
		})
		t.Run(path+"/garbage", func(t *testing.T) {
			rec := serve(scripted(reply), path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "garbage:3"})
			body := rec.body()
			if !terminal(path, body) || !bytes.Contains(body, []byte("not JSON")) {
				t.Errorf("want garbage and the stream going on to its end")
			}
		})
		t.Run(path+"/huge", func(t *testing.T) {
			rec := serve(scripted(reply), path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "huge:64KB"})
			got := readFormat(t, path, true, rec.body(), Reply{Reasoning: reply.Reasoning, Content: huge(longText, 64<<10), ToolCalls: reply.ToolCalls})
			if len(got.Content) < 64<<10-3 {
				t.Errorf("content %d bytes", len(got.Content))
			}
		})
	}
}

func scripted(r Reply) *Server {
	s := New()
	s.Script = FixedScript(r)
	return s
}

func TestFormatFaultsOverHTTP(t *testing.T) {
	s := scripted(Reply{Content: longText})
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, path := range newPaths {
		t.Run(path+"/status", func(t *testing.T) {
			resp := post(t, ts.URL+path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "status:429"})
			body := readAll(t, resp.Body)
			want := map[string]string{ResponsesPath: `"code":"rate_limit_exceeded"`, MessagesPath: `{"type":"error","error":{"type":"rate_limit_error"`,
				OllamaChatPath: `{"error":"server busy`, OllamaGeneratePath: `{"error":"server busy`}[path]
			if resp.StatusCode != 429 || !strings.Contains(string(body), want) {
				t.Errorf("got %d %s, want 429 %s", resp.StatusCode, body, want)
			}
		})
		t.Run(path+"/html", func(t *testing.T) {
			resp := post(t, ts.URL+path, formatBody(path, false, "hi"), map[string]string{FaultHeader: "html:503"})
			readAll(t, resp.Body)
			if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "text/html" {
				t.Errorf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
		t.Run(path+"/drop", func(t *testing.T) {
			resp := post(t, ts.URL+path, formatBody(path, true, "hi"), map[string]string{FaultHeader: "drop:3"})
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Errorf("read the whole body; want an unexpected EOF")
			}
		})
		t.Run(path+"/whole error-event", func(t *testing.T) {
			resp := post(t, ts.URL+path, formatBody(path, false, "hi"), map[string]string{FaultHeader: "error-event"})
			body := readAll(t, resp.Body)
			if resp.StatusCode != 200 || !json.Valid(body) || !strings.Contains(string(body), `"error"`) {
				t.Errorf("got %d %s", resp.StatusCode, body)
			}
		})
		t.Run(path+"/whole truncate", func(t *testing.T) {
			resp := post(t, ts.URL+path, formatBody(path, false, "hi"), map[string]string{FaultHeader: "truncate"})
			if body := readAll(t, resp.Body); json.Valid(body) || len(body) == 0 {
				t.Errorf("body valid JSON or empty: %d bytes", len(body))
			}
		})
	}
	t.Run("ollama model not found", func(t *testing.T) {
		resp := post(t, ts.URL+OllamaChatPath, formatBody(OllamaChatPath, false, "hi"), map[string]string{FaultHeader: "status:404"})
		body := readAll(t, resp.Body)
		if resp.StatusCode != 404 || string(body) != `{"error":"model \"llama3.2\" not found, try pulling it first"}` {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
	if st := s.Stats(); st.Streams == 0 || st.Requests < int64(5*len(newPaths)) {
		t.Errorf("stats %+v", st)
	}
}

// TestFormatWire checks that the new formats' streams are written with uneven
// boundaries too, and that the wire options apply to their SSE.
func TestFormatWire(t *testing.T) {
	for _, path := range newPaths {
		t.Run(path, func(t *testing.T) {
			split := false
			for seed := range int64(8) {
				s := scripted(Reply{Content: longText})
				s.Seed = seed
				rec := serve(s, path, formatBody(path, true, "hi"), nil)
				for _, seg := range rec.segs[:len(rec.segs)-1] {
					if !strings.HasSuffix(seg, "\n") {
						split = true
					}
				}
				readFormat(t, path, true, rec.body(), Reply{Content: longText})
			}
			if !split {
				t.Errorf("no write ended inside a line in 8 streams")
			}
		})
	}
	for _, path := range []string{ResponsesPath, MessagesPath} {
		t.Run(path+"/crlf,comments,nospace,ascii", func(t *testing.T) {
			want := Reply{Content: "héllo 🎉 " + longText}
			rec := serve(scripted(want), path, formatBody(path, true, "hi"), map[string]string{WireHeader: "crlf,comments,nospace,ascii"})
			body := rec.body()
			if !bytes.Contains(body, []byte("\r\nevent:")) || !bytes.Contains(body, []byte(": keep-alive")) || !utf8.Valid(body) || bytes.ContainsFunc(body, func(r rune) bool { return r > 127 }) {
				t.Errorf("wire options not applied: %q", body[:min(200, len(body))])
			}
			readFormat(t, path, true, body, want)
		})
	}
	t.Run("ollama ascii", func(t *testing.T) {
		want := Reply{Content: "héllo 🎉"}
		rec := serve(scripted(want), OllamaChatPath, formatBody(OllamaChatPath, true, "hi"), map[string]string{WireHeader: "ascii,crlf,comments"})
		body := rec.body()
		if bytes.Contains(body, []byte("\r")) || bytes.Contains(body, []byte(":keep")) || bytes.ContainsFunc(body, func(r rune) bool { return r > 127 }) {
			t.Errorf("NDJSON with CR, comments or non-ASCII: %q", body)
		}
		readFormat(t, OllamaChatPath, true, body, want)
	})
}

// TestFormatScriptErrors checks that a script's error is answered in each format's
// shape, and that arguments that are not an object cannot go out where objects must.
func TestFormatScriptErrors(t *testing.T) {
	for _, path := range newPaths {
		s := New()
		s.Script = func(*Request) ([]Reply, error) {
			return nil, &Error{Status: 529, Type: "overloaded_error", Message: "Overloaded"}
		}
		rec := serve(s, path, formatBody(path, false, "hi"), nil)
		if body := string(rec.body()); rec.status != 529 || !strings.Contains(body, "Overloaded") {
			t.Errorf("%s: got %d %s", path, rec.status, body)
		}
	}
	rec := serve(scripted(Reply{ToolCalls: []ToolCall{{Name: "f", Arguments: "[1]"}}}), MessagesPath, formatBody(MessagesPath, true, "hi"), nil)
	if body := string(rec.body()); rec.status != 500 || !strings.Contains(body, `"type":"api_error"`) {
		t.Errorf("array arguments over Messages: %d %s", rec.status, body)
	}
	rec = serve(scripted(Reply{ToolCalls: []ToolCall{{Name: "f"}}}), OllamaChatPath, formatBody(OllamaChatPath, false, "hi"), nil)
	readFormat(t, OllamaChatPath, false, rec.body(), Reply{ToolCalls: []ToolCall{{Name: "f", Arguments: "{}"}}})
}

// TestFormatStall checks that a stalled stream of each format hangs after its first
// events until the client goes away, and that the server counts the client gone.
func TestFormatStall(t *testing.T) {
	for _, path := range newPaths {
		t.Run(path, func(t *testing.T) {
			s := scripted(Reply{Content: longText})
			ts := httptest.NewServer(s)
			defer ts.Close()
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			b, _ := json.Marshal(formatBody(path, true, "hi"))
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, bytes.NewReader(b))
			req.Header.Set(FaultHeader, "stall:3")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("no first byte: %v", err)
			}
			cancel()
			resp.Body.Close()
			if st, ok := s.WaitStats(5*time.Second, func(st Stats) bool { return st.Gone == 1 && st.Active == 0 }); !ok {
				t.Errorf("stats %+v, want the client gone", st)
			}
		})
	}
}
