package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/proxy/upstream"
)

// Most of these tests run the proxy in front of ollamaUpstream, a scripted Ollama
// that writes its NDJSON in uneven pieces, flushed one by one, as a model server
// does, with fixed times (so that a clean reply can be compared byte for byte) and
// the broken and hostile lines the shared test upstream does not write;
// TestOllamaTestUpstream runs the main cases against that one (proxy/upstream).

// ollamaReply is what the scripted Ollama answers.
type ollamaReply struct {
	thinking, content string
	calls             []map[string]any // each {"name": ..., "arguments": {...}}
	callsInOneLine    bool             // all calls in one line (else one a line)
	reason            string           // done_reason; default "stop"
	// fault breaks the stream after `after` lines: "truncate" (ends cleanly, no
	// done line), "drop" (the connection breaks), "garbage" (a line that is not
	// JSON, then the rest), "error" (an error line, then the end), "nonewline"
	// (the last line lacks its newline); for a whole body, "error" answers
	// {"error": ...}.
	fault string
	after int
}

const ollamaCreated = "2025-05-01T10:00:00.123456789Z"

type ollamaUpstream struct {
	srv      *httptest.Server
	mu       sync.Mutex
	reply    ollamaReply
	requests int
	lastBody []byte
}

func newOllamaUpstream(t *testing.T) *ollamaUpstream {
	u := &ollamaUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

// useOllama points the proxy of e at a scripted Ollama answering r.
func useOllama(t *testing.T, e *env, r ollamaReply) *ollamaUpstream {
	u := newOllamaUpstream(t)
	u.reply = r
	e.srv.upstream, _ = url.Parse(u.srv.URL)
	return u
}

func (u *ollamaUpstream) set(r ollamaReply) {
	u.mu.Lock()
	u.reply = r
	u.mu.Unlock()
}

func (u *ollamaUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests
}

func (u *ollamaUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.requests++
	u.lastBody = body
	reply := u.reply
	u.mu.Unlock()
	var req struct {
		Model  string `json:"model"`
		Stream *bool  `json:"stream"`
	}
	if json.Unmarshal(body, &req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid request"}`)
		return
	}
	var generate bool
	switch r.URL.Path {
	case "/api/chat":
	case "/api/generate":
		generate = true
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "404 page not found")
		return
	}
	if req.Stream != nil && !*req.Stream {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if reply.fault == "error" {
			io.WriteString(w, `{"error":"model runner has unexpectedly stopped"}`)
			return
		}
		w.Write(ollamaWholeBody(generate, req.Model, reply))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	lines := ollamaLines(generate, req.Model, reply)
	var out []byte
	switch reply.fault {
	case "truncate", "drop":
		lines = lines[:min(reply.after, len(lines))]
	case "garbage":
		lines = append(lines[:reply.after:reply.after], append([][]byte{[]byte("this is <not> JSON at all\n")}, lines[reply.after:]...)...)
	case "error":
		lines = append(lines[:reply.after:reply.after], []byte(`{"error":"an error was encountered while running the model: unexpected EOF"}`+"\n"))
	}
	for _, l := range lines {
		out = append(out, l...)
	}
	if reply.fault == "nonewline" {
		out = out[:len(out)-1]
	}
	writePieces(w, out)
	if reply.fault == "drop" {
		panic(http.ErrAbortHandler)
	}
}

// writePieces writes b in uneven pieces, each flushed.
func writePieces(w http.ResponseWriter, b []byte) {
	sizes := []int{1, 7, 13, 3, 29, 2, 61}
	for i, k := 0, 0; i < len(b); k++ {
		n := min(sizes[k%len(sizes)], len(b)-i)
		w.Write(b[i : i+n])
		w.(http.Flusher).Flush()
		i += n
	}
}

// pieces splits s into pieces of about n bytes, at rune boundaries.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && !isRuneStart(s[k]) {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

type ollamaChatLine struct {
	Model      string         `json:"model"`
	CreatedAt  string         `json:"created_at"`
	Message    map[string]any `json:"message"`
	Done       bool           `json:"done"`
	DoneReason string         `json:"done_reason,omitempty"`
	ollamaStats
}

type ollamaGenerateLine struct {
	Model      string `json:"model"`
	CreatedAt  string `json:"created_at"`
	Response   string `json:"response"`
	Thinking   string `json:"thinking,omitempty"`
	Done       bool   `json:"done"`
	DoneReason string `json:"done_reason,omitempty"`
	Context    []int  `json:"context,omitempty"`
	ollamaStats
}

type ollamaStats struct {
	TotalDuration      int64 `json:"total_duration,omitempty"`
	LoadDuration       int64 `json:"load_duration,omitempty"`
	PromptEvalCount    int   `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64 `json:"prompt_eval_duration,omitempty"`
	EvalCount          int   `json:"eval_count,omitempty"`
	EvalDuration       int64 `json:"eval_duration,omitempty"`
}

var ollamaDoneStats = ollamaStats{4883583458, 1334875, 26, 342546000, 282, 4535599000}

func jsonLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func ollamaFunctions(calls []map[string]any) []any {
	var out []any
	for _, c := range calls {
		out = append(out, map[string]any{"function": c})
	}
	return out
}

// ollamaLines is the NDJSON stream of r, a line each.
func ollamaLines(generate bool, model string, r ollamaReply) [][]byte {
	reason := r.reason
	if reason == "" {
		reason = "stop"
	}
	var lines [][]byte
	if generate {
		for _, p := range pieces(r.thinking, 9) {
			lines = append(lines, jsonLine(ollamaGenerateLine{Model: model, CreatedAt: ollamaCreated, Thinking: p}))
		}
		for _, p := range pieces(r.content, 9) {
			lines = append(lines, jsonLine(ollamaGenerateLine{Model: model, CreatedAt: ollamaCreated, Response: p}))
		}
		return append(lines, jsonLine(ollamaGenerateLine{Model: model, CreatedAt: ollamaCreated, Done: true, DoneReason: reason,
			Context: []int{1, 2, 3, 4}, ollamaStats: ollamaDoneStats}))
	}
	msg := func(k, v string) map[string]any {
		m := map[string]any{"role": "assistant", "content": ""}
		if k != "" {
			m[k] = v
		}
		return m
	}
	for _, p := range pieces(r.thinking, 9) {
		lines = append(lines, jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: msg("thinking", p)}))
	}
	for _, p := range pieces(r.content, 9) {
		lines = append(lines, jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: msg("content", p)}))
	}
	if r.callsInOneLine && len(r.calls) > 0 {
		m := msg("", "")
		m["tool_calls"] = ollamaFunctions(r.calls)
		lines = append(lines, jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: m}))
	} else {
		for _, c := range r.calls {
			m := msg("", "")
			m["tool_calls"] = ollamaFunctions([]map[string]any{c})
			lines = append(lines, jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: m}))
		}
	}
	return append(lines, jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: msg("", ""), Done: true,
		DoneReason: reason, ollamaStats: ollamaDoneStats}))
}

// ollamaWholeBody is the stream: false body of r.
func ollamaWholeBody(generate bool, model string, r ollamaReply) []byte {
	reason := r.reason
	if reason == "" {
		reason = "stop"
	}
	if generate {
		return jsonLine(ollamaGenerateLine{Model: model, CreatedAt: ollamaCreated, Response: r.content, Thinking: r.thinking,
			Done: true, DoneReason: reason, Context: []int{1, 2, 3}, ollamaStats: ollamaDoneStats})
	}
	m := map[string]any{"role": "assistant", "content": r.content}
	if r.thinking != "" {
		m["thinking"] = r.thinking
	}
	if len(r.calls) > 0 {
		m["tool_calls"] = ollamaFunctions(r.calls)
	}
	return jsonLine(ollamaChatLine{Model: model, CreatedAt: ollamaCreated, Message: m, Done: true, DoneReason: reason, ollamaStats: ollamaDoneStats})
}

// ollamaGot is what a client received from an Ollama stream, read strictly: every
// line a JSON object, ended by its newline, nothing after the done line.
type ollamaGot struct {
	raw      []byte
	lines    []map[string]any
	content  string
	thinking string
	calls    []map[string]any // the function objects
	last     map[string]any   // the done: true line
	errors   []string
}

func readOllama(t *testing.T, resp *http.Response, generate bool) *ollamaGot {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	g := &ollamaGot{raw: raw}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		t.Errorf("the stream does not end with a newline: %q", raw[max(0, len(raw)-80):])
	}
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		if line == "" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil || obj == nil {
			t.Fatalf("a line that is not a JSON object: %q (%v)", line, err)
		}
		if g.last != nil {
			t.Fatalf("a line after the done line: %q", line)
		}
		g.lines = append(g.lines, obj)
		if e, ok := obj["error"]; ok {
			s, _ := e.(string)
			g.errors = append(g.errors, s)
			continue
		}
		if generate {
			s, _ := obj["response"].(string)
			g.content += s
			s, _ = obj["thinking"].(string)
			g.thinking += s
		} else {
			msg, _ := obj["message"].(map[string]any)
			s, _ := msg["content"].(string)
			g.content += s
			s, _ = msg["thinking"].(string)
			g.thinking += s
			calls, _ := msg["tool_calls"].([]any)
			for _, c := range calls {
				fn, _ := c.(map[string]any)["function"].(map[string]any)
				g.calls = append(g.calls, fn)
			}
		}
		if obj["done"] == true {
			g.last = obj
		}
	}
	return g
}

func ollamaPath(generate bool) string {
	if generate {
		return "/api/generate"
	}
	return "/api/chat"
}

// ollamaBody is a request; stream nil leaves the field out.
func ollamaBody(generate bool, stream *bool, user string) map[string]any {
	b := map[string]any{"model": "test-model", "options": map[string]any{"temperature": 0}, "keep_alive": "5m"}
	if generate {
		b["prompt"] = user
		b["raw"] = false
	} else {
		b["messages"] = []any{map[string]any{"role": "system", "content": "You are helpful."}, map[string]any{"role": "user", "content": user}}
	}
	if stream != nil {
		b["stream"] = *stream
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// direct is what the scripted upstream answers body itself.
func (u *ollamaUpstream) direct(t *testing.T, generate bool, body any) []byte {
	resp := post(t, u.srv.URL+ollamaPath(generate), body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// checkCut checks the end of a blocked Ollama reply and the citation of file.
func checkCut(t *testing.T, e *env, end map[string]any, path string) {
	t.Helper()
	if end == nil {
		t.Fatalf("no done line")
	}
	if end["done_reason"] != "content_filter" || end["model"] != "test-model" {
		t.Errorf("the last line %v: want done_reason content_filter of test-model", end)
	}
	if ts, _ := end["created_at"].(string); ts == "" || func() bool { _, err := time.Parse(time.RFC3339Nano, ts); return err != nil }() {
		t.Errorf("created_at %v", end["created_at"])
	}
	ms, _ := end["copyleft_matches"].([]any)
	if len(ms) == 0 {
		t.Fatalf("no copyleft_matches in %v", end)
	}
	m := ms[0].(map[string]any)
	if m["path"] != path || m["repo"] != "gen" || m["license"] != "GPL-2.0-only" || m["action"] != "block" ||
		m["tokens"].(float64) < float64(e.ix.Params().Threshold()) {
		t.Errorf("copyleft_matches[0] = %v", m)
	}
}

func TestOllamaStreamBlocked(t *testing.T) {
	for _, generate := range []bool{false, true} {
		t.Run(ollamaPath(generate), func(t *testing.T) {
			e := newEnv(t, "block", "")
			thr := e.ix.Params().Threshold()
			answer := markdownAnswer(excerpt(e.gpl[3], 5, 60))
			if generate {
				answer = "/* walker */\n" + excerpt(e.gpl[3], 5, 60)
			}
			up := useOllama(t, e, ollamaReply{content: answer})
			for _, stream := range []*bool{ptr(true), nil} {
				g := readOllama(t, post(t, e.px.URL+ollamaPath(generate), ollamaBody(generate, stream, "write the walker")), generate)
				if got := e.longestRun(g.content); got >= thr {
					t.Errorf("the client received a run of %d tokens (threshold %d)", got, thr)
				}
				prefix := "Sure! Here is an implementation:"
				if generate {
					prefix = "/* walker */"
				}
				if !strings.HasPrefix(g.content, prefix) || len(g.content) >= len(answer) {
					t.Errorf("content %q: want the clean start, cut", g.content)
				}
				if len(g.errors) > 0 {
					t.Errorf("error lines %v", g.errors)
				}
				checkCut(t, e, g.last, "src/gen3.c")
				if generate {
					if r, ok := g.last["response"]; !ok || r != "" {
						t.Errorf("generate's last line has response %v", r)
					}
				} else if msg, _ := g.last["message"].(map[string]any); msg["role"] != "assistant" || msg["content"] != "" {
					t.Errorf("the last line's message %v", g.last["message"])
				}
				t.Logf("stream %v: %d lines, the last %s", stream != nil, len(g.lines), bytes.TrimSpace(g.raw[bytes.LastIndexByte(g.raw[:len(g.raw)-1], '\n')+1:]))
			}
			if up.count() != 2 {
				t.Errorf("%d upstream requests", up.count())
			}
		})
	}
}

func TestOllamaStreamCleanIsByteIdentical(t *testing.T) {
	e := newEnv(t, "block", "")
	reply := ollamaReply{
		thinking: "The user wants an adder. I will write a tiny Go function. ",
		content:  "Sure:\n\n```go\nfunc add(a, b int) int {\n\treturn a + b // é <>&\n}\n```\n" + strings.Repeat("More prose, unrelated to anything. ", 30),
		calls:    []map[string]any{{"name": "get_weather", "arguments": map[string]any{"city": "Paris", "unit": "celsius"}}},
	}
	up := useOllama(t, e, reply)
	for _, generate := range []bool{false, true} {
		for _, stream := range []*bool{ptr(true), nil} {
			body := ollamaBody(generate, stream, "write an adder")
			want := up.direct(t, generate, body)
			resp := post(t, e.px.URL+ollamaPath(generate), body)
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q", ct)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, want) {
				t.Errorf("%s (stream field %v): the proxy changed a clean stream:\n got %q\nwant %q", ollamaPath(generate), stream != nil, got, want)
			}
			// The body went to the upstream untouched (no stream field added).
			up.mu.Lock()
			fwd := up.lastBody
			up.mu.Unlock()
			if bytes.Contains(fwd, []byte(`"stream"`)) != (stream != nil) || !bytes.Contains(fwd, []byte(`"keep_alive":"5m"`)) {
				t.Errorf("forwarded body %s", fwd)
			}
		}
	}
}

func TestOllamaToolCallBlocked(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[4], 2, 50)
	clean := map[string]any{"name": "get_weather", "arguments": map[string]any{"city": "Paris"}}
	copying := map[string]any{"name": "write_file", "arguments": map[string]any{"path": "walk.c", "content": code}}
	for _, oneLine := range []bool{false, true} {
		up := useOllama(t, e, ollamaReply{content: "I will write the file.", calls: []map[string]any{clean, copying}, callsInOneLine: oneLine})
		g := readOllama(t, post(t, e.px.URL+"/api/chat", ollamaBody(false, nil, "save the walker")), false)
		if g.content != "I will write the file." {
			t.Errorf("content %q", g.content)
		}
		if len(g.calls) != 1 || g.calls[0]["name"] != "get_weather" || g.calls[0]["arguments"].(map[string]any)["city"] != "Paris" {
			t.Errorf("calls %v: want the clean call only, whole", g.calls)
		}
		if bytes.Contains(g.raw, []byte("write_file")) {
			t.Errorf("the copying call's name went out")
		}
		checkCut(t, e, g.last, "src/gen4.c")
		_ = up
	}
	// Whole: the same.
	useOllama(t, e, ollamaReply{content: "I will write the file.", calls: []map[string]any{clean, copying}})
	w := readOllamaWhole(t, post(t, e.px.URL+"/api/chat", ollamaBody(false, ptr(false), "save the walker")))
	msg := w["message"].(map[string]any)
	calls, _ := msg["tool_calls"].([]any)
	if msg["content"] != "I will write the file." || len(calls) != 1 || calls[0].(map[string]any)["function"].(map[string]any)["name"] != "get_weather" {
		t.Errorf("whole message %v: want the content and the clean call", msg)
	}
	checkCut(t, e, w, "src/gen4.c")
}

func TestOllamaThinkingBlocked(t *testing.T) {
	for _, generate := range []bool{false, true} {
		t.Run(ollamaPath(generate), func(t *testing.T) {
			e := newEnv(t, "block", "")
			thinking := "I remember a walker like this:\n\n```c\n" + excerpt(e.gpl[6], 3, 55) + "```\n"
			useOllama(t, e, ollamaReply{thinking: thinking, content: "Here is an original answer."})
			g := readOllama(t, post(t, e.px.URL+ollamaPath(generate), ollamaBody(generate, nil, "think about a walker")), generate)
			if got := e.longestRun(g.thinking); got >= e.ix.Params().Threshold() {
				t.Errorf("the thinking leaked a run of %d tokens", got)
			}
			if !strings.HasPrefix(g.thinking, "I remember a walker") || g.content != "" {
				t.Errorf("thinking %q, content %q: want the thinking cut, no content after it", g.thinking, g.content)
			}
			checkCut(t, e, g.last, "src/gen6.c")

			// Whole.
			w := readOllamaWhole(t, post(t, e.px.URL+ollamaPath(generate), ollamaBody(generate, ptr(false), "think about a walker")))
			holder := w
			if !generate {
				holder = w["message"].(map[string]any)
			}
			th, _ := holder["thinking"].(string)
			if got := e.longestRun(th); got >= e.ix.Params().Threshold() || !strings.HasPrefix(th, "I remember") {
				t.Errorf("whole thinking %q (run %d)", th, got)
			}
			key := "content"
			if generate {
				key = "response"
			}
			if holder[key] != "" {
				t.Errorf("whole %s %q after a cut thinking", key, holder[key])
			}
			checkCut(t, e, w, "src/gen6.c")
		})
	}
}

// TestOllamaInterleaved splits a copy between two stretches of content with
// reasoning between them, or of reasoning with content between them: a client
// joins the stretches, so the copy must be found. The reasoning's copy is in a code
// fence opened long before the split (TestOllamaFence checks that the resumed
// text is read inside it).
func TestOllamaInterleaved(t *testing.T) {
	e := newEnv(t, "block", "")
	thr := e.ix.Params().Threshold()
	// A copy of at least thr tokens whose two halves each hold fewer, from line
	// from of gen2.c on; with a comment in the second half when comment is set
	// (read as prose, outside its fence, the comment's words would break the run).
	split := func() (code string, half int, path string) {
		for end := 6; end < 80; end++ {
			code := excerpt(e.gpl[2], 4, end)
			if e.longestRun(code) < thr {
				continue
			}
			for i := strings.IndexByte(code, '\n') + 1; i > 0 && i < len(code); i += strings.IndexByte(code[i:], '\n') + 1 {
				if e.longestRun(code[:i]) < thr && e.longestRun(code[i:]) < thr {
					return code, i, "src/gen2.c"
				}
			}
		}
		t.Fatal("no excerpt splits into two halves below the threshold")
		return
	}
	var pad strings.Builder
	pad.WriteString("Recall the helpers:\n\n```c\n")
	for i := range 30 {
		fmt.Fprintf(&pad, "static int pad_%d = %d; /* a padding line, %d */\n", i, i*7, i)
	}
	for _, kind := range []string{"content", "thinking"} {
		other := map[string]string{"content": "thinking", "thinking": "content"}[kind]
		code, half, path := split()
		first, rest := code[:half], code[half:]
		if kind == "thinking" {
			first, rest = pad.String()+first, rest+"```\n"
		}
		line := func(k, v string) []byte {
			return jsonLine(ollamaChatLine{Model: "test-model", CreatedAt: ollamaCreated, Message: map[string]any{"role": "assistant", "content": "", k: v}})
		}
		var b []byte
		for _, p := range pieces(first, 11) {
			b = append(b, line(kind, p)...)
		}
		b = append(b, line(other, "hmm, let me go on. ")...)
		for _, p := range pieces(rest, 11) {
			b = append(b, line(kind, p)...)
		}
		b = append(b, jsonLine(ollamaChatLine{Model: "test-model", CreatedAt: ollamaCreated, Message: map[string]any{"role": "assistant", "content": ""}, Done: true, DoneReason: "stop"})...)
		replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			writePieces(w, b)
		}))
		defer replay.Close()
		e.srv.upstream, _ = url.Parse(replay.URL)
		g := readOllama(t, post(t, e.px.URL+"/api/chat", ollamaBody(false, nil, "walker")), false)
		got := map[string]string{"content": g.content, "thinking": g.thinking}[kind]
		if run := e.longestRun(got); run >= thr {
			t.Errorf("%s: the joined text holds a run of %d tokens (threshold %d)", kind, run, thr)
		}
		checkCut(t, e, g.last, path)
	}
}

// readOllamaWhole reads a whole (stream: false) Ollama body.
func readOllamaWhole(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return obj
}

func TestOllamaWhole(t *testing.T) {
	e := newEnv(t, "block", "")
	thr := e.ix.Params().Threshold()
	for _, generate := range []bool{false, true} {
		key := "content"
		if generate {
			key = "response"
		}
		get := func(obj map[string]any) string {
			if generate {
				s, _ := obj["response"].(string)
				return s
			}
			s, _ := obj["message"].(map[string]any)["content"].(string)
			return s
		}
		// Clean: byte for byte.
		up := useOllama(t, e, ollamaReply{content: "An original answer: <b>42</b> & more.", thinking: "easy"})
		body := ollamaBody(generate, ptr(false), "what is the answer?")
		want := up.direct(t, generate, body)
		resp := post(t, e.px.URL+ollamaPath(generate), body)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want) || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s: a clean whole reply changed:\n got %q\nwant %q", key, got, want)
		}
		// Copying: cut.
		answer := markdownAnswer(excerpt(e.gpl[7], 1, 45))
		up.set(ollamaReply{content: answer})
		w := readOllamaWhole(t, post(t, e.px.URL+ollamaPath(generate), body))
		if c := get(w); e.longestRun(c) >= thr || !strings.HasPrefix(c, "Sure! Here is") || w["done"] != true {
			t.Errorf("%s: whole %q (run %d), done %v", key, c, e.longestRun(c), w["done"])
		}
		checkCut(t, e, w, "src/gen7.c")
		// An error body passes as it came.
		up.set(ollamaReply{fault: "error"})
		resp = post(t, e.px.URL+ollamaPath(generate), body)
		got, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != `{"error":"model runner has unexpectedly stopped"}` {
			t.Errorf("error body %q", got)
		}
	}
}

// TestOllamaUnlabelledStream: an upstream that streams NDJSON under
// application/json (as a misconfigured gateway might) is still checked line by
// line, not passed because its first line is clean.
func TestOllamaUnlabelledStream(t *testing.T) {
	e := newEnv(t, "block", "")
	lines := ollamaLines(false, "test-model", ollamaReply{content: markdownAnswer(excerpt(e.gpl[3], 5, 60))})
	replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(bytes.Join(lines, nil))
	}))
	defer replay.Close()
	e.srv.upstream, _ = url.Parse(replay.URL)
	resp := post(t, e.px.URL+"/api/chat", ollamaBody(false, nil, "x"))
	resp.Header.Set("Content-Type", "application/x-ndjson") // read it as the stream it is
	g := readOllama(t, resp, false)
	if got := e.longestRun(g.content); got >= e.ix.Params().Threshold() {
		t.Errorf("a run of %d tokens passed", got)
	}
	checkCut(t, e, g.last, "src/gen3.c")
}

func TestOllamaAnnotate(t *testing.T) {
	e := newEnv(t, "annotate", "")
	answer := markdownAnswer(excerpt(e.gpl[1], 3, 40))
	up := useOllama(t, e, ollamaReply{content: answer})
	for _, generate := range []bool{false, true} {
		body := ollamaBody(generate, nil, "x")
		want := up.direct(t, generate, body)
		g := readOllama(t, post(t, e.px.URL+ollamaPath(generate), body), generate)
		if g.content != answer || g.last == nil || g.last["done_reason"] != "stop" {
			t.Fatalf("annotate changed the text or the end: %q %v", g.content, g.last)
		}
		ms, _ := g.last["copyleft_matches"].([]any)
		if len(ms) == 0 || ms[0].(map[string]any)["path"] != "src/gen1.c" || ms[0].(map[string]any)["action"] != "annotate" {
			t.Errorf("copyleft_matches %v", g.last["copyleft_matches"])
		}
		// Every line but the last is byte for byte the upstream's.
		gl, wl := bytes.SplitAfter(g.raw, []byte("\n")), bytes.SplitAfter(want, []byte("\n"))
		if len(gl) != len(wl) {
			t.Fatalf("%d lines, the upstream sent %d", len(gl), len(wl))
		}
		for i := 0; i < len(gl)-2; i++ {
			if !bytes.Equal(gl[i], wl[i]) {
				t.Errorf("line %d changed: %q, was %q", i, gl[i], wl[i])
			}
		}
		var last map[string]any
		json.Unmarshal(wl[len(wl)-2], &last)
		for k, v := range last {
			if !reflect.DeepEqual(g.last[k], v) {
				t.Errorf("the done line's %s is %v, was %v", k, g.last[k], v)
			}
		}
		// Whole.
		w := readOllamaWhole(t, post(t, e.px.URL+ollamaPath(generate), ollamaBody(generate, ptr(false), "x")))
		content := ""
		if generate {
			content, _ = w["response"].(string)
		} else {
			content, _ = w["message"].(map[string]any)["content"].(string)
		}
		if ms, _ := w["copyleft_matches"].([]any); content != answer || w["done_reason"] != "stop" || len(ms) == 0 {
			t.Errorf("whole annotated: content changed %v, done_reason %v, matches %v", content != answer, w["done_reason"], ms)
		}
	}
}

func TestOllamaEcho(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[5], 2, 50)
	for _, generate := range []bool{false, true} {
		user := "Explain this code:\n\n```c\n" + code + "```\n"
		reply := "This code:\n\n```c\n" + code + "```\n\nwalks the list."
		if generate {
			user, reply = code, code
		}
		up := useOllama(t, e, ollamaReply{content: reply})
		body := ollamaBody(generate, nil, user)
		want := up.direct(t, generate, body)
		resp := post(t, e.px.URL+ollamaPath(generate), body)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: repeating the user's own code was changed:\n got %q", ollamaPath(generate), got[max(0, len(got)-300):])
		}
	}
}

func TestOllamaBrokenStreams(t *testing.T) {
	e := newEnv(t, "block", "")
	content := "An original answer, in a few lines of prose that copy nothing at all."
	up := useOllama(t, e, ollamaReply{content: content})
	for _, generate := range []bool{false, true} {
		for _, tt := range []struct {
			fault    string
			errorHas string // "" for no error line
		}{
			{"truncate", "done: true"},
			{"drop", "the upstream stream failed"},
			{"error", "unexpected EOF"},
			{"garbage", "not an Ollama JSON object"},
			{"nonewline", ""},
		} {
			up.set(ollamaReply{content: content, fault: tt.fault, after: 3})
			body := ollamaBody(generate, nil, "hi")
			g := readOllama(t, post(t, e.px.URL+ollamaPath(generate), body), generate)
			name := ollamaPath(generate) + " " + tt.fault
			if bytes.Contains(g.raw, []byte("<not>")) {
				t.Errorf("%s: the garbage line went out", name)
			}
			switch {
			case tt.errorHas == "":
				want := append(up.direct(t, generate, body), '\n')
				if len(g.errors) > 0 || !bytes.Equal(g.raw, want) || g.last["done_reason"] != "stop" {
					t.Errorf("%s: got %q, want the stream with its last newline", name, g.raw)
				}
			case len(g.errors) != 1 || !strings.Contains(g.errors[0], tt.errorHas):
				t.Errorf("%s: error lines %q, want one with %q", name, g.errors, tt.errorHas)
			}
			if tt.fault == "garbage" {
				if g.content != content || g.last == nil {
					t.Errorf("%s: the rest of the stream did not pass: %q %v", name, g.content, g.last)
				}
			}
			if tt.fault == "truncate" || tt.fault == "drop" || tt.fault == "error" {
				if g.last != nil || !strings.HasPrefix(content, g.content) {
					t.Errorf("%s: content %q, done line %v", name, g.content, g.last)
				}
				if l := g.lines[len(g.lines)-1]; l["error"] == nil {
					t.Errorf("%s: the last line is not the error: %v", name, l)
				}
			}
			t.Logf("%s: %q", name, g.errors)
		}
	}
}

func TestOllamaModelGate(t *testing.T) {
	e := newEnv(t, "block", modelPolicy)
	up := useOllama(t, e, ollamaReply{content: "An original answer."})
	for _, generate := range []bool{false, true} {
		for _, stream := range []*bool{nil, ptr(false)} {
			body := ollamaBody(generate, stream, "hello")
			body["model"] = "gpt-4o-mini"
			resp := post(t, e.px.URL+ollamaPath(generate), body)
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var obj map[string]any
			json.Unmarshal(raw, &obj)
			msg, _ := obj["error"].(string)
			if resp.StatusCode != http.StatusForbidden || len(obj) != 1 || !strings.Contains(msg, `"gpt-4o-mini"`) ||
				!strings.Contains(msg, "model_license_blocked") || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %s, want 403 {\"error\": ...} naming the model and the code", ollamaPath(generate), resp.StatusCode, raw)
			}
		}
		body := ollamaBody(generate, ptr(false), "hello")
		body["model"] = "gpt-4o"
		if w := readOllamaWhole(t, post(t, e.px.URL+ollamaPath(generate), body)); !strings.Contains(string(jsonLine(w)), "An original answer.") {
			t.Errorf("an allowed model's answer: %v", w)
		}
	}
	if up.count() != 2 {
		t.Errorf("%d requests reached the upstream, want the 2 allowed", up.count())
	}
}

func TestOllamaBadRequests(t *testing.T) {
	e := newEnv(t, "block", "")
	up := useOllama(t, e, ollamaReply{content: "x"})
	for _, tt := range []struct {
		path, body, has string
	}{
		{"/api/chat", `{"model":"m","messages":"hi"}`, "messages"},
		{"/api/chat", `{"model":"m","messages":[{"role":"user","content":["a"]}]}`, "messages[0].content"},
		{"/api/chat", `{"model":"m","messages":[{"role":"user","content":"a","tool_calls":{}}]}`, "tool_calls"},
		{"/api/chat", `{"model":5}`, "model"},
		{"/api/generate", `{"model":"m","stream":"yes"}`, "stream"},
		{"/api/generate", `{"model":"m","prompt":["a"]}`, "prompt"},
		{"/api/generate", `{"model":"m","prompt":"a","system":1}`, "system"},
		{"/api/generate", `{"model":"m"} {}`, "after its JSON object"},
		{"/API/Chat/", `not json`, "not a JSON object"},
		{"/api/generate", `{"model":"m","Prompt":"a"}`, "lower case"},
		{"/api/chat", `{"model":"m","messages":[{"role":"user","Content":"a"}]}`, "messages[0].Content"},
	} {
		req, _ := http.NewRequest("POST", e.px.URL+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var obj map[string]string
		if resp.StatusCode != 400 || json.Unmarshal(raw, &obj) != nil || len(obj) != 1 || !strings.Contains(obj["error"], tt.has) {
			t.Errorf("%s %s: %d %s, want 400 {\"error\": ...%s...}", tt.path, tt.body, resp.StatusCode, raw, tt.has)
		}
	}
	if up.count() != 0 {
		t.Errorf("a bad request reached the upstream")
	}
	// A chat request without messages (Ollama loads the model) passes.
	resp := post(t, e.px.URL+"/api/chat", map[string]any{"model": "m", "stream": false})
	if resp.Body.Close(); resp.StatusCode != 200 {
		t.Errorf("a request without messages: %d", resp.StatusCode)
	}
}

func TestOllamaParseRequest(t *testing.T) {
	r, err := parseOllama(false, []byte(`{"model":"llama3","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"a","thinking":"t","tool_calls":[{"function":{"name":"f","arguments":{"x":"y"}}}]},{"role":"user","content":"second\nline"}],"think":true,"format":"json"}`))
	if err != nil || !r.stream || r.n != 1 || r.model != "llama3" || r.context != "second\nline" || len(r.sent) != 5 {
		t.Errorf("chat: %+v %v", r, err)
	}
	r, err = parseOllama(true, []byte(`{"model":"m","prompt":"int main(void) {\n\treturn 0;\n}\n","suffix":"}","system":"be brief","stream":false}`))
	if err != nil || r.stream || r.context == "" || len(r.sent) != 3 || r.lang.String() == "" {
		t.Errorf("generate: %+v %v", r, err)
	}
	r, _ = parseOllama(true, []byte(`{"model":"m","prompt":"tell me a story","stream":null}`))
	if !r.stream {
		t.Errorf("stream null: want the default, true")
	}
}

// TestOllamaFence follows the code fences of a text split into pieces, and reads a
// text that resumes one inside the fence it left open, however far back it opened.
func TestOllamaFence(t *testing.T) {
	var s sofar
	for _, p := range pieces("Intro\n  ```c title\nint x;\n``` not a close\n~~~\n", 3) {
		s.add(p)
	}
	if s.fence != "  ```c title" {
		t.Errorf("fence %q, want the opening line", s.fence)
	}
	s.add("```\n")
	if s.fence != "" {
		t.Errorf("fence %q after the closing line", s.fence)
	}
	s.add("````go\n" + strings.Repeat("x := 1 // a long line of code in the block\n", 400))
	if s.fence != "````go" || len(s.tail) > 2*contextBytes || strings.Contains(string(s.tail), "````go") {
		t.Fatalf("fence %q, tail of %d bytes", s.fence, len(s.tail))
	}
	shorter := s
	shorter.add("```\n") // shorter than the opening: not a close
	if shorter.fence != "````go" {
		t.Errorf("a shorter fence closed the block")
	}
	e := newEnv(t, "block", "")
	l := e.srv.store.acquire()
	defer e.srv.store.release(l)
	f := newFilter(t.Context(), e.srv, l.ix, &request{lang: fingerprint.Markdown, n: 1}, "t")
	w := &ollamaWire{}
	c := f.choice(0)
	tx := w.resume(f, c, kindProse, "", &s)
	if tx.det.ctxLen == 0 {
		t.Fatal("a resumed text has no context")
	}
	// The resumed detector was given the fence line first: its tokens are those
	// of code (the comment is no token), not of prose.
	code := fingerprint.Tokenize(fingerprint.Go, []byte("x := 1 // a long line of code in the block\n"))
	if got := len(tx.det.fp.Tokens); got != contextLines*len(code) {
		t.Errorf("the context reads as %d tokens, not %d lines of code of %d tokens each", got, contextLines, len(code))
	}
}

// TestOllamaHostileLines: lines a client could read otherwise than the proxy
// does do not pass with unchecked text: a field in other case (a Go client reads
// "Response" as response), an error line that carries a response too, a whole body
// with a second object after the first.
func TestOllamaHostileLines(t *testing.T) {
	e := newEnv(t, "block", "")
	code := jsonEscape(excerpt(e.gpl[8], 2, 40))
	var body []byte
	replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		if r.URL.Path == "/api/chat" {
			w.Header().Set("Content-Type", "application/json")
		}
		writePieces(w, body)
	}))
	defer replay.Close()
	e.srv.upstream, _ = url.Parse(replay.URL)

	body = []byte(`{"model":"test-model","response":"` + code + `","Response":""}` + "\n" +
		`{"model":"test-model","response":"fine. "}` + "\n" +
		`{"error":"boom","response":"` + code + `"}` + "\n")
	g := readOllama(t, post(t, e.px.URL+"/api/generate", ollamaBody(true, nil, "x")), true)
	piece := []byte(code[len(code)/2 : len(code)/2+60])
	if bytes.Contains(g.raw, piece) || g.content != "fine. " {
		t.Errorf("the copy passed; content %q", g.content)
	}
	if len(g.errors) != 2 || !strings.Contains(g.errors[0], "not an Ollama JSON object") || g.errors[1] != "boom" {
		t.Errorf("errors %q", g.errors)
	}
	if !bytes.HasSuffix(g.raw, []byte(`{"error":"boom"}`+"\n")) {
		t.Errorf("the error line: %q", g.raw)
	}

	// Whole: a second object after the first, on the same line: not a reply a
	// client can parse (one of them might), so an error.
	body = []byte(`{"model":"test-model","message":{"role":"assistant","content":"hi"},"done":false}` +
		`{"model":"test-model","message":{"role":"assistant","content":"` + code + `"},"done":true}`)
	resp := post(t, e.px.URL+"/api/chat", ollamaBody(false, ptr(false), "x"))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(raw, piece) || !bytes.Contains(raw, []byte(`{"error":`)) {
		t.Errorf("whole body with two objects: %q", raw)
	}
}

// TestOllamaTestUpstream runs the main cases against the shared test upstream
// (proxy/upstream), which speaks Ollama: its own pieces, thinking, tool calls and
// faults.
func TestOllamaTestUpstream(t *testing.T) {
	e := newEnv(t, "block", "")
	thr := e.ix.Params().Threshold()
	code := excerpt(e.gpl[3], 5, 60)
	fault := func(generate bool, stream *bool, f string) *http.Response {
		b, _ := json.Marshal(ollamaBody(generate, stream, "write the walker"))
		req, _ := http.NewRequest("POST", e.px.URL+ollamaPath(generate), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if f != "" {
			req.Header.Set(upstream.FaultHeader, f)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, generate := range []bool{false, true} {
		name := ollamaPath(generate)
		// Copying content: cut, streamed and whole.
		e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(code), Reasoning: "Easy."})
		g := readOllama(t, fault(generate, nil, ""), generate)
		if run := e.longestRun(g.content); run >= thr || !strings.HasPrefix(g.content, "Sure!") || g.thinking != "Easy." {
			t.Errorf("%s: content %q (run %d), thinking %q", name, g.content, run, g.thinking)
		}
		checkCut(t, e, g.last, "src/gen3.c")
		w := readOllamaWhole(t, fault(generate, ptr(false), ""))
		checkCut(t, e, w, "src/gen3.c")
		// Copying thinking.
		e.up.Script = upstream.FixedScript(upstream.Reply{Reasoning: markdownAnswer(code), Content: "Done."})
		g = readOllama(t, fault(generate, nil, ""), generate)
		if run := e.longestRun(g.thinking); run >= thr || g.content != "" {
			t.Errorf("%s: thinking run %d, content %q", name, run, g.content)
		}
		checkCut(t, e, g.last, "src/gen3.c")
		// Clean: byte for byte (the upstream's pieces are random, its times are
		// now: compare what a client reads).
		clean := upstream.Reply{Content: "An original answer.\n\n```go\nfunc f() int { return 1 }\n```\n", Reasoning: "Simple enough."}
		if !generate {
			clean.ToolCalls = []upstream.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}
		}
		e.up.Script = upstream.FixedScript(clean)
		g = readOllama(t, fault(generate, nil, ""), generate)
		if g.content != clean.Content || g.thinking != clean.Reasoning || g.last["done_reason"] != "stop" || g.last["copyleft_matches"] != nil ||
			len(g.calls) != len(clean.ToolCalls) {
			t.Errorf("%s: a clean reply changed: %q %q %v %v", name, g.content, g.thinking, g.calls, g.last)
		}
		// Faults: each a clear end.
		for _, f := range []string{"truncate:3", "drop:3", "garbage:3", "error-event:3"} {
			g = readOllama(t, fault(generate, nil, f), generate)
			if len(g.errors) == 0 {
				t.Errorf("%s %s: no error line in %q", name, f, g.raw)
			}
			t.Logf("%s %s: %q", name, f, g.errors)
		}
	}
	// A copying tool call is dropped whole.
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "Writing it.", ToolCalls: []upstream.ToolCall{
		{Name: "get_weather", Arguments: `{"city":"Paris"}`},
		{Name: "write_file", Arguments: string(jsonLine(map[string]string{"path": "w.c", "content": code}))}}})
	g := readOllama(t, fault(false, nil, ""), false)
	if g.content != "Writing it." || len(g.calls) != 1 || g.calls[0]["name"] != "get_weather" {
		t.Errorf("calls %v, content %q", g.calls, g.content)
	}
	checkCut(t, e, g.last, "src/gen3.c")
}
