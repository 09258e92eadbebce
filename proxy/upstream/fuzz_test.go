package upstream

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzStream checks that any content, streamed with any seed and wire, reassembles
// to itself (made valid UTF-8) in any choice.
func FuzzStream(f *testing.F) {
	f.Add("hello wörld 🎉", int64(1), uint8(2), "default")
	f.Add("", int64(0), uint8(1), "crlf,ascii")
	f.Add("a\r\nb\x00c\xff", int64(5), uint8(3), "events,nospace,comments")
	f.Fuzz(func(t *testing.T, content string, seed int64, n uint8, wire string) {
		if _, err := ParseWire(wire); err != nil || strings.Contains(wire, "pace") {
			return
		}
		n = n%4 + 1
		s := New()
		s.Seed = seed
		s.Script = FixedScript(Reply{Content: content, ToolCalls: []ToolCall{{Name: "f", Arguments: content}}})
		rec := serve(s, ChatPath, chatBody(int(n), true, true, "x"), map[string]string{WireHeader: wire})
		events, _, err := readSSE(rec.body())
		if err != nil {
			t.Fatal(err)
		}
		valid := strings.ToValidUTF8(content, "\uFFFD")
		want := Reply{Content: valid, ToolCalls: []ToolCall{{Name: "f", Arguments: valid}}}
		replies := make([]Reply, n)
		for i := range replies {
			replies[i] = want
		}
		assemble(t, events, false, true).check(t, replies, ChatPath)
	})
}

// FuzzRequest checks that any body gets a JSON answer: 200, or a 4xx in the error
// shape, never a panic.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,"stream":true}`), false)
	f.Add([]byte(`{"model":"m","prompt":["a"],"stream_options":{"include_usage":true}}`), true)
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"#upstream: {\"content\":\"x\"}"}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, legacy bool) {
		path := ChatPath
		if legacy {
			path = LegacyPath
		}
		rec := serve(New(), path, body, nil)
		out := rec.body()
		switch {
		case rec.status == 200 && strings.HasPrefix(rec.header.Get("Content-Type"), "text/event-stream"):
			if _, _, err := readSSE(out); err != nil {
				t.Fatalf("stream: %v", err)
			}
		case rec.status == 200 || rec.status == 400:
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("status %d, body not JSON: %q", rec.status, out)
			}
		default:
			t.Fatalf("status %d for %q", rec.status, body)
		}
	})
}

// FuzzFormatRequest checks that any body sent to the Responses, Messages and Ollama
// endpoints gets an answer in the API's shape: a stream that parses, a JSON body, or
// a 400 in the API's error shape, never a panic.
func FuzzFormatRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"function_call_output","call_id":"c","output":"x"}],"stream":true}`), uint8(0))
	f.Add([]byte(`{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}],"stream":true}`), uint8(1))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"#upstream: {\"reasoning\":\"r\",\"content\":\"x\",\"tool_calls\":[{\"name\":\"f\",\"arguments\":\"{}\"}]}"}]}`), uint8(2))
	f.Add([]byte(`{"model":"m","prompt":"hi","stream":false}`), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		path := newPaths[int(which)%len(newPaths)]
		rec := serve(New(), path, body, nil)
		out := rec.body()
		ct := rec.header.Get("Content-Type")
		switch {
		case rec.status == 200 && strings.HasPrefix(ct, "text/event-stream"):
			if _, _, err := readSSE(out); err != nil {
				t.Fatalf("stream: %v", err)
			}
		case rec.status == 200 && ct == "application/x-ndjson":
			for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				if !json.Valid([]byte(line)) {
					t.Fatalf("line not JSON: %q", line)
				}
			}
		case rec.status == 200 || rec.status == 400:
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("status %d, body not JSON: %q", rec.status, out)
			}
			if rec.status == 400 && !strings.Contains(string(out), `"error"`) {
				t.Fatalf("400 without an error: %s", out)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.status, body, out)
		}
	})
}

// FuzzFormatStream checks that any reply streamed by the Responses, Messages and
// Ollama endpoints with any seed reassembles to itself, and that its closing
// objects agree with its deltas.
func FuzzFormatStream(f *testing.F) {
	f.Add("hello wörld 🎉", "think", "ls -l", int64(1), uint8(0))
	f.Add("", "", "", int64(0), uint8(1))
	f.Add("a\r\nb\x00c\xff", "é\xff", "x", int64(5), uint8(2))
	f.Add("p", "t", "", int64(3), uint8(3))
	f.Fuzz(func(t *testing.T, content, reasoning, input string, seed int64, which uint8) {
		path := newPaths[int(which)%len(newPaths)]
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		args := string(marshal(map[string]string{"s": valid(input)}))
		s := scripted(Reply{Content: content, Reasoning: reasoning, ToolCalls: []ToolCall{{Name: "f", Arguments: args}},
			CustomToolCalls: []CustomToolCall{{Name: "c", Input: input}}})
		s.Seed = seed
		rec := serve(s, path, formatBody(path, true, "x"), nil)
		if rec.status != 200 {
			t.Fatalf("status %d: %s", rec.status, rec.body())
		}
		readFormat(t, path, true, rec.body(), Reply{Content: valid(content), Reasoning: valid(reasoning),
			ToolCalls: []ToolCall{{Name: "f", Arguments: args}}, CustomToolCalls: []CustomToolCall{{Name: "c", Input: valid(input)}}})
	})
}
