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
	"sync"
	"testing"
	"unicode/utf8"

	"cleanroom/proxy/upstream"
)

// A msgSpec is one content block the scripted Messages upstream answers with.
type msgSpec struct {
	Type  string // text, thinking, redacted_thinking, tool_use
	Text  string // the text or the thinking
	Name  string // a tool's name
	Input any    // a tool's input
}

// msgUpstream is a scripted Anthropic Messages upstream: it answers POST
// .../messages with the blocks it is given, streamed (server-sent events written in
// uneven pieces, each flushed) or whole, or with raw bytes as they are.
type msgUpstream struct {
	mu       sync.Mutex
	blocks   []msgSpec
	stop     string // the stop_reason; end_turn by default
	raw      []byte // when set, the streamed body as it is
	requests int
	srv      *httptest.Server
}

// useMsgUpstream puts a scripted Messages upstream behind e's proxy.
func useMsgUpstream(t *testing.T, e *env, blocks ...msgSpec) *msgUpstream {
	t.Helper()
	u := &msgUpstream{blocks: blocks}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	e.srv.upstream, _ = e.srv.upstream.Parse(u.srv.URL)
	return u
}

func (u *msgUpstream) set(raw []byte, blocks ...msgSpec) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.raw, u.blocks = raw, blocks
}

func (u *msgUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests
}

func (u *msgUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests++
	raw, blocks, stop := u.raw, u.blocks, u.stop
	u.mu.Unlock()
	if !strings.HasSuffix(r.URL.Path, "/messages") {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	if stop == "" {
		stop = "end_turn"
		for _, b := range blocks {
			if b.Type == "tool_use" {
				stop = "tool_use"
			}
		}
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		w.Write(msgWholeBody(blocks, stop))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if raw == nil {
		raw = msgSSE(blocks, stop)
	}
	for i, n := 0, 0; i < len(raw); i += n {
		n = min(len(raw)-i, 5+(i*7)%57)
		w.Write(raw[i : i+n])
		w.(http.Flusher).Flush()
	}
}

// msgPieces splits s into uneven pieces, on rune boundaries.
func msgPieces(s string) []string {
	var out []string
	for i := 0; len(s) > 0; i++ {
		n := min(len(s), 1+(i*5)%13)
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n++
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// msgEventBytes is one server-sent event as the API writes it.
func msgEventBytes(obj map[string]any) []byte {
	data, _ := json.Marshal(obj)
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", obj["type"], data)
}

// msgEvents are the events of a streamed message of blocks.
func msgEvents(blocks []msgSpec, stop string) []map[string]any {
	evs := []map[string]any{
		{"type": "message_start", "message": map[string]any{"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 12, "output_tokens": 1}}},
		{"type": "ping"},
	}
	out := 0
	for i, b := range blocks {
		var start map[string]any
		var deltas []map[string]any
		switch b.Type {
		case "text":
			start = map[string]any{"type": "text", "text": ""}
			for _, p := range msgPieces(b.Text) {
				deltas = append(deltas, map[string]any{"type": "text_delta", "text": p})
			}
		case "thinking":
			start = map[string]any{"type": "thinking", "thinking": ""}
			for _, p := range msgPieces(b.Text) {
				deltas = append(deltas, map[string]any{"type": "thinking_delta", "thinking": p})
			}
			deltas = append(deltas, map[string]any{"type": "signature_delta", "signature": "c2lnbmF0dXJl"})
		case "redacted_thinking":
			start = map[string]any{"type": "redacted_thinking", "data": "b3BhcXVl"}
		case "tool_use":
			start = map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", i), "name": b.Name, "input": map[string]any{}}
			in, _ := json.Marshal(b.Input)
			for _, p := range msgPieces(string(in)) {
				deltas = append(deltas, map[string]any{"type": "input_json_delta", "partial_json": p})
			}
		}
		evs = append(evs, map[string]any{"type": "content_block_start", "index": i, "content_block": start})
		for k, d := range deltas {
			evs = append(evs, map[string]any{"type": "content_block_delta", "index": i, "delta": d})
			if k%40 == 39 {
				evs = append(evs, map[string]any{"type": "ping"})
			}
		}
		evs = append(evs, map[string]any{"type": "content_block_stop", "index": i})
		out += len(deltas)
	}
	return append(evs,
		map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": out}},
		map[string]any{"type": "message_stop"})
}

func msgSSE(blocks []msgSpec, stop string) []byte {
	var b bytes.Buffer
	for _, ev := range msgEvents(blocks, stop) {
		b.Write(msgEventBytes(ev))
	}
	return b.Bytes()
}

func msgWholeBody(blocks []msgSpec, stop string) []byte {
	var content []any
	for i, b := range blocks {
		switch b.Type {
		case "text":
			content = append(content, map[string]any{"type": "text", "text": b.Text})
		case "thinking":
			content = append(content, map[string]any{"type": "thinking", "thinking": b.Text, "signature": "c2lnbmF0dXJl"})
		case "redacted_thinking":
			content = append(content, map[string]any{"type": "redacted_thinking", "data": "b3BhcXVl"})
		case "tool_use":
			content = append(content, map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", i), "name": b.Name, "input": b.Input})
		}
	}
	body, _ := json.Marshal(map[string]any{"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
		"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 12, "output_tokens": 40}})
	return body
}

// msgGotBlock is one content block as a client accumulates it.
type msgGotBlock struct {
	typ       string
	text      string // text or thinking
	input     string // a tool's input JSON: its start's input, then the partial_json pieces
	signature string
	stopped   bool
}

// msgGot is what a client received of a streamed message.
type msgGot struct {
	raw     []byte
	events  []map[string]any
	names   []string
	blocks  map[int]*msgGotBlock
	order   []int
	stop    string
	matches []any
	final   map[string]any // the message_delta
	errors  []map[string]any
	done    bool // message_stop came
}

// readMessages reads a Messages stream strictly, as the SDKs accumulate one:
// every event has a name and JSON data of that type; blocks start once, take
// deltas while open and stop once; nothing follows message_stop or an error.
func readMessages(t *testing.T, resp *http.Response) *msgGot {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	g := &msgGot{raw: raw, blocks: map[int]*msgGotBlock{}}
	for _, ev := range strings.Split(strings.TrimSuffix(string(raw), "\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		var name, data string
		for _, line := range strings.Split(ev, "\n") {
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(data), &obj); err != nil || name == "" || obj["type"] != name {
			t.Fatalf("bad event %q (%v)", ev, err)
		}
		if g.done || len(g.errors) > 0 {
			t.Fatalf("an event after the stream's end: %q", ev)
		}
		g.events, g.names = append(g.events, obj), append(g.names, name)
		idx := -1
		if f, ok := obj["index"].(float64); ok {
			idx = int(f)
		}
		b := g.blocks[idx]
		switch name {
		case "content_block_start":
			if b != nil {
				t.Fatalf("block %d started twice", idx)
			}
			cb := obj["content_block"].(map[string]any)
			b = &msgGotBlock{typ: cb["type"].(string)}
			b.text, _ = cb["text"].(string)
			if th, ok := cb["thinking"].(string); ok {
				b.text = th
			}
			if in, ok := cb["input"].(map[string]any); ok && len(in) > 0 {
				j, _ := json.Marshal(in)
				b.input = string(j)
			}
			g.blocks[idx] = b
			g.order = append(g.order, idx)
		case "content_block_delta":
			if b == nil || b.stopped {
				t.Fatalf("a delta for block %d, which is not open: %q", idx, ev)
			}
			d := obj["delta"].(map[string]any)
			switch d["type"] {
			case "text_delta":
				b.text += d["text"].(string)
			case "thinking_delta":
				b.text += d["thinking"].(string)
			case "input_json_delta":
				b.input += d["partial_json"].(string)
			case "signature_delta":
				b.signature += d["signature"].(string)
			}
		case "content_block_stop":
			if b == nil || b.stopped {
				t.Fatalf("a stop for block %d, which is not open", idx)
			}
			b.stopped = true
		case "message_delta":
			if g.final != nil {
				t.Fatalf("two message_delta events")
			}
			g.final = obj
			g.stop, _ = obj["delta"].(map[string]any)["stop_reason"].(string)
			g.matches, _ = obj["copyleft_matches"].([]any)
		case "message_stop":
			g.done = true
			for i, b := range g.blocks {
				if !b.stopped {
					t.Fatalf("message_stop with block %d open", i)
				}
			}
			if g.final == nil {
				t.Fatalf("message_stop without a message_delta")
			}
		case "error":
			g.errors = append(g.errors, obj["error"].(map[string]any))
		}
	}
	return g
}

// text returns the blocks of type typ, joined.
func (g *msgGot) text(typ string) string {
	var out []string
	for _, i := range g.order {
		if b := g.blocks[i]; b.typ == typ {
			out = append(out, b.text)
		}
	}
	return strings.Join(out, "\n")
}

// msgRun is the longest run of indexed tokens in a text a client reads: as it is,
// and as code (a tool's input strings are code without a markdown fence).
func (e *env) msgRun(text string) int {
	return max(e.longestRun(text), e.longestRun("```c\n"+text+"\n```\n"))
}

// longest returns the longest run of indexed tokens in any block the client got.
func (g *msgGot) longest(e *env) int {
	n := 0
	for _, b := range g.blocks {
		n = max(n, e.msgRun(b.text), e.msgRun(string((&jsonStrings{}).feed([]byte(b.input)))))
	}
	return n
}

func msgBody(stream bool, user string) map[string]any {
	return map[string]any{"model": "claude-test", "max_tokens": 1024, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": user}}}
}

// checkRefusal checks the end of a blocked answer: stop_reason refusal and a
// citation of gen's file path under GPL-2.0-only.
func checkRefusal(t *testing.T, e *env, stop string, matches []any, path string) {
	t.Helper()
	if stop != "refusal" {
		t.Errorf("stop_reason %q, want refusal", stop)
	}
	if len(matches) == 0 {
		t.Fatalf("no copyleft_matches")
	}
	m := matches[0].(map[string]any)
	if m["path"] != path || m["repo"] != "gen" || m["license"] != "GPL-2.0-only" || m["action"] != "block" ||
		m["tokens"].(float64) < float64(e.ix.Params().Threshold()) {
		t.Errorf("copyleft_matches[0] = %v, want %s of gen, GPL-2.0-only, block", m, path)
	}
}

func readMsgWhole(t *testing.T, resp *http.Response) (map[string]any, []byte) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("bad body %q: %v", raw, err)
	}
	return obj, raw
}

// wholeBlocks returns the content blocks of a whole message.
func wholeBlocks(obj map[string]any) []map[string]any {
	var out []map[string]any
	cs, _ := obj["content"].([]any)
	for _, x := range cs {
		out = append(out, x.(map[string]any))
	}
	return out
}

// TestMessagesTextBlocked: a text block that copies GPL code is cut before the
// copied run, streamed and whole, and the answer ends as a refusal that cites the
// source; the clean words before the code pass.
func TestMessagesTextBlocked(t *testing.T) {
	e := newEnv(t, "block", "")
	answer := markdownAnswer(excerpt(e.gpl[3], 5, 60))
	useMsgUpstream(t, e, msgSpec{Type: "text", Text: answer})
	thr := e.ix.Params().Threshold()

	g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "write the walker")))
	if !g.done || len(g.errors) > 0 {
		t.Fatalf("done %v, errors %v", g.done, g.errors)
	}
	text := g.text("text")
	if got := e.longestRun(text); got >= thr {
		t.Errorf("the client received a run of %d tokens (threshold %d)", got, thr)
	}
	if !strings.HasPrefix(text, "Sure! Here is an implementation:") || len(text) >= len(answer) {
		t.Errorf("the text is not the answer cut: %q", text)
	}
	checkRefusal(t, e, g.stop, g.matches, "src/gen3.c")
	if n := g.names; n[0] != "message_start" || n[len(n)-3] != "content_block_stop" || n[len(n)-2] != "message_delta" {
		t.Errorf("events %v", n)
	}
	if u, _ := g.final["usage"].(map[string]any); u == nil || u["output_tokens"].(float64) < 1 {
		t.Errorf("the refusal's usage: %v", g.final["usage"])
	}
	audit, _ := os.ReadFile(e.audit)
	if !bytes.Contains(audit, []byte(`"action":"block"`)) || !bytes.Contains(audit, []byte(`"endpoint":"messages"`)) {
		t.Errorf("audit log: %s", audit)
	}
	if n := counterValue(t, e, `cleanroom_requests_total{endpoint="messages",outcome="blocked",stream="true"}`); n != 1 {
		t.Errorf("blocked streams counted: %v", n)
	}

	obj, _ := readMsgWhole(t, post(t, e.px.URL+"/v1/messages", msgBody(false, "write the walker")))
	bs := wholeBlocks(obj)
	if len(bs) != 1 || bs[0]["type"] != "text" {
		t.Fatalf("content %v", obj["content"])
	}
	whole := bs[0]["text"].(string)
	if got := e.longestRun(whole); got >= thr || !strings.HasPrefix(whole, "Sure! Here is") || len(whole) >= len(answer) {
		t.Errorf("whole text (run %d): %q", got, whole)
	}
	ms, _ := obj["copyleft_matches"].([]any)
	stop, _ := obj["stop_reason"].(string)
	checkRefusal(t, e, stop, ms, "src/gen3.c")
	if obj["id"] != "msg_01" || obj["usage"] == nil || obj["stop_sequence"] != nil {
		t.Errorf("the message's other fields changed: %v", obj)
	}
}

// TestMessagesToolUseDropped: a tool_use whose input carries copied code is
// dropped whole (the client never sees its content_block_start), and the text
// block before it passes whole.
func TestMessagesToolUseDropped(t *testing.T) {
	e := newEnv(t, "block", "")
	intro := "I'll write the file for you now.\n"
	code := excerpt(e.gpl[2], 3, 50)
	useMsgUpstream(t, e, msgSpec{Type: "text", Text: intro},
		msgSpec{Type: "tool_use", Name: "write_file", Input: map[string]any{"path": "walk.c", "content": code}})
	thr := e.ix.Params().Threshold()

	g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "write it to walk.c")))
	if !g.done || len(g.errors) > 0 {
		t.Fatalf("done %v, errors %v", g.done, g.errors)
	}
	if len(g.order) != 1 || g.blocks[0].typ != "text" || g.blocks[0].text != intro {
		t.Errorf("blocks %v; want only the text block, whole", g.order)
	}
	if bytes.Contains(g.raw, []byte(`"tool_use"`)) || bytes.Contains(g.raw, []byte("write_file")) {
		t.Errorf("the client saw the tool call: %s", g.raw)
	}
	if got := g.longest(e); got >= thr {
		t.Errorf("a run of %d tokens leaked", got)
	}
	checkRefusal(t, e, g.stop, g.matches, "src/gen2.c")

	obj, _ := readMsgWhole(t, post(t, e.px.URL+"/v1/messages", msgBody(false, "write it to walk.c")))
	bs := wholeBlocks(obj)
	if len(bs) != 1 || bs[0]["text"] != intro {
		t.Errorf("whole content %v; want the text block alone", obj["content"])
	}
	ms, _ := obj["copyleft_matches"].([]any)
	stop, _ := obj["stop_reason"].(string)
	checkRefusal(t, e, stop, ms, "src/gen2.c")
}

// TestMessagesThinkingCut: thinking that copies is cut (its signature, which
// signed the whole, is dropped), and the blocks after it do not go out.
func TestMessagesThinkingCut(t *testing.T) {
	e := newEnv(t, "block", "")
	thinking := "The user wants the walker. I remember it goes like this:\n\n```c\n" + excerpt(e.gpl[4], 2, 55) + "```\n"
	useMsgUpstream(t, e, msgSpec{Type: "redacted_thinking"}, msgSpec{Type: "thinking", Text: thinking}, msgSpec{Type: "text", Text: "Here is a walker."})
	thr := e.ix.Params().Threshold()

	g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "walk")))
	if !g.done {
		t.Fatalf("no message_stop: %s", g.raw)
	}
	if len(g.order) != 2 || g.blocks[0].typ != "redacted_thinking" || g.blocks[1].typ != "thinking" {
		t.Fatalf("blocks %v; want the redacted thinking and the cut thinking", g.order)
	}
	th := g.blocks[1]
	if got := e.longestRun(th.text); got >= thr || !strings.HasPrefix(th.text, "The user wants") || th.signature != "" {
		t.Errorf("thinking (run %d, signature %q): %q", got, th.signature, th.text)
	}
	checkRefusal(t, e, g.stop, g.matches, "src/gen4.c")

	obj, _ := readMsgWhole(t, post(t, e.px.URL+"/v1/messages", msgBody(false, "walk")))
	bs := wholeBlocks(obj)
	if len(bs) != 2 || bs[1]["type"] != "thinking" || bs[1]["signature"] != nil {
		t.Fatalf("whole content %v", obj["content"])
	}
	if got := e.longestRun(bs[1]["thinking"].(string)); got >= thr {
		t.Errorf("whole thinking leaked a run of %d", got)
	}
	ms, _ := obj["copyleft_matches"].([]any)
	stop, _ := obj["stop_reason"].(string)
	checkRefusal(t, e, stop, ms, "src/gen4.c")
}

// msgClean is a clean answer of every block type.
func msgClean() []msgSpec {
	return []msgSpec{
		{Type: "thinking", Text: "The user asks for an adder; a one-liner will do. " + strings.Repeat("Nothing copied here. ", 20)},
		{Type: "redacted_thinking"},
		{Type: "text", Text: "Sure:\n\n```go\nfunc add(a, b int) int {\n\treturn a + b // é\n}\n```\n" + strings.Repeat("More prose, unrelated to anything. ", 40)},
		{Type: "tool_use", Name: "write_file", Input: map[string]any{"path": "add.go", "content": "package add\n\nfunc add(a, b int) int { return a + b }\n"}},
	}
}

// TestMessagesCleanIsByteIdentical: a clean answer comes out byte for byte as the
// upstream sent it, streamed and whole.
func TestMessagesCleanIsByteIdentical(t *testing.T) {
	e := newEnv(t, "block", "")
	u := useMsgUpstream(t, e, msgClean()...)
	for _, stream := range []bool{true, false} {
		want, _ := io.ReadAll(post(t, u.srv.URL+"/v1/messages", msgBody(stream, "add")).Body)
		resp := post(t, e.px.URL+"/v1/messages", msgBody(stream, "add"))
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("stream %v: the proxy changed a clean answer:\n got %q\nwant %q", stream, got, want)
		}
	}
	if n := counterValue(t, e, `cleanroom_requests_total{endpoint="messages",outcome="clean",stream="true"}`); n != 1 {
		t.Errorf("clean streams counted: %v", n)
	}
}

// TestMessagesAnnotate: in annotate mode everything passes; the message_delta
// gets copyleft_matches and every other event is byte for byte the upstream's.
// The same when the policy only annotates a match in block mode.
func TestMessagesAnnotate(t *testing.T) {
	for _, tt := range []struct{ name, mode, policy string }{
		{"annotate mode", "annotate", ""},
		{"policy annotates", "block", "actions:\n  GPL-2.0-only: annotate\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mode, tt.policy)
			answer := markdownAnswer(excerpt(e.gpl[1], 3, 40))
			blocks := []msgSpec{{Type: "text", Text: answer}, {Type: "tool_use", Name: "save", Input: map[string]any{"content": excerpt(e.gpl[6], 1, 30)}}}
			u := useMsgUpstream(t, e, blocks...)
			want, _ := io.ReadAll(post(t, u.srv.URL+"/v1/messages", msgBody(true, "x")).Body)
			g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "x")))
			if g.text("text") != answer || g.stop != "tool_use" || !g.done {
				t.Fatalf("annotate changed the text or the stop_reason %q", g.stop)
			}
			if len(g.matches) < 2 {
				t.Fatalf("copyleft_matches %v, want both files", g.matches)
			}
			paths := map[any]bool{}
			for _, m := range g.matches {
				paths[m.(map[string]any)["path"]] = m.(map[string]any)["action"] == "annotate"
			}
			if !paths["src/gen1.c"] || !paths["src/gen6.c"] {
				t.Errorf("copyleft_matches %v", g.matches)
			}
			// Everything but the message_delta is the upstream's, byte for byte.
			wantEvs, gotEvs := strings.Split(string(want), "\n\n"), strings.Split(string(g.raw), "\n\n")
			if len(wantEvs) != len(gotEvs) {
				t.Fatalf("%d events, want %d", len(gotEvs), len(wantEvs))
			}
			for i := range wantEvs {
				if strings.HasPrefix(wantEvs[i], "event: message_delta") {
					var w, g map[string]any
					json.Unmarshal([]byte(strings.SplitN(wantEvs[i], "data: ", 2)[1]), &w)
					json.Unmarshal([]byte(strings.SplitN(gotEvs[i], "data: ", 2)[1]), &g)
					delete(g, "copyleft_matches")
					if fmt.Sprint(w) != fmt.Sprint(g) {
						t.Errorf("message_delta %v, want %v with the matches", g, w)
					}
					continue
				}
				if wantEvs[i] != gotEvs[i] {
					t.Errorf("event %d changed: %q, want %q", i, gotEvs[i], wantEvs[i])
				}
			}

			obj, _ := readMsgWhole(t, post(t, e.px.URL+"/v1/messages", msgBody(false, "x")))
			bs := wholeBlocks(obj)
			ms, _ := obj["copyleft_matches"].([]any)
			if len(bs) != 2 || bs[0]["text"] != answer || obj["stop_reason"] != "tool_use" || len(ms) < 2 {
				t.Errorf("whole: %d blocks, stop %v, %d matches", len(bs), obj["stop_reason"], len(ms))
			}
		})
	}
}

// TestMessagesEcho: a reply that repeats code the user sent (in a message, or in a
// tool result) is no new copying: it passes unchanged.
func TestMessagesEcho(t *testing.T) {
	e := newEnv(t, "block", "")
	code := excerpt(e.gpl[3], 5, 60)
	u := useMsgUpstream(t, e, msgSpec{Type: "text", Text: markdownAnswer(code)})
	body := msgBody(true, "Here is my walker:\n\n```c\n"+code+"```\n\nPlease tidy it.")
	g := readMessages(t, post(t, e.px.URL+"/v1/messages", body))
	if g.stop != "end_turn" || g.text("text") != markdownAnswer(code) || len(g.matches) > 0 {
		t.Errorf("an echo of the user's code was changed: stop %q, matches %v", g.stop, g.matches)
	}

	// The code came in a tool result; the model writes it back in a tool call.
	u.set(nil, msgSpec{Type: "tool_use", Name: "write_file", Input: map[string]any{"path": "b.c", "content": code}})
	body = map[string]any{"model": "claude-test", "max_tokens": 512, "stream": true,
		"system": []any{map[string]any{"type": "text", "text": "You are a careful engineer."}},
		"messages": []any{
			map[string]any{"role": "user", "content": "copy a.c to b.c"},
			map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": "t1", "name": "read_file", "input": map[string]any{"path": "a.c"}}}},
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": "t1",
				"content": []any{map[string]any{"type": "text", "text": code}}}}},
		}}
	g = readMessages(t, post(t, e.px.URL+"/v1/messages", body))
	if g.stop != "tool_use" || len(g.order) != 1 || !strings.Contains(string((&jsonStrings{}).feed([]byte(g.blocks[0].input))), code) {
		t.Errorf("a tool call writing back a tool result was changed: stop %q, blocks %v", g.stop, g.order)
	}
}

// msgUpstreamEvents is the start of a stream: a message and a text block begun.
const msgUpstreamStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"output_tokens\":1}}}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there, \"}}\n\n"

// TestMessagesHostileUpstream: malformed events, unknown event and delta types,
// deltas out of place and a stream that breaks off mid-block end the stream with a
// clear error event after the text checked before them, never a panic; the
// upstream's own error event passes as it is; the proxy goes on serving.
func TestMessagesHostileUpstream(t *testing.T) {
	e := newEnv(t, "block", "")
	u := useMsgUpstream(t, e)
	code := excerpt(e.gpl[5], 2, 50)
	codeDelta, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "mystery_delta", "text": code}})
	strayDelta, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": "ok", "thinking": code}})
	for _, tt := range []struct {
		name, body, typ, has string
	}{
		{"not JSON", "event: content_block_delta\ndata: {nope\n\n", "api_error", "not a Messages event"},
		{"no type", "event: content_block_delta\ndata: {\"index\":0}\n\n", "api_error", "not a Messages event"},
		{"text a number", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":5}}\n\n", "api_error", "not a Messages event"},
		{"unknown event", "event: content_block_flash\ndata: {\"type\":\"content_block_flash\",\"index\":0}\n\n", "api_error", `"content_block_flash"`},
		{"unknown delta carrying code", "event: content_block_delta\ndata: " + string(codeDelta) + "\n\n", "api_error", `"mystery_delta"`},
		{"stray thinking in a text delta", "event: content_block_delta\ndata: " + string(strayDelta) + "\n\n", "api_error", "text_delta that carries a thinking"},
		{"delta for no block", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", "api_error", "no block"},
		{"JSON for a text block", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n", "api_error", "input_json_delta for a text block"},
		{"second start", "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", "api_error", "second content_block_start"},
		{"breaks off mid-block", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"and", "api_error", "message_stop"},
		{"upstream error", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", "overloaded_error", "Overloaded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// What follows the bad event must not reach the client either.
			u.set([]byte(msgUpstreamStart + tt.body + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"after\"}}\n\n"))
			if tt.name == "breaks off mid-block" {
				u.set([]byte(msgUpstreamStart + tt.body))
			}
			g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "hi")))
			if len(g.errors) != 1 || g.errors[0]["type"] != tt.typ || !strings.Contains(g.errors[0]["message"].(string), tt.has) {
				t.Fatalf("errors %v; want one %s error with %q\n%s", g.errors, tt.typ, tt.has, g.raw)
			}
			if g.done || g.text("text") != "Hello there, " {
				t.Errorf("done %v, text %q; want the checked text and no message_stop", g.done, g.text("text"))
			}
			if e.longestRun(string(g.raw)) >= e.ix.Params().Threshold() {
				t.Errorf("unchecked code passed")
			}
		})
	}
	// A message_stop that lacks only its blank line still ends the message.
	t.Run("message_stop without its blank line", func(t *testing.T) {
		u.set(bytes.TrimSuffix(msgSSE([]msgSpec{{Type: "text", Text: "All of it."}}, "end_turn"), []byte("\n")))
		g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "hi")))
		if !g.done || len(g.errors) > 0 || g.text("text") != "All of it." {
			t.Errorf("done %v, errors %v, text %q", g.done, g.errors, g.text("text"))
		}
	})
	// Keys that differ only in case: encoding/json would read the decoy, a client
	// reads the code.
	t.Run("case-folded keys", func(t *testing.T) {
		delta, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": markdownAnswer(code), "Text": "x", "TYPE": "signature_delta"}})
		u.set([]byte(msgUpstreamStart + "event: content_block_delta\ndata: " + string(delta) + "\n\n"))
		g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "hi")))
		if got := g.longest(e); got >= e.ix.Params().Threshold() || g.stop != "refusal" {
			t.Errorf("stop %q, a run of %d passed", g.stop, got)
		}
	})
	u.set(nil, msgSpec{Type: "text", Text: "still serving"})
	if g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "hi"))); g.text("text") != "still serving" {
		t.Errorf("after the hostile streams: %q", g.text("text"))
	}
	if n := counterValue(t, e, `cleanroom_requests_total{endpoint="messages",outcome="upstream_error",stream="true"}`); n != 11 {
		t.Errorf("upstream errors counted: %v, want 11", n)
	}
}

// TestMessagesRequests: the model gate refuses in Anthropic's error shape, before
// the upstream; malformed requests are 400s that name the field at fault.
func TestMessagesRequests(t *testing.T) {
	e := newEnv(t, "block", modelPolicy)
	u := useMsgUpstream(t, e, msgSpec{Type: "text", Text: "An original answer."})
	type anthropicErr struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	read := func(resp *http.Response) anthropicErr {
		defer resp.Body.Close()
		var ae anthropicErr
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &ae); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		return ae
	}
	for _, stream := range []bool{false, true} {
		b := msgBody(stream, "hello")
		b["model"] = "gpt-4o-mini"
		resp := post(t, e.px.URL+"/v1/messages", b)
		ae := read(resp)
		if resp.StatusCode != 403 || ae.Type != "error" || ae.Error.Type != "invalid_request_error" ||
			!strings.Contains(ae.Error.Message, "model_license_blocked") || !strings.HasPrefix(ae.Error.Message, "model: ") {
			t.Errorf("refused model: %d %+v", resp.StatusCode, ae)
		}
	}
	if u.count() != 0 {
		t.Errorf("a refused request reached the upstream")
	}
	b := msgBody(false, "hello")
	b["model"] = "gpt-4o"
	if obj, _ := readMsgWhole(t, post(t, e.px.URL+"/v1/messages", b)); wholeBlocks(obj)[0]["text"] != "An original answer." {
		t.Errorf("an admitted model: %v", obj)
	}
	for _, tt := range []struct{ name, body, param string }{
		{"not an object", `[1]`, ""},
		{"messages missing", `{"model":"m","max_tokens":5}`, "messages"},
		{"messages a string", `{"messages":"hi"}`, "messages"},
		{"message a string", `{"messages":["hi"]}`, "messages[0]"},
		{"content a number", `{"messages":[{"role":"user","content":7}]}`, "messages[0].content"},
		{"text a number", `{"messages":[{"role":"user","content":[{"type":"text","text":7}]}]}`, "messages[0].content[0]"},
		{"text missing", `{"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text"},
		{"tool result content", `{"messages":[{"role":"user","content":[{"type":"tool_result","content":5}]}]}`, "messages[0].content[0].content"},
		{"system a number", `{"system":5,"messages":[]}`, "system"},
		{"stream a string", `{"stream":"yes","messages":[]}`, "stream"},
		{"max_tokens a string", `{"max_tokens":"5","messages":[]}`, "max_tokens"},
	} {
		resp := doRaw(t, e.px.URL+"/v1/messages", []byte(tt.body))
		ae := read(resp)
		if resp.StatusCode != 400 || ae.Type != "error" || ae.Error.Type != "invalid_request_error" || !strings.HasPrefix(ae.Error.Message, tt.param) {
			t.Errorf("%s: %d %+v; want 400 naming %q", tt.name, resp.StatusCode, ae, tt.param)
		}
	}
	if u.count() != 1 {
		t.Errorf("the upstream got %d requests, want 1", u.count())
	}
}

// TestMessagesIndexFailure: an index that stops answering mid-stream ends the
// stream with the Messages error event (fail-closed), and a whole message with a
// 503 in Anthropic's shape.
func TestMessagesIndexFailure(t *testing.T) {
	e, _ := newRedisEnv(t, "block")
	useMsgUpstream(t, e, msgSpec{Type: "text", Text: markdownAnswer(excerpt(e.gpl[3], 5, 60))})
	breakLookups(e)
	g := readMessages(t, post(t, e.px.URL+"/v1/messages", msgBody(true, "x")))
	if len(g.errors) != 1 || g.errors[0]["type"] != "api_error" || !strings.Contains(g.errors[0]["message"].(string), "index_unavailable") || g.done {
		t.Errorf("errors %v, done %v; want one api_error naming index_unavailable, no message_stop", g.errors, g.done)
	}
	if got := g.longest(e); got >= e.ix.Params().Threshold() {
		t.Errorf("unchecked text leaked: a run of %d", got)
	}
	resp := post(t, e.px.URL+"/v1/messages", msgBody(false, "x"))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !bytes.Contains(b, []byte(`"type":"api_error"`)) || !bytes.Contains(b, []byte("index_unavailable")) {
		t.Errorf("whole: %d %s", resp.StatusCode, b)
	}
}

// TestMessagesTestUpstream runs the proxy in front of the shared test upstream's
// Messages API: copied text is cut, a copying tool call dropped whole, copying
// thinking cut, streamed and whole; a clean reply is byte for byte the upstream's.
func TestMessagesTestUpstream(t *testing.T) {
	e := newEnv(t, "block", "")
	thr := e.ix.Params().Threshold()
	code := excerpt(e.gpl[3], 5, 60)
	args, _ := json.Marshal(map[string]string{"path": "w.c", "content": code})
	for _, tt := range []struct {
		name  string
		reply upstream.Reply
		check func(t *testing.T, g *msgGot)
	}{
		{"text", upstream.Reply{Content: markdownAnswer(code)}, func(t *testing.T, g *msgGot) {
			if !strings.HasPrefix(g.text("text"), "Sure! Here is") {
				t.Errorf("text %q", g.text("text"))
			}
		}},
		{"tool call", upstream.Reply{Content: "Writing w.c.", ToolCalls: []upstream.ToolCall{{Name: "write", Arguments: string(args)}}}, func(t *testing.T, g *msgGot) {
			if g.text("text") != "Writing w.c." || bytes.Contains(g.raw, []byte(`"tool_use"`)) {
				t.Errorf("text %q; tool_use seen: %v", g.text("text"), bytes.Contains(g.raw, []byte(`"tool_use"`)))
			}
		}},
		{"thinking", upstream.Reply{Reasoning: "Recall it:\n\n```c\n" + code + "```\n", Content: "Done."}, func(t *testing.T, g *msgGot) {
			if g.text("text") != "" || !strings.HasPrefix(g.text("thinking"), "Recall it:") {
				t.Errorf("text %q, thinking %q", g.text("text"), g.text("thinking"))
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.up.Script = upstream.FixedScript(tt.reply)
			g := readMessages(t, post(t, e.px.URL+upstream.MessagesPath, msgBody(true, "x")))
			if !g.done || g.stop != "refusal" || len(g.matches) == 0 {
				t.Fatalf("done %v, stop %q, matches %v", g.done, g.stop, g.matches)
			}
			if got := g.longest(e); got >= thr {
				t.Errorf("a run of %d tokens passed", got)
			}
			tt.check(t, g)
			obj, _ := readMsgWhole(t, post(t, e.px.URL+upstream.MessagesPath, msgBody(false, "x")))
			ms, _ := obj["copyleft_matches"].([]any)
			if obj["stop_reason"] != "refusal" || len(ms) == 0 {
				t.Errorf("whole: stop %v, matches %v", obj["stop_reason"], ms)
			}
			for _, text := range messagesTexts(must(json.Marshal(obj)), false) {
				if got := e.msgRun(text); got >= thr {
					t.Errorf("whole: a run of %d tokens passed", got)
				}
			}
		})
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Reasoning: "Short.", Content: "An original answer, é.", ToolCalls: []upstream.ToolCall{{Name: "f", Arguments: `{"a":"b"}`}}})
	for _, stream := range []bool{true, false} {
		// Its ids and signatures are new each time: a recorded answer is replayed.
		resp := post(t, e.upSrv.URL+upstream.MessagesPath, msgBody(stream, "x"))
		want, _ := io.ReadAll(resp.Body)
		ct := resp.Header.Get("Content-Type")
		replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			for i := 0; i < len(want); i += 11 {
				w.Write(want[i:min(i+11, len(want))])
				w.(http.Flusher).Flush()
			}
		}))
		defer replay.Close()
		e.srv.upstream, _ = e.srv.upstream.Parse(replay.URL)
		got, _ := io.ReadAll(post(t, e.px.URL+upstream.MessagesPath, msgBody(stream, "x")).Body)
		if !bytes.Equal(got, want) || len(want) == 0 {
			t.Errorf("stream %v: a clean reply changed:\n got %q\nwant %q", stream, got, want)
		}
	}
}

// TestMessagesTestUpstreamFaults: the shared test upstream's mid-stream faults
// (a dropped connection, a stream cut short, garbage, its overloaded_error event)
// each end the stream with one error event after what was checked, never a
// panic or a hang.
func TestMessagesTestUpstreamFaults(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: strings.Repeat("An original sentence. ", 30)})
	for _, fault := range []string{"drop:5", "truncate:5", "garbage:5", "error-event:5"} {
		t.Run(fault, func(t *testing.T) {
			b, _ := json.Marshal(msgBody(true, "x"))
			req, _ := http.NewRequest("POST", e.px.URL+upstream.MessagesPath, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(upstream.FaultHeader, fault)
			resp, err := faultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			g := readMessages(t, resp)
			t.Logf("%s: %v", fault, g.errors)
			if len(g.errors) != 1 || g.done {
				t.Errorf("errors %v, done %v; want one error event and no message_stop\n%s", g.errors, g.done, g.raw)
			}
		})
	}
}
