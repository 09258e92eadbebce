package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sseEvent is one event as a strict reader sees it.
type sseEvent struct {
	name string
	data string
}

// readSSE parses an event stream strictly: every line is a data, event or comment
// line or blank, lines end in "\n" or "\r\n", and the stream ends at an event
// boundary. Comments are counted, not returned.
func readSSE(body []byte) (events []sseEvent, comments int, err error) {
	var cur sseEvent
	var data []string
	inEvent := false
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return events, comments, fmt.Errorf("stream ends inside a line: %q", body)
		}
		line := string(body[:i])
		body = body[i+1:]
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsRune(line, '\r') {
			return events, comments, fmt.Errorf("bare CR in line %q", line)
		}
		switch {
		case line == "":
			if inEvent {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data, inEvent = sseEvent{}, nil, false
		case strings.HasPrefix(line, ":"):
			comments++
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			inEvent = true
		case strings.HasPrefix(line, "event:"):
			cur.name = strings.TrimPrefix(strings.TrimPrefix(line, "event:"), " ")
			inEvent = true
		default:
			return events, comments, fmt.Errorf("not an SSE line: %q", line)
		}
	}
	if inEvent {
		return events, comments, fmt.Errorf("stream ends inside an event")
	}
	return events, comments, nil
}

// testChunk is a streamed chunk of either endpoint, as a client decodes it.
type testChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int     `json:"index"`
		Text  *string `json:"text"`
		Delta *struct {
			Role      string           `json:"role"`
			Content   *string          `json:"content"`
			ToolCalls []testToolCallDt `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

type testToolCallDt struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      *string `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

// assembled is a stream put back together.
type assembled struct {
	content    map[int]string
	builders   map[int]*strings.Builder
	calls      map[int][]ToolCall
	callIDs    map[int][]string
	finish     map[int]string
	sizes      map[int]bool // byte lengths of content deltas
	order      []int        // choice index of each chunk
	usage      *Usage
	usageNulls int
	chunks     int
}

// assemble checks every event of a stream against the wire format and puts the
// choices back together. It fails t on anything a strict client would reject.
func assemble(t *testing.T, events []sseEvent, legacy, includeUsage bool) *assembled {
	t.Helper()
	a := &assembled{content: map[int]string{}, builders: map[int]*strings.Builder{}, calls: map[int][]ToolCall{}, callIDs: map[int][]string{},
		finish: map[int]string{}, sizes: map[int]bool{}}
	wantObject := "chat.completion.chunk"
	if legacy {
		wantObject = "text_completion"
	}
	if len(events) == 0 || events[len(events)-1].data != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %d events", len(events))
	}
	var id string
	seen := map[int]bool{}
	for i, ev := range events[:len(events)-1] {
		var raw map[string]any
		if err := json.Unmarshal([]byte(ev.data), &raw); err != nil {
			t.Fatalf("event %d is not JSON: %v: %q", i, err, ev.data)
		}
		var c testChunk
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatalf("event %d does not decode as a chunk: %v", i, err)
		}
		if c.Object != wantObject {
			t.Fatalf("event %d: object = %q, want %q", i, c.Object, wantObject)
		}
		if id == "" {
			id = c.ID
		}
		if c.ID != id || c.Created == 0 || c.Model == "" {
			t.Fatalf("event %d: id %q created %d model %q; want id %q and both set", i, c.ID, c.Created, c.Model, id)
		}
		u, hasUsage := raw["usage"]
		switch {
		case !includeUsage && hasUsage:
			t.Fatalf("event %d has usage without include_usage", i)
		case includeUsage && !hasUsage:
			t.Fatalf("event %d lacks the usage field with include_usage", i)
		case u == nil && hasUsage:
			a.usageNulls++
		}
		if len(c.Choices) == 0 {
			if a.usage != nil || c.Usage == nil {
				t.Fatalf("event %d: empty choices without usage, or a second usage chunk", i)
			}
			a.usage = c.Usage
			continue
		}
		if a.usage != nil {
			t.Fatalf("event %d: a choice chunk after the usage chunk", i)
		}
		if len(c.Choices) != 1 {
			t.Fatalf("event %d: %d choices in one chunk, want 1", i, len(c.Choices))
		}
		a.chunks++
		ch := c.Choices[0]
		a.order = append(a.order, ch.Index)
		if _, done := a.finish[ch.Index]; done {
			t.Fatalf("event %d: choice %d goes on after its finish_reason", i, ch.Index)
		}
		if ch.FinishReason != nil {
			a.finish[ch.Index] = *ch.FinishReason
		}
		if legacy {
			if ch.Text == nil || ch.Delta != nil {
				t.Fatalf("event %d: legacy choice has text %v delta %v", i, ch.Text, ch.Delta)
			}
			if ch.FinishReason != nil && *ch.Text != "" {
				t.Fatalf("event %d: finish chunk carries text %q", i, *ch.Text)
			}
			a.add(ch.Index, *ch.Text)
			if *ch.Text != "" {
				a.sizes[len(*ch.Text)] = true
			}
			continue
		}
		d := ch.Delta
		if d == nil {
			t.Fatalf("event %d: chat choice without delta", i)
		}
		if !seen[ch.Index] {
			seen[ch.Index] = true
			if d.Role != "assistant" {
				t.Fatalf("event %d: first delta of choice %d has role %q", i, ch.Index, d.Role)
			}
			if _, ok := raw["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["content"]; !ok {
				t.Fatalf("event %d: first delta lacks content (\"\" or null)", i)
			}
		} else if d.Role != "" {
			t.Fatalf("event %d: role repeated", i)
		}
		if ch.FinishReason != nil && (d.Content != nil || len(d.ToolCalls) > 0) {
			t.Fatalf("event %d: finish chunk has a non-empty delta", i)
		}
		if d.Content != nil {
			a.add(ch.Index, *d.Content)
			if *d.Content != "" {
				a.sizes[len(*d.Content)] = true
			}
		}
		for _, tc := range d.ToolCalls {
			calls := a.calls[ch.Index]
			switch {
			case tc.Index == len(calls):
				if tc.ID == "" || tc.Type != "function" || tc.Function.Name == nil || tc.Function.Arguments == nil || *tc.Function.Arguments != "" {
					t.Fatalf("event %d: first delta of a tool call: %s", i, ev.data)
				}
				a.calls[ch.Index] = append(calls, ToolCall{Name: *tc.Function.Name})
				a.callIDs[ch.Index] = append(a.callIDs[ch.Index], tc.ID)
			case tc.Index == len(calls)-1:
				if tc.ID != "" || tc.Type != "" || tc.Function.Name != nil || tc.Function.Arguments == nil {
					t.Fatalf("event %d: later delta of a tool call: %s", i, ev.data)
				}
				calls[tc.Index].Arguments += *tc.Function.Arguments
			default:
				t.Fatalf("event %d: tool call index %d out of order (have %d)", i, tc.Index, len(calls))
			}
		}
	}
	for i, b := range a.builders {
		a.content[i] = b.String()
	}
	if includeUsage && a.usage == nil {
		t.Fatalf("include_usage but no usage chunk")
	}
	return a
}

func (a *assembled) add(choice int, text string) {
	b := a.builders[choice]
	if b == nil {
		b = new(strings.Builder)
		a.builders[choice] = b
	}
	b.WriteString(text)
}

// check compares a put-together stream with the replies it should carry.
func (a *assembled) check(t *testing.T, want []Reply, path string) {
	t.Helper()
	if len(a.finish) != len(want) {
		t.Errorf("finished choices = %d, want %d", len(a.finish), len(want))
	}
	for i, r := range want {
		if got := a.content[i]; got != r.Content {
			t.Errorf("choice %d content:\n got %.200q (%d bytes)\nwant %.200q (%d bytes)", i, got, len(got), r.Content, len(r.Content))
		}
		var wantCalls []ToolCall
		if path == ChatPath {
			wantCalls = r.ToolCalls
		}
		if got := a.calls[i]; fmt.Sprint(got) != fmt.Sprint(wantCalls) {
			t.Errorf("choice %d tool calls: got %v, want %v", i, got, wantCalls)
		}
		if got, w := a.finish[i], r.finish(path); got != w {
			t.Errorf("choice %d finish_reason = %q, want %q", i, got, w)
		}
	}
}

// segRecorder is a ResponseWriter that keeps each flushed write apart.
type segRecorder struct {
	header http.Header
	status int
	cur    bytes.Buffer
	segs   []string
}

func newSegRecorder() *segRecorder { return &segRecorder{header: http.Header{}} }

func (r *segRecorder) Header() http.Header { return r.header }
func (r *segRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *segRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.cur.Write(b)
}
func (r *segRecorder) Flush() {
	if r.cur.Len() > 0 {
		r.segs = append(r.segs, r.cur.String())
		r.cur.Reset()
	}
}
func (r *segRecorder) body() []byte {
	r.Flush()
	return []byte(strings.Join(r.segs, ""))
}

// serve runs one request through s without a network, keeping write boundaries.
func serve(s *Server, path string, body any, header map[string]string) *segRecorder {
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := newSegRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// post sends a request to a live server.
func post(t *testing.T, url string, body any, header map[string]string) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-test")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}
