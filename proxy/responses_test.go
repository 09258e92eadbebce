package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cleanroom/proxy/upstream"
)

// A respItemScript is one output item a scripted Responses upstream sends.
type respItemScript struct {
	typ  string // message, function_call, custom_tool_call, reasoning
	text string // the text, the arguments JSON, the input, the summary
}

// respEvents returns the events of a streamed response of items, as the API
// sends them, deltas cut unevenly.
func respEvents(seed uint64, items []respItemScript) []map[string]any {
	rng := rand.New(rand.NewPCG(seed, 7))
	var evs []map[string]any
	ev := func(m map[string]any) { m["sequence_number"] = len(evs); evs = append(evs, m) }
	resp := func(status string, output []any) map[string]any {
		return map[string]any{"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "m",
			"output": output, "incomplete_details": nil, "error": nil, "usage": nil}
	}
	ev(map[string]any{"type": "response.created", "response": resp("in_progress", []any{})})
	ev(map[string]any{"type": "response.in_progress", "response": resp("in_progress", []any{})})
	var output []any
	pieces := func(s string, f func(string)) {
		for len(s) > 0 {
			n := min(len(s), 1+rng.IntN(30))
			f(s[:n])
			s = s[n:]
		}
	}
	for j, it := range items {
		id := fmt.Sprintf("item_%d", j)
		var done map[string]any
		switch it.typ {
		case "message":
			ev(map[string]any{"type": "response.output_item.added", "output_index": j, "item": map[string]any{"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []any{}}})
			ev(map[string]any{"type": "response.content_part.added", "item_id": id, "output_index": j, "content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
			pieces(it.text, func(p string) {
				ev(map[string]any{"type": "response.output_text.delta", "item_id": id, "output_index": j, "content_index": 0, "delta": p, "logprobs": []any{}})
			})
			ev(map[string]any{"type": "response.output_text.done", "item_id": id, "output_index": j, "content_index": 0, "text": it.text, "logprobs": []any{}})
			part := map[string]any{"type": "output_text", "text": it.text, "annotations": []any{}}
			ev(map[string]any{"type": "response.content_part.done", "item_id": id, "output_index": j, "content_index": 0, "part": part})
			done = map[string]any{"type": "message", "id": id, "status": "completed", "role": "assistant", "content": []any{part}}
		case "reasoning":
			ev(map[string]any{"type": "response.output_item.added", "output_index": j, "item": map[string]any{"type": "reasoning", "id": id, "summary": []any{}}})
			ev(map[string]any{"type": "response.reasoning_summary_part.added", "item_id": id, "output_index": j, "summary_index": 0, "part": map[string]any{"type": "summary_text", "text": ""}})
			pieces(it.text, func(p string) {
				ev(map[string]any{"type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": j, "summary_index": 0, "delta": p})
			})
			ev(map[string]any{"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": j, "summary_index": 0, "text": it.text})
			ev(map[string]any{"type": "response.reasoning_summary_part.done", "item_id": id, "output_index": j, "summary_index": 0, "part": map[string]any{"type": "summary_text", "text": it.text}})
			done = map[string]any{"type": "reasoning", "id": id, "summary": []any{map[string]any{"type": "summary_text", "text": it.text}}}
		case "function_call", "custom_tool_call":
			key, kind := "arguments", "function_call_arguments"
			if it.typ == "custom_tool_call" {
				key, kind = "input", "custom_tool_call_input"
			}
			ev(map[string]any{"type": "response.output_item.added", "output_index": j, "item": map[string]any{"type": it.typ, "id": id, "call_id": "call_" + id, "name": "write_file", key: "", "status": "in_progress"}})
			pieces(it.text, func(p string) {
				ev(map[string]any{"type": "response." + kind + ".delta", "item_id": id, "output_index": j, "delta": p})
			})
			ev(map[string]any{"type": "response." + kind + ".done", "item_id": id, "output_index": j, key: it.text})
			done = map[string]any{"type": it.typ, "id": id, "call_id": "call_" + id, "name": "write_file", key: it.text, "status": "completed"}
		}
		ev(map[string]any{"type": "response.output_item.done", "output_index": j, "item": done})
		output = append(output, done)
	}
	ev(map[string]any{"type": "response.completed", "response": resp("completed", output)})
	return evs
}

// respServer serves a scripted Responses upstream: streamed events written in
// uneven pieces with flushes, or the final response whole.
func respServer(t *testing.T, items func() []respItemScript, edit func([]map[string]any) []map[string]any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		evs := respEvents(3, items())
		if edit != nil {
			evs = edit(evs)
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			b, _ := json.Marshal(evs[len(evs)-1]["response"])
			w.Write(b)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		var all bytes.Buffer
		for _, e := range evs {
			b, _ := json.Marshal(e)
			fmt.Fprintf(&all, "event: %s\ndata: %s\n\n", e["type"], b)
		}
		rng := rand.New(rand.NewPCG(5, 5))
		b := all.Bytes()
		for len(b) > 0 {
			n := min(len(b), 1+rng.IntN(200))
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// respReceived is what a client got of a Responses stream.
type respReceived struct {
	raw    []byte
	events []map[string]any
	text   string         // output_text deltas
	args   map[int]string // tool inputs by output index
	added  map[int]string // item types added, by output index
	final  map[string]any // the last response object
	types  []string
}

func readResponses(t *testing.T, resp *http.Response) *respReceived {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	r := &respReceived{raw: raw, args: map[int]string{}, added: map[int]string{}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			name = v
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("event %q is not JSON: %v", data, err)
		}
		if m["type"] != name {
			t.Errorf("event name %q, data type %v", name, m["type"])
		}
		if seq, _ := m["sequence_number"].(float64); int(seq) != len(r.events) {
			t.Errorf("event %d (%s) has sequence_number %v", len(r.events), name, m["sequence_number"])
		}
		r.events = append(r.events, m)
		r.types = append(r.types, name)
		oi := int(toFloat(m["output_index"]))
		switch name {
		case "response.output_text.delta":
			r.text += m["delta"].(string)
		case "response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
			r.args[oi] += m["delta"].(string)
		case "response.output_item.added":
			r.added[oi] = m["item"].(map[string]any)["type"].(string)
		}
		if resp, ok := m["response"].(map[string]any); ok {
			r.final = resp
		}
	}
	return r
}

func toFloat(v any) float64 { f, _ := v.(float64); return f }

func respBody(stream bool, input string) map[string]any {
	return map[string]any{"model": "test-model", "stream": stream, "input": input}
}

func TestResponsesStreamBlocked(t *testing.T) {
	var e *env
	var items []respItemScript
	up := respServer(t, func() []respItemScript { return items }, nil)
	e = newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
	thr := e.ix.Params().Threshold()
	code := excerpt(e.gpl[3], 5, 60)
	args, _ := json.Marshal(map[string]string{"path": "walk.c", "content": code})
	patch := "*** Begin Patch\n*** Add File: walk.c\n+" + strings.ReplaceAll(strings.TrimSuffix(code, "\n"), "\n", "\n+") + "\n*** End Patch\n"
	for _, tc := range []struct {
		name   string
		items  []respItemScript
		text   string // what the client must get of the text, as a prefix
		toolAt int    // the output index of a copying tool call, which must be absent; -1 none
	}{
		{"text", []respItemScript{{"message", "Sure! Here it is:\n\n```c\n" + code + "```\n"}}, "Sure! Here it is:", -1},
		{"function call", []respItemScript{{"message", "I'll write the file."}, {"function_call", string(args)}}, "I'll write the file.", 1},
		{"patch", []respItemScript{{"reasoning", "The user wants a tree walker."}, {"message", "Writing it."}, {"custom_tool_call", patch}}, "Writing it.", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items = tc.items
			r := readResponses(t, post(t, e.px.URL+"/v1/responses", respBody(true, "write a tree walker")))
			last := r.events[len(r.events)-1]
			if last["type"] != "response.incomplete" {
				t.Fatalf("last event %v, want response.incomplete; events %v", last["type"], r.types)
			}
			if slicesContains(r.types, "response.completed") {
				t.Errorf("response.completed sent for a cut response")
			}
			det, _ := r.final["incomplete_details"].(map[string]any)
			if r.final["status"] != "incomplete" || det["reason"] != "content_filter" {
				t.Errorf("final response status %v, incomplete_details %v", r.final["status"], det)
			}
			if got := e.longestRun(r.text); got >= thr {
				t.Errorf("the client received a run of %d indexed tokens (threshold %d)", got, thr)
			}
			for _, a := range r.args {
				if got := e.longestRun(a); got >= thr {
					t.Errorf("a tool call carried a run of %d indexed tokens", got)
				}
			}
			if !strings.HasPrefix(r.text, tc.text) {
				t.Errorf("text %q, want it to start %q", r.text, tc.text)
			}
			if tc.toolAt >= 0 && r.added[tc.toolAt] != "" {
				t.Errorf("the copying %s item went out (added: %v)", r.added[tc.toolAt], r.added)
			}
			ms, _ := r.final["copyleft_matches"].([]any)
			if len(ms) == 0 || ms[0].(map[string]any)["path"] != "src/gen3.c" || ms[0].(map[string]any)["license"] != "GPL-2.0-only" {
				t.Errorf("copyleft_matches %v", ms)
			}
			// The final response agrees with what was sent.
			got := ""
			for _, x := range r.final["output"].([]any) {
				item := x.(map[string]any)
				if item["type"] == "message" {
					for _, p := range item["content"].([]any) {
						got += p.(map[string]any)["text"].(string)
					}
				}
			}
			if got != r.text {
				t.Errorf("final output text %q, deltas %q", got, r.text)
			}
		})
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestResponsesCleanAndAnnotate(t *testing.T) {
	var items []respItemScript
	up := respServer(t, func() []respItemScript { return items }, nil)
	clean := []respItemScript{{"reasoning", "Think."}, {"message", "Use a loop:\n\n```go\nfor i := range n {\n\tsum += i\n}\n```\n"}, {"function_call", `{"path":"a.go","content":"package a\n"}`}}
	t.Run("clean is byte-identical", func(t *testing.T) {
		e := newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
		items = clean
		for _, stream := range []bool{true, false} {
			direct, _ := io.ReadAll(post(t, up.URL+"/v1/responses", respBody(stream, "sum")).Body)
			via, _ := io.ReadAll(post(t, e.px.URL+"/v1/responses", respBody(stream, "sum")).Body)
			if !bytes.Equal(direct, via) {
				t.Errorf("stream=%v: the proxy changed a clean response:\n%s\nwant\n%s", stream, via, direct)
			}
		}
	})
	t.Run("annotate", func(t *testing.T) {
		e := newEnv(t, "annotate", "", func(o *Options) { o.Upstream = up.URL })
		code := excerpt(e.gpl[2], 3, 50)
		items = []respItemScript{{"message", "Here:\n\n```c\n" + code + "```\n"}}
		r := readResponses(t, post(t, e.px.URL+"/v1/responses", respBody(true, "walker")))
		if r.types[len(r.types)-1] != "response.completed" || !strings.Contains(r.text, code) {
			t.Fatalf("annotate changed the response: last %v", r.types[len(r.types)-1])
		}
		if !slicesContains(r.types, "response.output_text.annotation.added") {
			t.Errorf("no annotation event: %v", r.types)
		}
		part := r.final["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)
		anns, _ := part["annotations"].([]any)
		if len(anns) == 0 {
			t.Fatalf("no annotation in the final response: %v", part)
		}
		a := anns[0].(map[string]any)
		title, _ := a["title"].(string)
		if a["type"] != "url_citation" || !strings.Contains(title, "src/gen2.c") || !strings.Contains(title, "GPL-2.0-only") {
			t.Errorf("annotation %v", a)
		}
		if toFloat(a["end_index"]) <= toFloat(a["start_index"]) {
			t.Errorf("annotation covers nothing: %v", a)
		}
		if ms, _ := r.final["copyleft_matches"].([]any); len(ms) == 0 {
			t.Errorf("no copyleft_matches on the final response")
		}
		// Whole: the same annotation, status completed.
		resp := post(t, e.px.URL+"/v1/responses", respBody(false, "walker"))
		var obj map[string]any
		json.NewDecoder(resp.Body).Decode(&obj)
		part = obj["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)
		if obj["status"] != "completed" || !strings.Contains(part["text"].(string), code) || len(part["annotations"].([]any)) == 0 {
			t.Errorf("whole annotated response: %v", obj)
		}
	})
}

func TestResponsesWholeBlocked(t *testing.T) {
	var items []respItemScript
	up := respServer(t, func() []respItemScript { return items }, nil)
	e := newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
	thr := e.ix.Params().Threshold()
	code := excerpt(e.gpl[1], 2, 50)
	args, _ := json.Marshal(map[string]string{"content": code})
	items = []respItemScript{{"message", "Sure:\n\n```c\n" + code + "```\n"}, {"function_call", string(args)}}
	resp := post(t, e.px.URL+"/v1/responses", respBody(false, "walker"))
	var obj map[string]any
	json.NewDecoder(resp.Body).Decode(&obj)
	det, _ := obj["incomplete_details"].(map[string]any)
	if obj["status"] != "incomplete" || det["reason"] != "content_filter" {
		t.Fatalf("status %v, incomplete_details %v", obj["status"], obj["incomplete_details"])
	}
	out := obj["output"].([]any)
	if len(out) != 1 {
		t.Fatalf("output has %d items, want the cut message only", len(out))
	}
	text := out[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string)
	if got := e.longestRun(text); got >= thr || !strings.HasPrefix(text, "Sure:") {
		t.Errorf("text %q carries %d indexed tokens", text, got)
	}
	if ms, _ := obj["copyleft_matches"].([]any); len(ms) == 0 {
		t.Errorf("no copyleft_matches")
	}
}

func TestResponsesHostileUpstream(t *testing.T) {
	var edit func([]map[string]any) []map[string]any
	var e *env
	up := respServer(t, func() []respItemScript {
		return []respItemScript{{"message", "A short and original answer."}}
	}, func(evs []map[string]any) []map[string]any { return edit(evs) })
	e = newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
	thr := e.ix.Params().Threshold()
	code := excerpt(e.gpl[4], 1, 40)
	t.Run("done texts that differ from the deltas", func(t *testing.T) {
		edit = func(evs []map[string]any) []map[string]any {
			for _, ev := range evs {
				switch ev["type"] {
				case "response.output_text.done":
					ev["text"] = code
				case "response.completed":
					resp := ev["response"].(map[string]any)
					resp["output"] = append(resp["output"].([]any), map[string]any{"type": "message", "id": "x", "role": "assistant",
						"content": []any{map[string]any{"type": "output_text", "text": code}}})
				}
			}
			return evs
		}
		r := readResponses(t, post(t, e.px.URL+"/v1/responses", respBody(true, "q")))
		if got := e.longestRun(string(r.raw)); got >= thr {
			t.Errorf("the client received %d indexed tokens from the done events", got)
		}
		if r.types[len(r.types)-1] != "response.completed" {
			t.Errorf("last event %v", r.types[len(r.types)-1])
		}
	})
	t.Run("unknown delta events", func(t *testing.T) {
		edit = func(evs []map[string]any) []map[string]any {
			bad := map[string]any{"type": "response.future_text.delta", "output_index": 0, "delta": code}
			return append(evs[:4:4], append([]map[string]any{bad}, evs[4:]...)...)
		}
		resp := post(t, e.px.URL+"/v1/responses", respBody(true, "q"))
		raw, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(raw, []byte("event: error")) || !bytes.Contains(raw, []byte("response.future_text.delta")) || e.longestRun(string(raw)) >= thr {
			t.Errorf("an unknown text event was not refused:\n%s", raw)
		}
	})
}

func TestResponsesRequests(t *testing.T) {
	e := newEnv(t, "block", "")
	for _, tc := range []struct {
		method, path, body string
		status             int
		has                string
	}{
		{"POST", "/v1/responses", `{"model":"m","input":"x","background":true}`, 400, "background"},
		{"POST", "/v1/responses", `{"model":"m","input":7}`, 400, "input"},
		{"POST", "/v1/realtime/sessions", `{"model":"m"}`, 404, "/v1/realtime/sessions"},
		{"POST", "/v1/threads/t/runs", `{}`, 404, "/v1/threads/t/runs"},
		{"GET", "/v1/responses/resp_123", ``, 404, "/v1/responses/resp_123"},
	} {
		req, _ := http.NewRequest(tc.method, e.px.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		var obj struct {
			Error apiError `json:"error"`
		}
		if resp.StatusCode != tc.status || json.Unmarshal(b, &obj) != nil || !strings.Contains(obj.Error.Message, tc.has) {
			t.Errorf("%s %s: %d %s, want %d naming %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.has)
		}
	}
	// A WebSocket upgrade is refused; embeddings pass.
	req, _ := http.NewRequest("GET", e.px.URL+"/v1/realtime?model=m", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != 404 {
		t.Errorf("a WebSocket upgrade got %d", resp.StatusCode)
	}
	resp = post(t, e.px.URL+"/v1/embeddings", map[string]any{"model": "m", "input": "x"})
	if resp.StatusCode == 404 {
		b, _ := io.ReadAll(resp.Body)
		if bytes.Contains(b, []byte("cleanroom")) {
			t.Errorf("embeddings were refused: %s", b)
		}
	}
}

// FuzzResponsesStream feeds arbitrary upstream bodies to the Responses wire, in
// pieces: it never panics or hangs, and a response that regurgitates indexed code
// in its text, its arguments or its final object never reaches the client whole.
func FuzzResponsesStream(f *testing.F) {
	s, gpl := fuzzSetup(f)
	code := excerpt(gpl[3], 5, 40)
	args, _ := json.Marshal(map[string]string{"content": code})
	for i, items := range [][]respItemScript{
		{{"message", "Here:\n\n```c\n" + code + "```\n"}},
		{{"reasoning", "hmm"}, {"function_call", string(args)}},
		{{"custom_tool_call", "+" + strings.ReplaceAll(code, "\n", "\n+")}},
	} {
		var b bytes.Buffer
		for _, e := range respEvents(uint64(i), items) {
			j, _ := json.Marshal(e)
			fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", e["type"], j)
		}
		f.Add(b.Bytes(), uint8(7))
	}
	f.Add([]byte("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		streamed, whole := fuzzStream(t, s, responsesFormat, []byte(`{"model":"m","stream":true,"input":"q"}`), body, int(step))
		thr := fuzzServer.ix.Params().Threshold()
		if got := fuzzLongest(responsesTexts(streamed, true)); got >= thr {
			t.Fatalf("the client got a run of %d indexed tokens (threshold %d) from\n%q\nout\n%q", got, thr, body, streamed)
		}
		if got := fuzzLongest(responsesTexts(whole, false)); got >= thr && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			t.Fatalf("the whole response gave a run of %d indexed tokens", got)
		}
	})
}

// responsesTexts returns, one per line, every text a Responses client reads in a
// stream (or a whole response): deltas, done texts, item texts.
func responsesTexts(b []byte, stream bool) string {
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case string:
			switch key {
			case "delta", "text", "arguments", "input", "code", "refusal":
				out = append(out, x)
			}
		case []any:
			for _, e := range x {
				walk(e, key)
			}
		case map[string]any:
			for k, e := range x {
				walk(e, k)
			}
		}
	}
	if !stream {
		var v any
		json.Unmarshal(b, &v)
		walk(v, "")
		return strings.Join(out, "\n")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var v any
			if json.Unmarshal([]byte(data), &v) == nil {
				walk(v, "")
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestResponsesEcho: a response that repeats code the request's input holds (an
// item's text) is the user's own text, not new copying; input's instructions and
// function_call_output items count too.
func TestResponsesEcho(t *testing.T) {
	var items []respItemScript
	up := respServer(t, func() []respItemScript { return items }, nil)
	e := newEnv(t, "block", "", func(o *Options) { o.Upstream = up.URL })
	code := excerpt(e.gpl[5], 2, 45)
	items = []respItemScript{{"message", "Your code, reviewed:\n\n```c\n" + code + "```\nLooks fine."}}
	for _, input := range []any{
		"Review this:\n" + code,
		[]any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "input_text", "text": "Review this:\n" + code}}}},
		[]any{map[string]any{"type": "function_call_output", "call_id": "c1", "output": code}, map[string]any{"role": "user", "content": "review the file you read"}},
	} {
		r := readResponses(t, post(t, e.px.URL+"/v1/responses", map[string]any{"model": "m", "stream": true, "input": input}))
		if r.final["status"] != "completed" || !strings.Contains(r.text, code) {
			t.Errorf("input %T: an echo of the request was cut: status %v", input, r.final["status"])
		}
	}
	// The same answer to a request that did not send the code is cut.
	r := readResponses(t, post(t, e.px.URL+"/v1/responses", respBody(true, "write one")))
	if r.final["status"] != "incomplete" {
		t.Errorf("a copy the request did not send passed: status %v", r.final["status"])
	}
}

// TestPassthroughList: what the operator lists passes unchecked, and the
// Assistants API's thread messages are not read as Anthropic's.
func TestPassthroughList(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) { o.Passthrough = []string{"/v1/threads/*", "/v1/audio/speech"} })
	for _, tc := range []struct {
		path     string
		refused  bool
		upstream string // the path the upstream must have seen
	}{
		{"/v1/threads/t1/messages", false, "/v1/threads/t1/messages"},
		{"/v1/audio/speech", false, "/v1/audio/speech"},
		{"/v1/audio/transcriptions", true, ""},
	} {
		resp := post(t, e.px.URL+tc.path, map[string]any{"model": "m", "input": "x"})
		b, _ := io.ReadAll(resp.Body)
		refused := resp.StatusCode == 404 && bytes.Contains(b, []byte("--passthrough"))
		if refused != tc.refused || !refused && e.up.LastRequest().Path != tc.upstream {
			t.Errorf("%s: %d %s; upstream saw %q", tc.path, resp.StatusCode, b, e.up.LastRequest().Path)
		}
	}
}

// TestResponsesUpstreamFaults: the test upstream's Responses stream broken in
// each way a server breaks one: the client gets the checked text, then one clear
// error event, never response.completed, and the proxy does not panic; a huge
// answer passes whole.
func TestResponsesUpstreamFaults(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: strings.Repeat("An original sentence about trees. ", 30)})
	for _, tc := range []struct {
		fault    string
		errorHas string // "" for a stream that ends well
	}{
		{"truncate:12", "without response.completed"},
		{"drop:12", "upstream"},
		{"garbage:6", "cannot check"},
		{"error-event:8", ""},
		{"huge:262144", ""},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			b, _ := json.Marshal(respBody(true, "tell me"))
			req, _ := http.NewRequest("POST", e.px.URL+"/v1/responses", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(upstream.FaultHeader, tc.fault)
			resp, err := faultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			errs := bytes.Count(raw, []byte("event: error\n"))
			completed := bytes.Contains(raw, []byte("event: response.completed\n"))
			switch {
			case strings.HasPrefix(tc.fault, "error-event"):
				if errs != 1 || completed {
					t.Errorf("the upstream's error event: %d error events, completed %v", errs, completed)
				}
			case tc.errorHas == "":
				if errs != 0 || !completed {
					t.Errorf("%d error events, completed %v:\n%s", errs, completed, lastBytes(raw))
				}
			default:
				if errs != 1 || completed || !bytes.Contains(raw, []byte(tc.errorHas)) {
					t.Errorf("want one error event naming %q and no response.completed:\n%s", tc.errorHas, lastBytes(raw))
				}
			}
		})
	}
}

func lastBytes(b []byte) []byte { return b[max(0, len(b)-600):] }
