package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"cleanroom/proxy/upstream"
)

// doRaw posts body as it is to path on the proxy.
func doRaw(t *testing.T, url string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the proxy dropped the connection: %v", err)
	}
	return resp
}

// TestBadRequestErrors sends the proxy malformed completion requests: each is
// answered with the right status and an error in the OpenAI shape, names the
// parameter at fault where there is one, never reaches the upstream, and the proxy
// goes on serving.
func TestBadRequestErrors(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) { o.MaxBody = 1 << 20 })
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "An original answer."})
	big := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 1<<20) + `"}]}`
	tests := []struct {
		name, path, body string
		status           int
		code, param      string
	}{
		{"truncated JSON", "/v1/chat/completions", `{"model":`, 400, "invalid_request", ""},
		{"not an object", "/v1/chat/completions", `[1,2]`, 400, "invalid_request", ""},
		{"empty body", "/v1/chat/completions", ``, 400, "invalid_request", ""},
		{"trailing data", "/v1/chat/completions", `{"model":"m","messages":[]} {}`, 400, "invalid_request", ""},
		{"model a number", "/v1/chat/completions", `{"model":5,"messages":[]}`, 400, "invalid_request", "model"},
		{"stream a string", "/v1/chat/completions", `{"messages":[],"stream":"yes"}`, 400, "invalid_request", "stream"},
		{"n a string", "/v1/chat/completions", `{"messages":[],"n":"2"}`, 400, "invalid_request", "n"},
		{"n zero", "/v1/chat/completions", `{"messages":[],"n":0}`, 400, "invalid_request", "n"},
		{"n 129", "/v1/chat/completions", `{"messages":[],"n":129}`, 400, "invalid_request", "n"},
		{"n huge", "/v1/chat/completions", `{"messages":[],"n":1e30}`, 400, "invalid_request", "n"},
		{"messages a string", "/v1/chat/completions", `{"messages":"hi"}`, 400, "invalid_request", "messages"},
		{"messages missing", "/v1/chat/completions", `{"model":"m"}`, 400, "invalid_request", "messages"},
		{"content a number", "/v1/chat/completions", `{"messages":[{"role":"user","content":7}]}`, 400, "invalid_request", "messages[0].content"},
		{"prompt an object", "/v1/completions", `{"model":"m","prompt":{"a":1}}`, 400, "invalid_request", "prompt"},
		{"invalid UTF-8", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe caf\xe9\"}]}", 400, "invalid_request", ""},
		{"raw NUL byte", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\x00b\"}]}", 400, "invalid_request", ""},
		{"NUL before the object", "/v1/chat/completions", "\x00{\"messages\":[]}", 400, "invalid_request", ""},
		{"over the body limit", "/v1/chat/completions", big, 413, "request_too_large", ""},
		{"over the limit, legacy", "/v1/completions", `{"prompt":"` + strings.Repeat("y", 1<<20) + `"}`, 413, "request_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := doRaw(t, e.px.URL+tt.path, []byte(tt.body))
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			ae := readAPIError(t, resp)
			if resp.StatusCode != tt.status || ae.Error.Type != "invalid_request_error" || ae.Error.Message == "" ||
				ae.Error.Code == nil || *ae.Error.Code != tt.code {
				t.Errorf("status %d, error %+v; want %d %s", resp.StatusCode, ae.Error, tt.status, tt.code)
			}
			switch {
			case tt.param == "" && ae.Error.Param != nil:
				t.Errorf("param %q, want null", *ae.Error.Param)
			case tt.param != "" && (ae.Error.Param == nil || *ae.Error.Param != tt.param):
				t.Errorf("param %v, want %q", ae.Error.Param, tt.param)
			}
		})
	}
	if n := e.up.Stats().Requests; n != 0 {
		t.Errorf("%d bad requests reached the upstream", n)
	}
	// The proxy still serves.
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.content[0] != "An original answer." || !s.done {
		t.Errorf("after the bad requests: %q, done %v", s.content[0], s.done)
	}
	if got := counterValue(t, e, `cleanroom_requests_total{endpoint="chat",outcome="bad_request",stream="unknown"}`); got != float64(len(tests)-2) {
		t.Errorf("bad requests counted %v, want %d", got, len(tests)-2)
	}
}

// counterValue reads one series from the proxy's /metrics.
func counterValue(t *testing.T, e *env, series string) float64 {
	t.Helper()
	resp, err := http.Get(e.px.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			json.Unmarshal([]byte(v), &f)
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// TestOddButValidRequests: requests that are valid however odd reach the upstream
// byte for byte and are answered: unknown fields, an escaped NUL, a single line of
// 10 MB, n = 128, a null n.
func TestOddButValidRequests(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "An original answer."})
	size := 10 << 20 // a single line of 10 MB, no newline
	if testing.Short() {
		size = 1 << 20 // the race detector makes tokenizing 10 MB take many seconds
	}
	line := strings.Repeat("int x = y + 1; ", size/15)
	tests := []struct {
		name, body string
		choices    int
	}{
		{"unknown fields", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi","x_extra":[1,{"y":null}]}],"vendor_knob":{"a":1},"logit_bias":{"50256":-100}}`, 1},
		{"escaped NUL", `{"model":"m","stream":true,"messages":[{"role":"user","content":"a\u0000b"}]}`, 1},
		{"a 10 MB line", `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + line + `"}]}`, 1},
		{"n 128", `{"model":"m","stream":true,"n":128,"messages":[{"role":"user","content":"hi"}]}`, 128},
		{"n null", `{"model":"m","stream":true,"n":null,"messages":[{"role":"user","content":"hi"}]}`, 1},
		{"content parts", `{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:,"}}]}]}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := readStream(t, doRaw(t, e.px.URL+"/v1/chat/completions", []byte(tt.body)))
			if got := e.up.LastRequest().Body; string(got) != tt.body {
				t.Errorf("the upstream got a different body (%d bytes, sent %d)", len(got), len(tt.body))
			}
			if len(s.content) != tt.choices || !s.done || len(s.errors) != 0 {
				t.Fatalf("%d choices, done %v, errors %v; want %d", len(s.content), s.done, s.errors, tt.choices)
			}
			for i, c := range s.content {
				if c != "An original answer." || s.finish[i] != "stop" {
					t.Errorf("choice %d: %q, finish %q", i, c, s.finish[i])
				}
			}
		})
	}
}
