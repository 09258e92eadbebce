package upstream

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// longText is a made-up source file with multi-byte characters in it.
var longText = strings.Repeat("static int frobnicate(struct ctx *c, int n) /* ünïcödé — 🎉 */\n{\n\treturn c->n + n;\n}\n", 12)

func chatBody(n int, stream, usage bool, user string) map[string]any {
	b := map[string]any{"model": "gpt-4o-mini", "n": n, "stream": stream,
		"messages": []any{
			map[string]any{"role": "system", "content": "You write C."},
			map[string]any{"role": "user", "content": user},
		}}
	if usage {
		b["stream_options"] = map[string]any{"include_usage": true}
	}
	return b
}

func legacyBody(n int, stream, usage bool, prompt string) map[string]any {
	b := map[string]any{"model": "gpt-3.5-turbo-instruct", "n": n, "stream": stream, "prompt": prompt}
	if usage {
		b["stream_options"] = map[string]any{"include_usage": true}
	}
	return b
}

func TestStream(t *testing.T) {
	calls := []ToolCall{
		{Name: "write_file", Arguments: `{"path":"src/frob.c","text":"` + strings.Repeat(`int x; // é\n`, 8) + `"}`},
		{Name: "run", Arguments: `{"cmd":"make"}`},
	}
	tests := []struct {
		name   string
		path   string
		body   map[string]any
		script Script
		want   []Reply
	}{
		{"echo", ChatPath, chatBody(1, true, false, longText), nil, []Reply{{Content: longText}}},
		{"echo usage", ChatPath, chatBody(1, true, true, longText), nil, []Reply{{Content: longText}}},
		{"n=3 interleaved", ChatPath, chatBody(3, true, true, longText), nil,
			[]Reply{{Content: longText}, {Content: longText}, {Content: longText}}},
		{"empty content", ChatPath, chatBody(1, true, false, ""), nil, []Reply{{Content: ""}}},
		{"length", ChatPath, chatBody(2, true, false, "x"),
			FixedScript(Reply{Content: "cut sho", Finish: "length"}, Reply{Content: "whole"}),
			[]Reply{{Content: "cut sho", Finish: "length"}, {Content: "whole"}}},
		{"tool calls only", ChatPath, chatBody(1, true, true, "x"), FixedScript(Reply{ToolCalls: calls}),
			[]Reply{{ToolCalls: calls}}},
		{"content then tool call, n=2", ChatPath, chatBody(2, true, false, "x"),
			FixedScript(Reply{Content: "Let me write it.", ToolCalls: calls[:1]}, Reply{Content: longText}),
			[]Reply{{Content: "Let me write it.", ToolCalls: calls[:1]}, {Content: longText}}},
		{"legacy", LegacyPath, legacyBody(1, true, false, longText), nil, []Reply{{Content: longText}}},
		{"legacy n=2 usage", LegacyPath, legacyBody(2, true, true, longText), nil,
			[]Reply{{Content: longText}, {Content: longText}}},
		{"legacy ignores tool calls", LegacyPath, legacyBody(1, true, false, "x"),
			FixedScript(Reply{Content: "def f():", ToolCalls: calls}), []Reply{{Content: "def f():", ToolCalls: calls}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.Script = tt.script
			rec := serve(s, tt.path, tt.body, nil)
			if got := rec.header.Get("Content-Type"); !strings.HasPrefix(got, "text/event-stream") {
				t.Fatalf("Content-Type = %q, want text/event-stream", got)
			}
			events, _, err := readSSE(rec.body())
			if err != nil {
				t.Fatal(err)
			}
			usage := tt.body["stream_options"] != nil
			a := assemble(t, events, tt.path == LegacyPath, usage)
			a.check(t, tt.want, tt.path)
			if usage {
				if a.usageNulls != len(events)-2 {
					t.Errorf("chunks with usage:null = %d, want %d", a.usageNulls, len(events)-2)
				}
				u := a.usage
				if u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
					t.Errorf("usage %+v: want completion > 0 and total = prompt + completion", *u)
				}
			}
			n := len(tt.want)
			switches := 0
			for i := 1; i < len(a.order); i++ {
				if a.order[i] != a.order[i-1] {
					switches++
				}
			}
			if n > 1 && len(tt.want[n-1].Content) > 100 && switches < 2*n {
				t.Errorf("choices switch %d times in %v; want interleaved (>= %d)", switches, a.order, 2*n)
			}
		})
	}
}

func TestStreamDeltasUneven(t *testing.T) {
	s := New()
	events, _, err := readSSE(serve(s, ChatPath, chatBody(1, true, false, longText), nil).body())
	if err != nil {
		t.Fatal(err)
	}
	a := assemble(t, events, false, false)
	largest := 0
	for n := range a.sizes {
		largest = max(largest, n)
	}
	if len(a.sizes) < 10 || !a.sizes[1] || largest > 43 {
		t.Errorf("delta sizes %v: want >= 10 distinct sizes, 1 among them, none over 43", a.sizes)
	}
	// Deltas cut words: some delta ends between two letters.
	cutWord, off := false, 0
	for _, ev := range events[:len(events)-1] {
		var c testChunk
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatal(err)
		}
		if d := c.Choices[0].Delta; d != nil && d.Content != nil {
			off += len(*d.Content)
			if off > 0 && off < len(longText) && isLetter(longText[off-1]) && isLetter(longText[off]) {
				cutWord = true
			}
		}
	}
	if !cutWord {
		t.Errorf("no delta ends inside a word")
	}
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func TestWireWritesSplit(t *testing.T) {
	s := New()
	rec := serve(s, ChatPath, chatBody(2, true, true, longText), nil)
	var partial, several, bareData, between int
	for _, seg := range rec.segs {
		if !strings.HasSuffix(seg, "\n\n") {
			partial++
		}
		if strings.Count(seg, "data: ") > 1 {
			several++
		}
		if strings.HasSuffix(seg, "data: ") {
			bareData++
		}
		if strings.HasSuffix(seg, "}\n") {
			between++
		}
	}
	if partial == 0 || several == 0 || bareData == 0 || between == 0 {
		t.Errorf("of %d writes: %d end mid-event, %d hold several events, %d end at \"data: \", %d end between the line ends; want all > 0",
			len(rec.segs), partial, several, bareData, between)
	}

	// The same seed and request cut the same way; Whole writes one event a write.
	again := serve(s, ChatPath, chatBody(2, true, true, longText), nil)
	if got, want := segLens(again.segs), segLens(rec.segs); got != want {
		t.Errorf("same seed and request: write lengths differ:\n got %s\nwant %s", got, want)
	}
	whole := serve(s, ChatPath, chatBody(2, true, true, longText), map[string]string{WireHeader: "whole"})
	for i, seg := range whole.segs {
		if strings.Count(seg, "data: ") != 1 || !strings.HasSuffix(seg, "\n\n") {
			t.Fatalf("whole: write %d = %q, want exactly one event", i, seg)
		}
	}
}

func segLens(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		fmt.Fprintf(&b, "%d ", len(s))
	}
	return b.String()
}

func TestWireOptions(t *testing.T) {
	tests := []struct {
		wire  string
		check func(body string) string // returns a complaint or ""
	}{
		{"crlf", func(b string) string {
			if strings.Count(b, "\n") != strings.Count(b, "\r\n") {
				return "a line ends in bare \\n"
			}
			return ""
		}},
		{"comments", func(b string) string {
			if !strings.HasPrefix(b, ": keep-alive\n\n") || strings.Count(b, ": keep-alive") < 2 {
				return "want a leading comment and more between events"
			}
			return ""
		}},
		{"events", func(b string) string {
			if strings.Count(b, "event: message\ndata: ") != strings.Count(b, "data: ") {
				return "want every data line preceded by an event line"
			}
			return ""
		}},
		{"nospace", func(b string) string {
			if strings.Contains(b, "data: ") || !strings.Contains(b, "data:{") {
				return "want data:{ without a space"
			}
			return ""
		}},
		{"ascii", func(b string) string {
			for i := range len(b) {
				if b[i] >= 0x80 {
					return "non-ASCII byte on the wire"
				}
			}
			if !strings.Contains(b, `\ud83c\udf89`) {
				return "want the emoji as a surrogate pair"
			}
			return ""
		}},
		{"crlf,comments,events,nospace,ascii,whole", func(string) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.wire, func(t *testing.T) {
			rec := serve(New(), ChatPath, chatBody(2, true, true, longText), map[string]string{WireHeader: tt.wire})
			body := rec.body()
			if msg := tt.check(string(body)); msg != "" {
				t.Errorf("%s: %s; body starts %.300q", tt.wire, msg, body)
			}
			events, _, err := readSSE(body)
			if err != nil {
				t.Fatal(err)
			}
			assemble(t, events, false, true).check(t, []Reply{{Content: longText}, {Content: longText}}, ChatPath)
		})
	}
}

func TestNonStreamed(t *testing.T) {
	calls := []ToolCall{{Name: "f", Arguments: `{"a":1}`}}
	tests := []struct {
		name   string
		path   string
		body   map[string]any
		script Script
		want   string // JSON the answer must contain, after normalising id and created
	}{
		{"chat", ChatPath, chatBody(1, false, false, "Hi <b>&"), nil,
			`"object":"chat.completion","created":0,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi <b>&","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":15,"completion_tokens":5,"total_tokens":20,`},
		{"chat tool call", ChatPath, chatBody(1, false, false, "x"), FixedScript(Reply{ToolCalls: calls}),
			`"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_X","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}],"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}]`},
		{"chat n=2", ChatPath, chatBody(2, false, false, "x"), FixedScript(Reply{Content: "a"}, Reply{Content: "b", Finish: "length"}),
			`"choices":[{"index":0,"message":{"role":"assistant","content":"a","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"b","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"length"}]`},
		{"legacy", LegacyPath, legacyBody(1, false, false, "def f():"), nil,
			`"object":"text_completion","created":0,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"def f():","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10},"system_fingerprint":"fp_upstream"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.Script = tt.script
			rec := serve(s, tt.path, tt.body, nil)
			if rec.status != 200 || rec.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d type %q, want 200 application/json", rec.status, rec.header.Get("Content-Type"))
			}
			var v map[string]any
			body := rec.body()
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatal(err)
			}
			got := normalise(string(body))
			if !strings.Contains(got, tt.want) {
				t.Errorf("answer\n got %s\nwant it to contain %s", got, tt.want)
			}
		})
	}
}

// normalise blanks the parts of an answer that change from run to run.
func normalise(s string) string {
	var v map[string]any
	json.Unmarshal([]byte(s), &v)
	s = strings.Replace(s, v["id"].(string), "ID", 1)
	s = strings.Replace(s, `"created":`+jsonNumber(v["created"]), `"created":0`, 1)
	for {
		i := strings.Index(s, `"id":"call_`)
		if i < 0 || s[i+11] == 'X' {
			return s
		}
		s = s[:i+11] + "X" + s[i+11+24:]
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStreamOverHTTP(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp := post(t, ts.URL+ChatPath, chatBody(2, true, true, longText), nil)
	events, _, err := readSSE(readAll(t, resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	assemble(t, events, false, true).check(t, []Reply{{Content: longText}, {Content: longText}}, ChatPath)
	if st := s.Stats(); st.Requests != 1 || st.Streams != 1 || st.Active != 0 || st.MaxActive != 1 || st.Gone != 0 {
		t.Errorf("stats = %+v, want 1 request, 1 stream, none active, max 1, none gone", st)
	}
}
