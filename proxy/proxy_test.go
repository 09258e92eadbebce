package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/proxy/upstream"
)

// markdownAnswer wraps code as a model's markdown answer.
func markdownAnswer(code string) string {
	return "Sure! Here is an implementation:\n\n```c\n" + code + "```\n\nLet me know if you need more.\n"
}

func TestStreamBlocked(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[3], 5, 60)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(code)})
	s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "write the walker")))
	if s.finish[0] != "content_filter" || !s.done {
		t.Fatalf("finish %q, done %v; want content_filter and [DONE]", s.finish[0], s.done)
	}
	thr := e.ix.Params().Threshold()
	if got := e.longestRun(s.content[0]); got >= thr {
		t.Errorf("the client received a run of %d tokens of indexed code (threshold %d)", got, thr)
	}
	if !strings.HasPrefix(s.content[0], "Sure! Here is an implementation:") {
		t.Errorf("the clean preamble did not pass: %q", s.content[0])
	}
	ch := s.choices[0]
	pm := ch["content_filter_results"].(map[string]any)["protected_material_code"].(map[string]any)
	cit := pm["citation"].(map[string]any)
	if pm["filtered"] != true || pm["detected"] != true || cit["license"] != "GPL-2.0-only" || !strings.Contains(cit["URL"].(string), "src/gen3.c") {
		t.Errorf("protected_material_code = %v", pm)
	}
	ms := ch["copyleft_matches"].([]any)
	m := ms[0].(map[string]any)
	if m["path"] != "src/gen3.c" || m["repo"] != "gen" || m["action"] != "block" || m["tokens"].(float64) < float64(thr) {
		t.Errorf("copyleft_matches[0] = %v", m)
	}
	audit, _ := os.ReadFile(e.audit)
	if !bytes.Contains(audit, []byte(`"action":"block"`)) || bytes.Contains(audit, []byte("write the walker")) || bytes.Contains(audit, []byte("sk-test")) {
		t.Errorf("audit log: %s", audit)
	}
}

func TestStreamTwoChoices(t *testing.T) {
	e := newEnv(t, "block", "")
	clean := "Here is an original answer:\n\n```c\nint answer(void)\n{\n\treturn 42;\n}\n```\n"
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(excerpt(e.gpl[5], 2, 50))}, upstream.Reply{Content: clean})
	s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 2, "two answers")))
	if s.finish[0] != "content_filter" || s.finish[1] != "stop" {
		t.Fatalf("finish reasons %v, want content_filter and stop", s.finish)
	}
	if s.content[1] != clean {
		t.Errorf("the clean choice changed:\n%q\nwant\n%q", s.content[1], clean)
	}
	if _, ok := s.choices[1]["content_filter_results"]; ok {
		t.Errorf("the clean choice carries a citation")
	}
	if got := e.longestRun(s.content[0]); got >= e.ix.Params().Threshold() {
		t.Errorf("choice 0 leaked a run of %d tokens", got)
	}
}

// TestCleanStreamIsByteIdentical replays a recorded upstream stream through the
// proxy: a completion with nothing to block comes out byte for byte, only later.
// (With n > 1 each choice's events come out as they came, but a choice held back
// does not hold the others: their interleaving may change.)
func TestCleanStreamIsByteIdentical(t *testing.T) {
	e := newEnv(t, "block", "")
	answer := "Sure:\n\n```go\nfunc add(a, b int) int {\n\treturn a + b // é\n}\n```\n" + strings.Repeat("More prose, unrelated to anything. ", 40)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: answer})
	body := chatBody(true, 1, "hi")
	body["stream_options"] = map[string]any{"include_usage": true}
	recorded, err := io.ReadAll(post(t, e.upSrv.URL+"/v1/chat/completions", body).Body)
	if err != nil {
		t.Fatal(err)
	}
	replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < len(recorded); i += 7 {
			w.Write(recorded[i:min(i+7, len(recorded))])
			w.(http.Flusher).Flush()
		}
	}))
	defer replay.Close()
	e.srv.upstream, _ = e.srv.upstream.Parse(replay.URL)
	resp := post(t, e.px.URL+"/v1/chat/completions", body)
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, recorded) {
		t.Errorf("the proxy changed a clean stream:\n got %q\nwant %q", got, recorded)
	}
}

func TestAnnotateMode(t *testing.T) {
	e := newEnv(t, "annotate", "")
	answer := markdownAnswer(excerpt(e.gpl[1], 3, 40))
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: answer})
	s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x")))
	if s.content[0] != answer || s.finish[0] != "stop" {
		t.Fatalf("annotate mode changed the text or the finish reason %q", s.finish[0])
	}
	pm := s.choices[0]["content_filter_results"].(map[string]any)["protected_material_code"].(map[string]any)
	if pm["filtered"] != false || pm["detected"] != true {
		t.Errorf("protected_material_code %v", pm)
	}
	// No holdback: the first words reach the client while the model is still
	// writing (see TestHoldback).
	if !firstWordsBeforeEnd(t, e) {
		t.Errorf("annotate mode held the first words back")
	}
}

// firstWordsBeforeEnd reports whether the first content of a stream reaches the
// client before the upstream writes the rest: an upstream that sends its first
// words and then waits.
func firstWordsBeforeEnd(t *testing.T, e *env) bool {
	resp := pausedStream(t, e, []string{`{"role":"assistant","content":""}`, `{"content":"Sure! Here it is."}`})
	got := make(chan bool, 1)
	go func() {
		var seen []byte
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			seen = append(seen, buf[:n]...)
			if bytes.Contains(seen, []byte("Sure!")) {
				got <- true
				return
			}
			if err != nil {
				got <- false
				return
			}
		}
	}()
	select {
	case ok := <-got:
		return ok
	case <-time.After(2 * time.Second):
		return false
	}
}

// pausedStream makes a streamed completion through e's proxy from an upstream that
// sends a chunk for each of deltas and then waits, until the test ends, before
// its last chunk and [DONE]: what the client has by then went out before the end.
func pausedStream(t *testing.T, e *env, deltas []string) *http.Response {
	t.Helper()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta, finish string) {
			fmt.Fprintf(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`+"\n\n", delta, finish)
			w.(http.Flusher).Flush()
		}
		for _, d := range deltas {
			chunk(d, "null")
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		chunk(`{}`, `"stop"`)
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	old := e.srv.upstream
	e.srv.upstream, _ = old.Parse(up.URL)
	resp := post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))
	t.Cleanup(func() {
		resp.Body.Close()
		close(release)
		up.Close()
		e.srv.upstream = old
	})
	return resp
}

// TestHoldback: in block mode the first words wait until enough text follows them
// to know they begin no copied run; in annotate mode they do not wait.
func TestHoldback(t *testing.T) {
	if firstWordsBeforeEnd(t, newEnv(t, "block", "")) {
		t.Errorf("block mode let text out before checking it")
	}
}

func TestNonStreamed(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[2], 4, 50)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(code)}, upstream.Reply{Content: "clean text"})
	resp := post(t, e.px.URL+"/v1/chat/completions", chatBody(false, 2, "x"))
	var body struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason         string         `json:"finish_reason"`
			ContentFilterResults map[string]any `json:"content_filter_results"`
			CopyleftMatches      []citation     `json:"copyleft_matches"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	c0, c1 := body.Choices[0], body.Choices[1]
	if c0.FinishReason != "content_filter" || len(c0.CopyleftMatches) == 0 || c0.CopyleftMatches[0].Path != "src/gen2.c" {
		t.Errorf("choice 0: %+v", c0)
	}
	if got := e.longestRun(c0.Message.Content); got >= e.ix.Params().Threshold() {
		t.Errorf("choice 0 leaked %d tokens", got)
	}
	if c1.FinishReason != "stop" || c1.Message.Content != "clean text" || c1.ContentFilterResults != nil {
		t.Errorf("choice 1: %+v", c1)
	}
}

func TestNonStreamedCleanIsByteIdentical(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "int main(void) { return 0; } <&> \u2028"})
	want, _ := io.ReadAll(post(t, e.upSrv.URL+"/v1/chat/completions", chatBody(false, 1, "x")).Body)
	got, _ := io.ReadAll(post(t, e.px.URL+"/v1/chat/completions", chatBody(false, 1, "x")).Body)
	// The upstream's ids and timestamps differ per request; everything else must not.
	norm := func(b []byte) string {
		var m map[string]any
		json.Unmarshal(b, &m)
		delete(m, "id")
		delete(m, "created")
		out, _ := json.Marshal(m)
		return string(out)
	}
	if norm(got) != norm(want) || len(got) != len(want) {
		t.Errorf("clean body changed:\n got %s\nwant %s", got, want)
	}
}

// TestContextAndEcho checks the request's own text: output that completes a run
// the prompt began is blocked; output that repeats the prompt is not.
func TestContextAndEcho(t *testing.T) {
	e := newEnv(t, "block", "")
	file := e.gpl[4]
	begun, rest := excerpt(file, 10, 15), excerpt(file, 15, 17)
	// The continuation alone is shorter than the threshold; with the prompt's end it
	// makes a run that is not.
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: rest})
	resp := post(t, e.px.URL+"/v1/completions", map[string]any{"model": "m", "prompt": begun, "stream": true})
	if s := readStream(t, resp); s.finish[0] != "content_filter" {
		t.Errorf("a completion that finishes a copyleft run begun in the prompt: finish %q", s.finish[0])
	}
	// A model quoting the user's code back is not new copying.
	quoted := excerpt(file, 5, 40)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "You wrote:\n```c\n" + quoted + "```\nIt walks the list."})
	s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "What does this do?\n```c\n"+quoted+"```")))
	if s.finish[0] != "stop" || !strings.Contains(s.content[0], quoted) {
		t.Errorf("echoing the prompt was blocked: finish %q", s.finish[0])
	}
	// Quoting it and then going on with more of the same file is new copying.
	more := excerpt(file, 5, 80)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "Here it is, completed:\n```c\n" + more + "```\n"})
	s = readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "Complete this:\n```c\n"+quoted+"```")))
	if s.finish[0] != "content_filter" {
		t.Fatalf("continuing past the prompt's code was not blocked")
	}
	if !strings.Contains(s.content[0], strings.TrimSpace(quoted)) {
		t.Errorf("the echoed part did not pass: %q", s.content[0])
	}
}

func TestToolCallArguments(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[6], 3, 45)
	copied, _ := json.Marshal(map[string]string{"path": "walk.c", "content": code})
	original, _ := json.Marshal(map[string]string{"path": "notes.txt", "content": "An original note, written for this answer."})
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "I'll write the files.", ToolCalls: []upstream.ToolCall{
		{Name: "write_file", Arguments: string(original)},
		{Name: "write_file", Arguments: string(copied)},
	}})
	body := chatBody(true, 1, "save it")
	body["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "write_file", "parameters": map[string]any{"type": "object"}}}}
	for _, stream := range []bool{true, false} {
		body["stream"] = stream
		resp := post(t, e.px.URL+"/v1/chat/completions", body)
		var content, finish string
		var args []string
		if stream {
			s := readStream(t, resp)
			content, finish = s.content[0], s.finish[0]
			for j := 0; j < len(s.args[0]); j++ {
				args = append(args, s.args[0][j])
			}
		} else {
			var r struct {
				Choices []struct {
					Message struct {
						Content   string `json:"content"`
						ToolCalls []struct {
							Function struct{ Arguments string } `json:"function"`
						} `json:"tool_calls"`
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
			}
			json.NewDecoder(resp.Body).Decode(&r)
			c := r.Choices[0]
			content, finish = c.Message.Content, c.FinishReason
			for _, tc := range c.Message.ToolCalls {
				args = append(args, tc.Function.Arguments)
			}
		}
		// The text and the clean call go out whole; the copying call not at all.
		if finish != "content_filter" || content != "I'll write the files." || len(args) != 1 || args[0] != string(original) {
			t.Errorf("stream=%v: finish %q, content %q, tool call arguments %q", stream, finish, content, args)
		}
	}
}

func TestPolicyActionsAndAllowlist(t *testing.T) {
	policy := "actions:\n  LGPL-*: annotate\nallowlist:\n  - repo: acme\n"
	e := newEnv(t, "block", policy)
	for _, tt := range []struct {
		name, code, finish string
		cited              bool
	}{
		{"LGPL is annotated", excerpt(e.lgpl[0], 3, 40), "stop", true},
		{"allowlisted repo passes silently", excerpt(e.acme[1], 3, 40), "stop", false},
		{"GPL is blocked", excerpt(e.gpl[0], 3, 40), "content_filter", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(tt.code)})
			s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x")))
			_, cited := s.choices[0]["copyleft_matches"]
			if s.finish[0] != tt.finish || cited != tt.cited {
				t.Errorf("finish %q cited %v; want %q %v", s.finish[0], cited, tt.finish, tt.cited)
			}
		})
	}
}

func TestPassThroughAndHeaders(t *testing.T) {
	e := newEnv(t, "block", "")
	req, _ := http.NewRequest("GET", e.px.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sk-abc")
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "secret")
	req.Header.Set("OpenAI-Organization", "org-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"object":"list"`)) {
		t.Errorf("/v1/models: %d %s", resp.StatusCode, body)
	}
	last := e.up.LastRequest()
	if last.Header.Get("Authorization") != "Bearer sk-abc" || last.Header.Get("OpenAI-Organization") != "org-1" || last.Header.Get("X-Hop") != "" {
		t.Errorf("forwarded headers: %v", last.Header)
	}
	// A completion request's body reaches the upstream as the client sent it.
	sent := `{"model":"m","messages":[{"role":"user","content":"hi"}],"unknown_field":{"x":1},"stream":false}`
	http.Post(e.px.URL+"/v1/chat/completions", "application/json", strings.NewReader(sent))
	if got := string(e.up.LastRequest().Body); got != sent {
		t.Errorf("upstream got body %q, want %q", got, sent)
	}
	if e.up.LastRequest().Header.Get("Accept-Encoding") != "" {
		t.Errorf("Accept-Encoding was forwarded for a filtered endpoint")
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, "block", "")
	for _, body := range []string{`{"model":`, `[1,2]`, `{"messages":"hi"}`, `{"messages":[],"n":0}`, `{"messages":[],"stream":"yes"}`} {
		resp, err := http.Post(e.px.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var eb struct {
			Error apiError `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&eb)
		if resp.StatusCode != 400 || eb.Error.Type != "invalid_request_error" || eb.Error.Message == "" {
			t.Errorf("body %s: status %d, error %+v", body, resp.StatusCode, eb.Error)
		}
	}
	if n := e.up.Stats().Requests; n != 0 {
		t.Errorf("%d bad requests reached the upstream", n)
	}
}

// TestMinTokens: a policy that wants longer matches than the guarantee lets a short
// copy pass and blocks a long one; citations say how much of the answer they cover.
func TestMinTokens(t *testing.T) {
	e := newEnv(t, "block", "match:\n  min_tokens: 80\n")
	toks := func(s string) int { return len(fingerprintTokens(s)) }
	short, long := excerpt(e.gpl[7], 3, 14), excerpt(e.gpl[7], 3, 60)
	if n := toks(short); n < 40 || n >= 80 {
		t.Fatalf("short excerpt has %d tokens, want 40..79", n)
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(short)})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "stop" {
		t.Errorf("a %d-token copy was blocked under min_tokens 80", toks(short))
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(long)})
	s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x")))
	if s.finish[0] != "content_filter" {
		t.Fatalf("a %d-token copy was not blocked", toks(long))
	}
	m := s.choices[0]["copyleft_matches"].([]any)[0].(map[string]any)
	if m["tokens"].(float64) < 80 || m["share"].(float64) <= 0 || m["share"].(float64) > 1 {
		t.Errorf("citation %v", m)
	}
	if got := e.longestRun(s.content[0]); got >= 80 {
		t.Errorf("the client got a run of %d tokens", got)
	}
}

// TestAdaptiveHoldback: with the index's k-gram filter, text that copies nothing
// trails the model by about k tokens, not t.
func TestAdaptiveHoldback(t *testing.T) {
	e := newEnv(t, "block", "")
	if !e.ix.HasKGramFilter() {
		t.Fatal("the test index has no k-gram filter")
	}
	words := strings.Repeat("another original word of prose here ", 10) // 60 tokens
	var deltas []string
	for _, word := range strings.SplitAfter(words, " ") {
		deltas = append(deltas, fmt.Sprintf(`{"content":%q}`, word))
	}
	resp := pausedStream(t, e, deltas)
	want := 60 - fingerprint.DefaultParams.K - 2 // tokens the client should have while the model waits
	got := make(chan int, 1)
	go func() {
		var seen []byte
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			seen = append(seen, buf[:n]...)
			if toks := strings.Count(string(seen), `"content":"`); toks >= want || err != nil {
				got <- toks
				return
			}
		}
	}()
	select {
	case n := <-got:
		if n < want {
			t.Errorf("the client got %d of 60 tokens, want at least %d", n, want)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("the client had fewer than %d of 60 tokens while the model waited: held back as if by t-1", want)
	}
}

// TestHostileChunks sends chunks a careless reader would let through: text with
// a role after the cut, text after a choice's end, and a key given twice (a client
// reads the last one).
func TestHostileChunks(t *testing.T) {
	var events []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range events {
			fmt.Fprintf(w, "data: %s\n\n", ev)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer up.Close()
	e := newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
	chunk := func(choice map[string]any) string {
		b, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []any{choice}})
		return string(b)
	}
	gpl1, gpl2 := excerpt(e.gpl[3], 5, 40), excerpt(e.gpl[3], 40, 80)
	thr := e.ix.Params().Threshold()
	cases := map[string][]string{
		"role after the cut": {
			chunk(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": markdownAnswer(gpl1)}}),
			chunk(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": gpl2}}),
			chunk(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}),
		},
		"text after the end": {
			chunk(map[string]any{"index": 0, "delta": map[string]any{"content": "A short answer."}}),
			chunk(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}),
			chunk(map[string]any{"index": 0, "delta": map[string]any{"content": gpl1}}),
		},
		"duplicate key": {
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"clean","content":` +
				strconvQuote(gpl1) + `},"finish_reason":null}]}`,
			chunk(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}),
		},
	}
	for name, evs := range cases {
		events = evs
		s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "hostile")))
		if got := e.longestRun(s.content[0]); got >= thr {
			t.Errorf("%s: the client received a run of %d tokens of indexed code: %q", name, got, s.content[0])
		}
		if !s.done {
			t.Errorf("%s: no [DONE]", name)
		}
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
