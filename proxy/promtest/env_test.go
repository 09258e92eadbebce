package promtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cleanroom/index/indextest"
	"cleanroom/proxy"
	"cleanroom/proxy/modelcard/cardtest"
	"cleanroom/proxy/upstream"
)

// policy annotates LGPL matches, allows those of the repo "acme" and, by the
// default mode, blocks the rest.
//
// Its models section lists a model served from a card (--model-dir) as its review
// read it, so that the card metrics are exposed; the traffic names other models.
const policy = "actions:\n  LGPL-*: annotate\nallowlist:\n  - repo: acme\n" +
	"models:\n  list:\n    - id: code-model\n      card: acme/code-model\n      card_license: apache-2.0\n" +
	"      commit: " + cardtest.C1 + "\n      license: Apache-2.0\n"

// env is the proxy in front of the test upstream, over an index of generated code:
// gpl[i] are GPL-2.0-only files of repo "gen", lgpl[i] LGPL-2.1 files of "lesser",
// acme[i] GPL files of the allowlisted "acme".
type env struct {
	ixDir           string
	gpl, lgpl, acme []string
	mu              sync.Mutex
	replies         map[string]string // the model's answer, by the request's last user message; guarded by mu
	up              *upstream.Server
	px              *httptest.Server
}

// newEnv builds the index and starts the upstream and the proxy.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{ixDir: filepath.Join(dir, "ix"), replies: map[string]string{}}
	texts, err := indextest.Build(e.ixDir, 7, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 4, Funcs: 4},
		indextest.Repo{Name: "lesser", License: "LGPL-2.1-or-later", Files: 2, Funcs: 4},
		indextest.Repo{Name: "acme", License: "GPL-3.0-only", Files: 1, Funcs: 4})
	if err != nil {
		t.Fatal(err)
	}
	e.gpl, e.lgpl, e.acme = texts["gen"], texts["lesser"], texts["acme"]

	quiet := slog.New(slog.DiscardHandler)
	e.up = upstream.New()
	e.up.Script = func(r *upstream.Request) ([]upstream.Reply, error) {
		e.mu.Lock()
		content, ok := e.replies[r.LastUser()]
		e.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("no reply scripted for %q", r.LastUser())
		}
		out := make([]upstream.Reply, r.N)
		for i := range out {
			out[i].Content = content
		}
		return out, nil
	}
	upSrv := httptest.NewServer(e.up)
	t.Cleanup(func() { e.up.Close(); upSrv.Close() })
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "hub")
	cardtest.Write(t, cache, "acme/code-model", cardtest.C1, cardtest.Mistral)
	s, err := proxy.New(proxy.Options{Index: e.ixDir, Upstream: upSrv.URL, Mode: "block", PolicyFile: policyFile,
		ModelDirs: []string{cache}, AuditLog: filepath.Join(dir, "audit.jsonl")}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	e.px = httptest.NewServer(s.Handler())
	t.Cleanup(func() { e.px.Close(); s.Close() })
	return e
}

// excerpt returns lines [a, b) of a generated file as a model's markdown answer.
func excerpt(file string, a, b int) string {
	ls := strings.SplitAfter(file, "\n")
	return "Sure! Here is an implementation:\n\n```c\n" + strings.Join(ls[a:min(b, len(ls))], "") + "```\n"
}

// A call is one request to the proxy and the outcome it must be counted under.
type call struct {
	name    string
	legacy  bool   // /v1/completions rather than /v1/chat/completions
	stream  bool   // ask for a streamed response
	reply   string // what the model answers; "" for requests that do not reach it
	fault   string // upstream.FaultHeader, if any
	body    string // the raw request body, instead of one asking for reply
	outcome string // cleanroom_requests_total's outcome label
	allowed int    // matches of acme (GPL-3.0-only) the policy allows: counted, not shown
}

// calls returns a bit of everything: blocked, annotated, allowed and clean
// completions, streamed or not, on both endpoints; a bad request; an upstream error.
func (e *env) calls() []call {
	return []call{
		{name: "blocked chat stream", stream: true, reply: excerpt(e.gpl[0], 3, 40), outcome: "blocked"},
		{name: "blocked chat", reply: excerpt(e.gpl[1], 3, 40), outcome: "blocked"},
		{name: "blocked legacy stream", legacy: true, stream: true, reply: excerpt(e.gpl[2], 3, 40), outcome: "blocked"},
		{name: "annotated chat stream", stream: true, reply: excerpt(e.lgpl[0], 3, 40), outcome: "annotated"},
		{name: "annotated legacy", legacy: true, reply: excerpt(e.lgpl[1], 3, 40), outcome: "annotated"},
		{name: "allowlisted chat stream", stream: true, reply: excerpt(e.acme[0], 3, 40), outcome: "clean", allowed: 1},
		{name: "clean chat stream", stream: true, reply: "int answer(void)\n{\n\treturn 42;\n}\n", outcome: "clean"},
		{name: "clean chat", reply: "Use a hash map keyed by the user id.", outcome: "clean"},
		{name: "clean legacy", legacy: true, reply: " and then the loop ends.", outcome: "clean"},
		{name: "bad request", body: `{"model":`, outcome: "bad_request"},
		{name: "upstream error", stream: true, reply: "unused", fault: "status:500", outcome: "upstream_error"},
	}
}

// A tally is what a set of calls must show in the metrics.
type tally struct {
	requests int
	outcomes map[string]int // by outcome label
	streamed map[string]int // by outcome label, streamed requests only
	matches  map[string]int // by action label: shown to clients, plus the allowed ones
	licenses map[string]int // matches by license label
	scanned  int            // responses scanned: those that reached the filter and came back 200
}

// send makes the calls in order and returns their tally. The matches counted are
// those the clients were shown (and the allowed ones), so the metrics are checked
// against what the proxy told its clients.
func (e *env) send(t *testing.T, calls []call) tally {
	t.Helper()
	ty := tally{outcomes: map[string]int{}, streamed: map[string]int{}, matches: map[string]int{}, licenses: map[string]int{}}
	for _, c := range calls {
		resp := e.post(t, c)
		got := readChoices(t, resp, c.stream)
		outcome, shown := "clean", 0
		switch {
		case resp.StatusCode == http.StatusBadRequest:
			outcome = "bad_request"
		case resp.StatusCode != http.StatusOK:
			outcome = "upstream_error"
		}
		for _, ch := range got {
			for _, m := range ch.Matches {
				ty.matches[m.Action]++
				ty.licenses[m.License]++
				shown++
			}
			if ch.FinishReason == "content_filter" {
				outcome = "blocked"
			} else if len(ch.Matches) > 0 && outcome == "clean" {
				outcome = "annotated"
			}
		}
		if outcome != c.outcome {
			t.Fatalf("%s: the client saw a %s response (status %d, %d matches shown), want %s", c.name, outcome, resp.StatusCode, shown, c.outcome)
		}
		ty.requests++
		ty.outcomes[outcome]++
		if c.stream && c.body == "" {
			ty.streamed[outcome]++
		}
		ty.matches["allow"] += c.allowed
		if c.allowed > 0 {
			ty.licenses["GPL-3.0-only"] += c.allowed
		}
		if resp.StatusCode == http.StatusOK {
			ty.scanned++
		}
	}
	return ty
}

// post sends c's request, with the model set to answer c.reply.
func (e *env) post(t *testing.T, c call) *http.Response {
	t.Helper()
	e.mu.Lock()
	user := fmt.Sprintf("request %d: %s", len(e.replies), c.name)
	e.replies[user] = c.reply
	e.mu.Unlock()
	path, body := "/v1/chat/completions", map[string]any{"model": "m", "stream": c.stream,
		"messages": []any{map[string]any{"role": "user", "content": user}}}
	if c.legacy {
		path, body = "/v1/completions", map[string]any{"model": "m", "stream": c.stream, "prompt": user}
	}
	raw, _ := json.Marshal(body)
	if c.body != "" {
		raw = []byte(c.body)
	}
	req, _ := http.NewRequest("POST", e.px.URL+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if c.fault != "" {
		req.Header.Set(upstream.FaultHeader, c.fault)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return resp
}

// A choiceResult is what a client learns of one choice.
type choiceResult struct {
	Index        int    `json:"index"`
	FinishReason string `json:"finish_reason"`
	Matches      []struct {
		Action  string `json:"action"`
		License string `json:"license"`
	} `json:"copyleft_matches"`
}

// readChoices reads a response's choices: the finish reason and the matches cited,
// from the whole body or from the events of a stream.
func readChoices(t *testing.T, resp *http.Response, stream bool) map[int]*choiceResult {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	out := map[int]*choiceResult{}
	if resp.StatusCode != http.StatusOK {
		return out
	}
	var docs []string
	if !stream {
		docs = []string{string(raw)}
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	for stream && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if data = strings.TrimSpace(data); ok && data != "[DONE]" {
			docs = append(docs, data)
		}
	}
	for _, d := range docs {
		var body struct{ Choices []choiceResult }
		if err := json.Unmarshal([]byte(d), &body); err != nil {
			t.Fatalf("bad response %q: %v", d, err)
		}
		for _, ch := range body.Choices {
			r := out[ch.Index]
			if r == nil {
				r = &choiceResult{Index: ch.Index}
				out[ch.Index] = r
			}
			if ch.FinishReason != "" {
				r.FinishReason = ch.FinishReason
			}
			if len(ch.Matches) > 0 {
				r.Matches = ch.Matches
			}
		}
	}
	return out
}

// metrics returns the proxy's /metrics.
func (e *env) metrics(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(e.px.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, %v\n%s", resp.StatusCode, err, b)
	}
	return b
}
