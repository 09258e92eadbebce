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
