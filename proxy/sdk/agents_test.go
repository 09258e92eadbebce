package sdk_test

// The tests of the wire formats agents and their SDKs speak beside chat completions:
// the OpenAI Responses API (POST /v1/responses), Anthropic Messages (POST
// /v1/messages) and Ollama's native /api/chat and /api/generate. Each case is one
// reply of the test upstream (agentReply), sent through each client, streamed and
// whole, and checked by checkAgent.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

// An agentReply is what the upstream answers, in the JSON of upstream.Reply: the
// text, the reasoning (a Responses reasoning item, Messages thinking, Ollama
// thinking), function calls (Messages tool_use, Ollama tool_calls) and custom tool
// calls (Responses custom_tool_call).
type agentReply struct {
	Content         string        `json:"content,omitempty"`
	Reasoning       string        `json:"reasoning,omitempty"`
	ToolCalls       []agentCall   `json:"tool_calls,omitempty"`
	CustomToolCalls []agentCustom `json:"custom_tool_calls,omitempty"`
}

// An agentCall is a function call: its arguments are JSON text.
type agentCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// An agentCustom is a custom tool call, whose input is free text.
type agentCustom struct {
	Name  string `json:"name"`
	Input string `json:"input"`
}

// upstream returns the reply as the test upstream takes it. The tests script the
// upstream in Go rather than with a directive in the prompt (upstream.DirectivePrefix):
// the proxy does not count output that repeats the request's own text (its echo
// set), so a prompt that carried the copied code would excuse it.
func (r agentReply) upstream() upstream.Reply {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	var u upstream.Reply
	if err := json.Unmarshal(b, &u); err != nil {
		panic(err)
	}
	return u
}

// newAgentEnv starts the upstream, answering reply, and the proxy in mode in front
// of it, serving ci, with opts. seed varies the uneven chunking.
func newAgentEnv(t *testing.T, ci *corpusIndex, mode string, seed int64, reply agentReply, opts proxy.Options, faults string) *env {
	t.Helper()
	up := upstream.New()
	up.Log, up.Seed = quiet, seed
	up.Script = upstream.FixedScript(reply.upstream())
	if faults != "" {
		var err error
		if up.Faults, err = upstream.ParseFaults(faults); err != nil {
			t.Fatal(err)
		}
	}
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	opts.Mode = mode
	return &env{upURL: upSrv.URL, api: startProxyOpts(t, ci, upSrv.URL, opts)}
}

// agentReceived is what a client made of one answer, in the JSON the Node scripts
// print (AgentRecord in node/lib.mjs).
type agentReceived struct {
	Text            string        `json:"text"`
	Reasoning       string        `json:"reasoning"`
	ToolCalls       []agentCall   `json:"tool_calls"`
	CustomToolCalls []agentCustom `json:"custom_tool_calls"`
	// Events are the types of the events read, in order (Ollama: "chunk", and
	// "done" for an object with done: true).
	Events          []string `json:"events"`
	SequenceNumbers []int64  `json:"sequence_numbers"` // Responses streams
	// Annotations are those of a Responses response object's output_text parts (a
	// stream's final one); AnnotationEvents those response.output_text.annotation.added
	// announced.
	Annotations      []annotation    `json:"annotations"`
	AnnotationEvents []annotation    `json:"annotation_events"`
	CopyleftMatches  []copyleftMatch `json:"copyleft_matches"`
	// Responses: the response's status and incomplete_details.reason.
	Status           string `json:"status"`
	IncompleteReason string `json:"incomplete_reason"`
	// Messages: the stop_reason.
	StopReason string `json:"stop_reason"`
	// Ollama: the last object's done and done_reason.
	Done       bool   `json:"done"`
	DoneReason string `json:"done_reason"`
	// OutputText is a whole response's output_text, as the SDK reads it.
	OutputText *string `json:"output_text"`
	// Final is a stream's outcome as the final event says it (Responses: the
	// response of response.completed or response.incomplete) or as the SDK's
	// accumulator has it (Messages' finalMessage()): it must agree with the deltas.
	Final *agentFinal `json:"final"`
	// Raw holds every event, or the whole body, as the client parsed it.
	Raw []json.RawMessage `json:"raw"`
}

type agentFinal struct {
	Text            string        `json:"text"`
	Reasoning       string        `json:"reasoning"`
	ToolCalls       []agentCall   `json:"tool_calls"`
	CustomToolCalls []agentCustom `json:"custom_tool_calls"`
	StopReason      string        `json:"stop_reason"`
}

// An annotation is an annotation of a Responses output_text part.
type annotation struct {
	Type       string `json:"type"`
	URL        string `json:"url"`
	Title      string `json:"title"`
	StartIndex int    `json:"start_index"`
	EndIndex   int    `json:"end_index"`
}

// The parts of a reply that can copy indexed code.
const (
	partNone    = ""
	partContent = "content"
	partReason  = "reasoning"
	partTool    = "tool_call"
	partCustom  = "custom_tool_call"
)

// An agentCase is a reply and what of it copies what.
type agentCase struct {
	name   string
	mode   string // "block" or "annotate"
	reply  agentReply
	copied string // the part that copies (part*), or partNone
	path   string // the indexed file it copies
}

// The APIs, as checkAgent tells their ends apart.
const (
	apiResponses = "responses"
	apiMessages  = "messages"
	apiOllama    = "ollama"
)

// An agentClient sends a prompt, streamed or not, to the proxy whose env is e.
type agentClient struct {
	name   string
	stream bool
	send   func(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error)
}

// copiedCode returns lines [a, b) of gen's file i and the file's path.
func copiedCode(i, a, b int) (code, path string) {
	return excerpt(gen.files[i], a, b), fmt.Sprintf("src/gen%d.c", i)
}

// writeFileArgs returns the JSON arguments of a write_file call writing content.
func writeFileArgs(path, content string) string {
	b, _ := json.Marshal(map[string]string{"path": path, "content": content})
	return string(b)
}

// addFilePatch returns an apply_patch patch (as Codex's apply_patch tool takes it)
// adding file path with content: each line prefixed with "+".
func addFilePatch(path, content string) string {
	var b strings.Builder
	b.WriteString("*** Begin Patch\n*** Add File: " + path + "\n")
	for l := range strings.Lines(content) {
		b.WriteString("+" + l)
	}
	b.WriteString("*** End Patch\n")
	return b.String()
}

// runAgentCases runs each case through each client, in parallel, each against a
// fresh upstream and proxy serving ci. more, if not nil, checks more of what a
// client got.
func runAgentCases(t *testing.T, ci *corpusIndex, api string, clients []agentClient, cases []agentCase,
	more func(t *testing.T, got *agentReceived, c agentCase)) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := newAgentEnv(t, ci, tc.mode, int64(20+i), tc.reply, proxy.Options{}, "")
					got, err := c.send(t, e, c.stream, "walk the list")
					if err != nil {
						t.Fatalf("the %s client raised: %v", c.name, err)
					}
					checkAgent(t, ci, api, c.stream, got, tc)
					if more != nil {
						more(t, got, tc)
					}
				})
			}
		})
	}
}

// checkAgent checks what a client of api received for case c against what the
// upstream sent, the proxy serving ci.
func checkAgent(t *testing.T, ci *corpusIndex, api string, stream bool, got *agentReceived, c agentCase) {
	t.Helper()
	blocked := c.copied != partNone && c.mode == "block"
	if blocked {
		checkNoLeak(t, ci, got)
	}
	checkEnd(t, api, stream, got, c, blocked)
	if stream {
		checkFinal(t, api, got)
	}
	w := c.reply
	switch {
	case !blocked:
		// Clean or annotated: exactly what the upstream sent.
		if got.Text != w.Content {
			t.Errorf("the text changed:\n got %q\nwant %q", got.Text, w.Content)
		}
		if got.Reasoning != w.Reasoning {
			t.Errorf("the reasoning changed:\n got %q\nwant %q", got.Reasoning, w.Reasoning)
		}
		checkCalls(t, got.ToolCalls, w.ToolCalls)
		if !reflect.DeepEqual(nonNil(got.CustomToolCalls), nonNil(w.CustomToolCalls)) {
			t.Errorf("the custom tool calls changed:\n got %q\nwant %q", got.CustomToolCalls, w.CustomToolCalls)
		}
	case c.copied == partContent:
		if !strings.HasPrefix(w.Content, got.Text) || !strings.HasPrefix(got.Text, preamble) {
			t.Errorf("blocked text: got %q, want a prefix of the upstream's text that keeps %q", got.Text, preamble)
		}
	case c.copied == partReason:
		if !strings.HasPrefix(w.Reasoning, got.Reasoning) {
			t.Errorf("blocked reasoning: got %q, want a prefix of the upstream's %q", got.Reasoning, w.Reasoning)
		}
		if got.Text != "" {
			t.Errorf("the text after blocked reasoning reached the client: %q", got.Text)
		}
	default: // a tool call: the text before it is clean, and whole
		if got.Text != w.Content {
			t.Errorf("the text before a blocked %s changed:\n got %q\nwant %q", c.copied, got.Text, w.Content)
		}
		if len(got.ToolCalls)+len(got.CustomToolCalls) > 0 {
			t.Errorf("a blocked %s reached the client: %q %q", c.copied, got.ToolCalls, got.CustomToolCalls)
		}
		if api == apiResponses {
			checkNoCallItem(t, got)
		}
	}
	if c.copied == partNone {
		if got.CopyleftMatches != nil || len(got.Annotations)+len(got.AnnotationEvents) > 0 {
			t.Errorf("a clean answer carries a citation: copyleft_matches %+v, annotations %+v %+v",
				got.CopyleftMatches, got.Annotations, got.AnnotationEvents)
		}
		return
	}
	checkMatches(t, ci, got.CopyleftMatches, c.path, c.mode)
	if api == apiResponses && c.copied == partContent {
		checkURLCitation(t, ci, got, c.path, c.mode, stream)
	}
}

// checkNoLeak checks that no run of indexed code as long as ci's threshold is in any
// text the client received: the reassembled fields, and every string of every event.
func checkNoLeak(t *testing.T, ci *corpusIndex, got *agentReceived) {
	t.Helper()
	texts := []string{got.Text, got.Reasoning}
	for _, c := range got.ToolCalls {
		texts = append(texts, c.Arguments)
	}
	for _, c := range got.CustomToolCalls {
		texts = append(texts, c.Input)
	}
	if f := got.Final; f != nil {
		texts = append(texts, f.Text, f.Reasoning)
		for _, c := range f.ToolCalls {
			texts = append(texts, c.Arguments)
		}
		for _, c := range f.CustomToolCalls {
			texts = append(texts, c.Input)
		}
	}
	if got.OutputText != nil {
		texts = append(texts, *got.OutputText)
	}
	for _, raw := range got.Raw {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("an event the client read is not JSON: %v: %s", err, raw)
			continue
		}
		texts = appendStrings(texts, v)
	}
	thr := ci.threshold()
	for _, s := range texts {
		if run := leak(ci, s); run >= thr {
			t.Errorf("the client received a run of %d tokens of indexed code (threshold %d):\n%s", run, thr, s)
		}
	}
}

// appendStrings appends the strings in the JSON value v.
func appendStrings(out []string, v any) []string {
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			out = appendStrings(out, e)
		}
	case map[string]any:
		for _, e := range v {
			out = appendStrings(out, e)
		}
	}
	return out
}

// leak returns the longest run of indexed code in s, read every way code may travel
// in it: as markdown, as a C file, as JSON (whole or cut off) whose strings hold
// code, and as a patch whose lines start with "+".
func leak(ci *corpusIndex, s string) int {
	if len(s) < ci.threshold() { // every token is at least a byte
		return 0
	}
	run := 0
	for _, v := range []string{s, looseJSONStrings(s), unpatch(s)} {
		run = max(run, ci.longestRun(v), ci.longestRun("```c\n"+v+"\n```\n"))
	}
	return run
}

// unpatch removes the "+" that starts the added lines of a patch.
func unpatch(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		b.WriteString(strings.TrimPrefix(l, "+"))
	}
	return b.String()
}

// looseJSONStrings returns the strings of a JSON text, decoded, one a line, even of
// JSON cut off anywhere (the arguments of a tool call that stopped).
func looseJSONStrings(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		for i++; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' || i+1 >= len(s) {
				b.WriteByte(s[i])
				continue
			}
			i++
			switch c := s[i]; c {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b', 'f':
			case 'u':
				if i+4 < len(s) {
					if n, err := strconv.ParseUint(s[i+1:i+5], 16, 32); err == nil {
						r := rune(n)
						if utf16.IsSurrogate(r) {
							r = utf8.RuneError
						}
						b.WriteRune(r)
						i += 4
					}
				}
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// checkEnd checks how the answer ended: normally, or stopped by the proxy in a way
// the client's API has for it.
func checkEnd(t *testing.T, api string, stream bool, got *agentReceived, c agentCase, blocked bool) {
	t.Helper()
	switch api {
	case apiResponses:
		wantStatus, wantReason, wantLast := "completed", "", "response.completed"
		if blocked {
			wantStatus, wantReason, wantLast = "incomplete", "content_filter", "response.incomplete"
		}
		if got.Status != wantStatus || got.IncompleteReason != wantReason {
			t.Errorf("status %q, incomplete_details.reason %q; want %q, %q", got.Status, got.IncompleteReason, wantStatus, wantReason)
		}
		if !stream {
			return
		}
		if n := len(got.Events); n == 0 || got.Events[n-1] != wantLast {
			t.Errorf("the last event is not %s: %q", wantLast, got.Events)
		}
		if n := countOf(got.Events, "response.completed", "response.incomplete", "response.failed"); n != 1 {
			t.Errorf("%d terminal events, want 1: %q", n, got.Events)
		}
		for i, n := range got.SequenceNumbers {
			if n != got.SequenceNumbers[0]+int64(i) {
				t.Errorf("sequence_number %d follows %d (event %d, %s): want consecutive numbers, got %v",
					n, got.SequenceNumbers[max(i-1, 0)], i, got.Events[i], got.SequenceNumbers)
				break
			}
		}
	case apiMessages:
		want := "end_turn"
		switch {
		case blocked:
			want = "refusal"
		case len(c.reply.ToolCalls) > 0:
			want = "tool_use"
		}
		if got.StopReason != want {
			t.Errorf("stop_reason %q, want %q", got.StopReason, want)
		}
		if !stream {
			return
		}
		if n := len(got.Events); n == 0 || got.Events[0] != "message_start" || got.Events[n-1] != "message_stop" {
			t.Errorf("the events do not run from message_start to message_stop: %q", got.Events)
		}
		if n := countOf(got.Events, "message_delta"); n != 1 {
			t.Errorf("%d message_delta events, want 1: %q", n, got.Events)
		}
		if n := countOf(got.Events, "content_block_start"); n != countOf(got.Events, "content_block_stop") {
			t.Errorf("%d content blocks started, %d stopped: %q", n, countOf(got.Events, "content_block_stop"), got.Events)
		}
	case apiOllama:
		want := "stop"
		if blocked {
			want = "content_filter"
		}
		if !got.Done || got.DoneReason != want {
			t.Errorf("done %v, done_reason %q; want done, %q", got.Done, got.DoneReason, want)
		}
		if n := len(got.Events); n == 0 || got.Events[n-1] != "done" || countOf(got.Events, "done") != 1 {
			t.Errorf("want one object with done: true, the last: %q", got.Events)
		}
	}
}

// checkFinal checks that a stream's final word agrees with its deltas.
func checkFinal(t *testing.T, api string, got *agentReceived) {
	t.Helper()
	f := got.Final
	if f == nil {
		if api == apiResponses {
			t.Errorf("no final response object")
		}
		return
	}
	if f.Text != got.Text || f.Reasoning != got.Reasoning {
		t.Errorf("the final %s says text %q, reasoning %q; the deltas said %q, %q", api, f.Text, f.Reasoning, got.Text, got.Reasoning)
	}
	checkCalls(t, f.ToolCalls, got.ToolCalls)
	if !reflect.DeepEqual(nonNil(f.CustomToolCalls), nonNil(got.CustomToolCalls)) {
		t.Errorf("the final %s says custom tool calls %q; the deltas said %q", api, f.CustomToolCalls, got.CustomToolCalls)
	}
	if api == apiMessages && f.StopReason != got.StopReason {
		t.Errorf("finalMessage().stop_reason %q, message_delta's %q", f.StopReason, got.StopReason)
	}
}

// checkCalls checks that function calls arrived as sent: the same names, and
// arguments that are the same JSON value.
func checkCalls(t *testing.T, got, want []agentCall) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d tool calls, want %d:\n got %q\nwant %q", len(got), len(want), got, want)
		return
	}
	for i := range want {
		var g, w any
		gerr, werr := json.Unmarshal([]byte(got[i].Arguments), &g), json.Unmarshal([]byte(want[i].Arguments), &w)
		if got[i].Name != want[i].Name || gerr != nil || werr != nil || !reflect.DeepEqual(g, w) {
			t.Errorf("tool call %d changed:\n got %s(%s)\nwant %s(%s)", i, got[i].Name, got[i].Arguments, want[i].Name, want[i].Arguments)
		}
	}
}

// checkNoCallItem checks that no Responses event or body holds a function or custom
// tool call item: a copied call is dropped whole.
func checkNoCallItem(t *testing.T, got *agentReceived) {
	t.Helper()
	for _, raw := range got.Raw {
		var v any
		json.Unmarshal(raw, &v)
		if item, ok := findItem(v); ok {
			t.Errorf("a blocked call's item reached the client: %v\nin %s", item, raw)
			return
		}
	}
}

// findItem finds an object whose type is function_call or custom_tool_call in v.
func findItem(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if m, ok := findItem(e); ok {
				return m, true
			}
		}
	case map[string]any:
		if typ, _ := v["type"].(string); typ == "function_call" || typ == "custom_tool_call" {
			return v, true
		}
		for _, e := range v {
			if m, ok := findItem(e); ok {
				return m, true
			}
		}
	}
	return nil, false
}

// checkMatches checks the copyleft_matches the proxy added for a copy of path.
func checkMatches(t *testing.T, ci *corpusIndex, ms []copyleftMatch, path, mode string) {
	t.Helper()
	if len(ms) == 0 {
		t.Errorf("no copyleft_matches")
		return
	}
	m := ms[0]
	if m.Path != path || m.License != "GPL-2.0-only" || m.Action != mode || m.Repo == "" ||
		m.StartLine < 1 || m.EndLine < m.StartLine || !strings.Contains(m.URL, path) || m.Share <= 0 || m.Share > 1 {
		t.Errorf("copyleft_matches[0] = %+v, want path %s, license GPL-2.0-only, action %s, lines, a URL naming the path, 0 < share <= 1",
			m, path, mode)
	}
	if m.Tokens < ci.threshold() {
		t.Errorf("copyleft_matches[0] is %d tokens, shorter than the threshold %d", m.Tokens, ci.threshold())
	}
}

// checkURLCitation checks that the response's output text carries a url_citation
// annotation naming the first match's repository, path, lines and license, that a
// stream announced it, and that in annotate mode it spans the copied code.
func checkURLCitation(t *testing.T, ci *corpusIndex, got *agentReceived, path, mode string, stream bool) {
	t.Helper()
	if len(got.CopyleftMatches) == 0 {
		return // checkMatches said so
	}
	m := got.CopyleftMatches[0]
	i := slices.IndexFunc(got.Annotations, func(a annotation) bool { return a.Type == "url_citation" })
	if i < 0 {
		t.Errorf("no url_citation annotation on the response's output text: annotations %+v", got.Annotations)
		return
	}
	a := got.Annotations[i]
	text := []rune(got.Text) // the indexes count characters
	if a.URL != m.URL || a.StartIndex < 0 || a.EndIndex < a.StartIndex || a.EndIndex > len(text) {
		t.Errorf("url_citation %+v: want url %s and indexes within the text (%d characters)", a, m.URL, len(text))
		return
	}
	for _, w := range []string{m.Repo, path, strconv.Itoa(m.StartLine), strconv.Itoa(m.EndLine), m.License} {
		if !strings.Contains(a.Title, w) {
			t.Errorf("url_citation title %q does not name %q (want the repository, path, lines and license of %+v)", a.Title, w, m)
		}
	}
	if span := string(text[a.StartIndex:a.EndIndex]); mode == "annotate" && ci.longestRun("```c\n"+span+"\n```\n") < ci.threshold() {
		t.Errorf("url_citation [%d, %d) does not span the copied code: %q", a.StartIndex, a.EndIndex, span)
	}
	if stream && !slices.Contains(got.AnnotationEvents, a) {
		t.Errorf("the stream did not announce the url_citation %+v (response.output_text.annotation.added): %+v", a, got.AnnotationEvents)
	}
}

func countOf(events []string, types ...string) int {
	n := 0
	for _, e := range events {
		if slices.Contains(types, e) {
			n++
		}
	}
	return n
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// responsesCases are the replies of the Responses tests, for every client.
func responsesCases() []agentCase {
	code3, path3 := copiedCode(3, 2, 50)
	code4, path4 := copiedCode(4, 5, 60)
	code5, path5 := copiedCode(5, 0, 45)
	code7, path7 := copiedCode(7, 1, 45)
	cleanCode := "func Sum(xs ...float64) (s float64) {\n\tfor _, x := range xs {\n\t\ts += x\n\t}\n\treturn s\n}\n"
	return []agentCase{
		{"text/blocked", "block", agentReply{Content: upstream.Markdown("c", code3)}, partContent, path3},
		{"function_call/blocked", "block", agentReply{Content: "I will write the walker to walk.c.",
			ToolCalls: []agentCall{{"write_file", writeFileArgs("walk.c", code4)}}}, partTool, path4},
		{"custom_tool_call/blocked", "block", agentReply{Content: "Applying the patch.",
			CustomToolCalls: []agentCustom{{"apply_patch", addFilePatch("walk.c", code5)}}}, partCustom, path5},
		{"clean", "block", agentReply{Content: original}, partNone, ""},
		{"clean/tools", "block", agentReply{Content: "Writing sum.go.",
			ToolCalls:       []agentCall{{"write_file", writeFileArgs("sum.go", original)}},
			CustomToolCalls: []agentCustom{{"apply_patch", addFilePatch("sum.go", cleanCode)}}}, partNone, ""},
		{"text/annotate", "annotate", agentReply{Content: upstream.Markdown("c", code7)}, partContent, path7},
	}
}

func TestAgentResponses(t *testing.T) {
	clients := []agentClient{
		{"node/stream", true, nodeResponses},
		{"node/whole", false, nodeResponses},
		{"go/stream", true, goResponses},
		{"go/whole", false, goResponses},
	}
	runAgentCases(t, gen, apiResponses, clients, responsesCases(), nil)
}

func TestAgentMessages(t *testing.T) {
	code3, path3 := copiedCode(3, 2, 50)
	code4, path4 := copiedCode(4, 5, 60)
	code6, path6 := copiedCode(6, 3, 50)
	code7, path7 := copiedCode(7, 1, 45)
	cases := []agentCase{
		{"text/blocked", "block", agentReply{Content: upstream.Markdown("c", code3)}, partContent, path3},
		{"tool_use/blocked", "block", agentReply{Content: "I will write the walker to walk.c.",
			ToolCalls: []agentCall{{"write_file", writeFileArgs("walk.c", code4)}}}, partTool, path4},
		{"thinking/blocked", "block", agentReply{Reasoning: "I remember this one.\n\n" + upstream.Markdown("c", code6),
			Content: "Here is the walker."}, partReason, path6},
		{"clean", "block", agentReply{Reasoning: "A loop that adds the numbers will do.", Content: original}, partNone, ""},
		{"clean/tool_use", "block", agentReply{Content: "Writing sum.go.",
			ToolCalls: []agentCall{{"write_file", writeFileArgs("sum.go", original)}}}, partNone, ""},
		{"text/annotate", "annotate", agentReply{Content: upstream.Markdown("c", code7)}, partContent, path7},
	}
	clients := []agentClient{
		{"node/stream", true, nodeMessages("")},
		{"node/whole", false, nodeMessages("")},
		{"node/helper", true, nodeMessages("helper")},
	}
	runAgentCases(t, gen, apiMessages, clients, cases, nil)
}

func TestAgentOllama(t *testing.T) {
	code3, path3 := copiedCode(3, 2, 50)
	code7, path7 := copiedCode(7, 1, 45)
	cases := []agentCase{
		{"blocked", "block", agentReply{Content: upstream.Markdown("c", code3)}, partContent, path3},
		{"clean", "block", agentReply{Content: original}, partNone, ""},
		{"annotate", "annotate", agentReply{Content: upstream.Markdown("c", code7)}, partContent, path7},
	}
	clients := []agentClient{
		{"chat/stream", true, nodeOllama("chat")},
		{"chat/whole", false, nodeOllama("chat")},
		{"generate/stream", true, nodeOllama("generate")},
		{"generate/whole", false, nodeOllama("generate")},
	}
	runAgentCases(t, gen, apiOllama, clients, cases, nil)
}

// TestAgentUnknownPaths checks that the proxy refuses a POST it cannot filter,
// whatever the upstream would answer: a 404 that names the path.
func TestAgentUnknownPaths(t *testing.T) {
	yes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"response","path":%q}`, r.URL.Path)
	}))
	defer yes.Close()
	api := startProxy(t, gen, "block", yes.URL)
	posters := []struct {
		name string
		post func(t *testing.T, api, path string) (json.RawMessage, error)
	}{
		{"node", nodePost},
		{"go", goPost},
	}
	for _, p := range posters {
		for _, path := range []string{"/realtime", "/some/unknown"} {
			t.Run(p.name+path, func(t *testing.T) {
				t.Parallel()
				body, err := p.post(t, api, path)
				if err == nil {
					t.Fatalf("POST /v1%s passed the proxy: the client received %s", path, body)
				}
				status, msg := apiStatus(err)
				if status != http.StatusNotFound || !strings.Contains(msg, "/v1"+path) {
					t.Errorf("POST /v1%s: status %d, message %q; want 404 and a message naming /v1%s", path, status, msg, path)
				}
			})
		}
	}
}

// startProxyOpts starts a proxy with opts, filled in as startProxy does, in front of
// upstreamURL, and returns its API root.
func startProxyOpts(t *testing.T, ci *corpusIndex, upstreamURL string, opts proxy.Options) string {
	t.Helper()
	opts.Index, opts.Upstream = ci.dir, upstreamURL
	opts.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := proxy.New(opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(s.Handler())
	t.Cleanup(func() { px.Close(); s.Close() })
	return px.URL + "/v1"
}

// TestAgentErrors checks that each client raises the failures of the proxy and of
// the upstream as errors it can read (not "[object Object]"), with their status,
// and never takes a stream that broke off for a whole answer.
func TestAgentErrors(t *testing.T) {
	clients := []agentClient{
		{"responses/node/stream", true, nodeResponses},
		{"responses/node/whole", false, nodeResponses},
		{"responses/go/stream", true, goResponses},
		{"responses/go/whole", false, goResponses},
		{"messages/node/stream", true, nodeMessages("")},
		{"messages/node/whole", false, nodeMessages("")},
		{"ollama/chat/stream", true, nodeOllama("chat")},
		{"ollama/chat/whole", false, nodeOllama("chat")},
		{"ollama/generate/stream", true, nodeOllama("generate")},
	}
	code, _ := copiedCode(3, 2, 50)
	reply := agentReply{Content: upstream.Markdown("c", code)}
	cases := []struct {
		name       string
		fault      string // the upstream's; "" for a request the proxy refuses as too large
		streamOnly bool
		status     int    // the status the client's error must report; 0: any
		text       string // what its message must say
	}{
		{"too-large", "", false, http.StatusRequestEntityTooLarge, "larger than"},
		{"rate-limited", "status:429", false, http.StatusTooManyRequests, ""},
		{"dropped", "drop:3", true, 0, ""},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				if tc.streamOnly && !c.stream {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					var opts proxy.Options
					prompt := "walk the list"
					if tc.fault == "" {
						opts.MaxBody = 256
						prompt = strings.Repeat("walk the list. ", 30)
					}
					e := newAgentEnv(t, gen, "block", 1, reply, opts, tc.fault)
					got, err := c.send(t, e, c.stream, prompt)
					if err == nil {
						// A stream that broke off may end without an exception, if the
						// client can still tell it did not complete.
						if tc.status == 0 && !completed(got) {
							return
						}
						got.Raw = nil
						t.Fatalf("the client raised no error for %s and took the answer for complete: %+v", tc.name, got)
					}
					status, msg := apiStatus(err)
					if tc.status != 0 && status != tc.status {
						t.Errorf("error %v: status %d, want %d", err, status, tc.status)
					}
					if !strings.Contains(msg, tc.text) || strings.TrimSpace(msg) == "" || strings.Contains(msg, "[object Object]") {
						t.Errorf("the client's error says %q; want a readable message that says %q", msg, tc.text)
					}
				})
			}
		})
	}
}

// completed reports whether a client took an answer for whole.
func completed(got *agentReceived) bool {
	return got.Status == "completed" || got.StopReason != "" || got.Done
}
