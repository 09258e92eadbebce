package upstream

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoutesAndErrors(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		status  int
		errType string // "" for a success
		param   string
		code    string
	}{
		{"models", "GET", "/v1/models", "", 200, "", "", ""},
		{"one model", "GET", "/v1/models/gpt-4o-mini", "", 200, "", "", ""},
		{"unknown model", "GET", "/v1/models/nope", "", 404, "invalid_request_error", "", ""},
		{"unknown path", "POST", "/v1/embeddings", `{}`, 404, "invalid_request_error", "", ""},
		{"wrong method", "GET", ChatPath, "", 404, "invalid_request_error", "", ""},
		{"no v1", "POST", "/chat/completions", `{}`, 404, "invalid_request_error", "", ""},
		{"bad JSON", "POST", ChatPath, `{"model":`, 400, "invalid_request_error", "", ""},
		{"not an object", "POST", ChatPath, `[1,2]`, 400, "invalid_request_error", "", ""},
		{"trailing JSON", "POST", ChatPath, `{"model":"m","messages":[]} {}`, 400, "invalid_request_error", "", ""},
		{"no model", "POST", ChatPath, `{"messages":[]}`, 400, "invalid_request_error", "model", ""},
		{"model a number", "POST", ChatPath, `{"model":4,"messages":[]}`, 400, "invalid_request_error", "model", "invalid_type"},
		{"no messages", "POST", ChatPath, `{"model":"m"}`, 400, "invalid_request_error", "messages", ""},
		{"messages a string", "POST", ChatPath, `{"model":"m","messages":"hi"}`, 400, "invalid_request_error", "messages", "invalid_type"},
		{"message without role", "POST", ChatPath, `{"model":"m","messages":[{"content":"hi"}]}`, 400, "invalid_request_error", "messages[0].role", ""},
		{"content a number", "POST", ChatPath, `{"model":"m","messages":[{"role":"user","content":3}]}`, 400, "invalid_request_error", "messages[0].content", "invalid_type"},
		{"n a string", "POST", ChatPath, `{"model":"m","messages":[],"n":"2"}`, 400, "invalid_request_error", "n", "invalid_type"},
		{"n fractional", "POST", ChatPath, `{"model":"m","messages":[],"n":1.5}`, 400, "invalid_request_error", "n", "invalid_type"},
		{"n zero", "POST", ChatPath, `{"model":"m","messages":[],"n":0}`, 400, "invalid_request_error", "n", "integer_out_of_range"},
		{"stream a string", "POST", ChatPath, `{"model":"m","messages":[],"stream":"yes"}`, 400, "invalid_request_error", "stream", "invalid_type"},
		{"include_usage a number", "POST", ChatPath, `{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":1}}`, 400, "invalid_request_error", "stream_options.include_usage", "invalid_type"},
		{"tools an object", "POST", ChatPath, `{"model":"m","messages":[],"tools":{}}`, 400, "invalid_request_error", "tools", "invalid_type"},
		{"no prompt", "POST", LegacyPath, `{"model":"m"}`, 400, "invalid_request_error", "prompt", ""},
		{"prompt of tokens", "POST", LegacyPath, `{"model":"m","prompt":[[1,2]]}`, 400, "invalid_request_error", "prompt[0]", "invalid_type"},
		{"bad fault header", "POST", ChatPath, `{"model":"m","messages":[]}`, 400, "invalid_request_error", "", ""},
		{"bad directive", "POST", ChatPath, `{"model":"m","messages":[{"role":"user","content":"#upstream: [{\"contents\":1}]"}]}`, 400, "invalid_request_error", "messages", ""},
		{"chat ok", "POST", ChatPath, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`, 200, "", "", ""},
		{"legacy array prompt", "POST", LegacyPath, `{"model":"m","prompt":["a","b"]}`, 200, "", "", ""},
	}
	ts := httptest.NewServer(New())
	defer ts.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			if tt.name == "bad fault header" {
				req.Header.Set(FaultHeader, "explode")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp.Body)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q %s; want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.status)
			}
			if tt.errType == "" {
				if !json.Valid(body) || strings.Contains(string(body), `"error"`) {
					t.Errorf("body %s, want a JSON answer", body)
				}
				return
			}
			checkErrorBody(t, body, tt.errType, tt.code)
			var v struct{ Error struct{ Param *string } }
			json.Unmarshal(body, &v)
			if got := v.Error.Param; tt.param == "" && got != nil || tt.param != "" && (got == nil || *got != tt.param) {
				t.Errorf("param = %v, want %q", got, tt.param)
			}
		})
	}
}

func TestModelsList(t *testing.T) {
	rec := httptest.NewRecorder()
	New().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/models", nil))
	var v struct {
		Object string
		Data   []struct{ ID, Object, OwnedBy string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Object != "list" || len(v.Data) < 2 || v.Data[0].Object != "model" {
		t.Errorf("models = %s (%v), want a list of model objects", rec.Body, err)
	}
}

func TestLastRequestAndAPIKey(t *testing.T) {
	s := New()
	s.APIKey = "sk-right"
	ts := httptest.NewServer(s)
	defer ts.Close()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct {
		auth   string
		status int
	}{{"Bearer sk-right", 200}, {"Bearer sk-wrong", 401}, {"", 401}} {
		req, _ := http.NewRequest("POST", ts.URL+ChatPath+"?api-version=1", strings.NewReader(body))
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		req.Header.Set("OpenAI-Organization", "org-x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("auth %q: status %d, want %d", tt.auth, resp.StatusCode, tt.status)
		}
		if tt.status == 401 {
			checkErrorBody(t, b, "invalid_request_error", "invalid_api_key")
		}
		last := s.LastRequest()
		if last.Method != "POST" || last.Path != ChatPath+"?api-version=1" || string(last.Body) != body ||
			last.Header.Get("Authorization") != tt.auth || last.Header.Get("Openai-Organization") != "org-x" {
			t.Errorf("last request = %s %s %q %v; want what was sent", last.Method, last.Path, last.Body, last.Header)
		}
	}
	if got := s.Stats().Requests; got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func TestScriptErrors(t *testing.T) {
	tests := []struct {
		name    string
		script  Script
		status  int
		errType string
	}{
		{"wrong count", FixedScript(), 500, "server_error"},
		{"plain error", func(*Request) ([]Reply, error) { return nil, errors.New("boom") }, 500, "server_error"},
		{"API error", func(*Request) ([]Reply, error) {
			return nil, &Error{Status: 400, Type: "invalid_request_error", Code: "context_length_exceeded", Message: "too long"}
		}, 400, "invalid_request_error"},
		{"short", func(r *Request) ([]Reply, error) { return []Reply{{}}, nil }, 500, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.Script = tt.script
			rec := serve(s, ChatPath, chatBody(2, true, false, "x"), nil)
			if rec.status != tt.status {
				t.Fatalf("status %d, want %d", rec.status, tt.status)
			}
			var v struct{ Error struct{ Type string } }
			if err := json.Unmarshal(rec.body(), &v); err != nil || v.Error.Type != tt.errType {
				t.Errorf("error type %q (%v), want %q", v.Error.Type, err, tt.errType)
			}
		})
	}
}

func TestAdmin(t *testing.T) {
	s := New()
	s.Admin = true
	ts := httptest.NewServer(s)
	defer ts.Close()
	post(t, ts.URL+ChatPath, chatBody(1, true, false, "hi"), map[string]string{"X-Test": "yes"})
	get := func(path string) map[string]any {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if st := get("/_upstream/stats"); st["requests"] != 1.0 || st["streams"] != 1.0 {
		t.Errorf("stats %v, want 1 request, 1 stream", st)
	}
	last := get("/_upstream/last")
	if h, _ := last["header"].(map[string]any); last["path"] != ChatPath || h["X-Test"] == nil || !strings.Contains(last["body"].(string), `"hi"`) {
		t.Errorf("last %v, want the chat request", last)
	}
	if got := s.Stats().Requests; got != 1 {
		t.Errorf("admin requests counted: requests = %d, want 1", got)
	}
	s.Admin = false
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/_upstream/stats", nil))
	if rec.Code != 404 {
		t.Errorf("admin off: status %d, want 404", rec.Code)
	}
}
