package proxy

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cleanroom/index"
	"cleanroom/proxy/upstream"
)

// TestFailOpen starts the proxy with --fail-open and no index: it serves,
// completions pass unchecked and are counted so, the gauge says so and the model
// gate still applies. Once an index is built and loaded, completions are checked
// again and the gauge drops.
func TestFailOpen(t *testing.T) {
	dir := t.TempDir()
	ixDir := filepath.Join(dir, "ix")
	up := upstream.New()
	upSrv := httptest.NewServer(up)
	defer func() { up.Close(); upSrv.Close() }()
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(modelPolicy), 0o644)
	opts := Options{Index: ixDir, Upstream: upSrv.URL, PolicyFile: policy, AuditLog: filepath.Join(dir, "audit"), FailOpen: true}
	s, err := New(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New with --fail-open and no index: %v", err)
	}
	defer s.Close()
	px := httptest.NewServer(s.Handler())
	defer px.Close()
	if got := testutil.ToFloat64(s.metrics.failOpen); got != 1 {
		t.Errorf("cleanroom_fail_open = %v with no index, want 1", got)
	}
	if resp, _ := http.Get(px.URL + "/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz answered %d in fail-open mode, want 200: the proxy serves", resp.StatusCode)
	}

	// Code that will be indexed passes unchecked for now.
	gpl, _, _ := buildTestIndex(t, t.TempDir(), 5)
	up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(excerpt(gpl[0], 3, 40))})
	if st := readStream(t, post(t, px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); st.finish[0] != "stop" {
		t.Errorf("fail-open without an index: finish %q, want stop", st.finish[0])
	}
	if got := testutil.ToFloat64(s.metrics.requests.WithLabelValues(endpointChat, "true", "unchecked")); got != 1 {
		t.Errorf("unchecked streamed chat requests: %v, want 1", got)
	}
	b := chatBody(false, 1, "x")
	b["model"] = "gpt-4o-mini"
	if resp := post(t, px.URL+"/v1/chat/completions", b); resp.StatusCode != http.StatusForbidden {
		t.Errorf("fail-open let a non-commercial model through: %d", resp.StatusCode)
	}
	if resp, _ := http.Get(px.URL + IndexPath); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s with no index: %d, want 503", IndexPath, resp.StatusCode)
	}

	buildTestIndex(t, ixDir, 5)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.metrics.failOpen); got != 0 {
		t.Errorf("cleanroom_fail_open = %v with an index loaded, want 0", got)
	}
	if st := readStream(t, post(t, px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); st.finish[0] != "content_filter" {
		t.Errorf("once the index loaded: finish %q, want content_filter", st.finish[0])
	}
}

func TestFailClosedByDefault(t *testing.T) {
	s, err := New(Options{Index: t.TempDir(), Upstream: "http://127.0.0.1:1"}, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Close()
		t.Fatal("the proxy started without an index and without --fail-open")
	}
}

func TestFailOpenFlagAndEnv(t *testing.T) {
	for _, tt := range []struct {
		env  string
		args []string
		want bool
	}{
		{"", nil, false},
		{"true", nil, true},
		{"1", nil, true},
		{"", []string{"--fail-open"}, true},
		{"true", []string{"--fail-open=false"}, false},
	} {
		if tt.env != "" {
			t.Setenv("CLEANROOM_FAIL_OPEN", tt.env)
		} else {
			os.Unsetenv("CLEANROOM_FAIL_OPEN")
		}
		var o Options
		fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
		o.Flags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if o.FailOpen != tt.want {
			t.Errorf("CLEANROOM_FAIL_OPEN=%q %v: FailOpen %v, want %v", tt.env, tt.args, o.FailOpen, tt.want)
		}
	}
}

// TestIndexEndpoint reads /v1/cleanroom/index: what the served index holds, read
// only, answered by the proxy and never forwarded.
func TestIndexEndpoint(t *testing.T) {
	e := newEnv(t, "block", "match:\n  min_tokens: 40\n")
	resp, err := http.Get(e.px.URL + IndexPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var info IndexInfo
	if err := json.Unmarshal(raw, &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", IndexPath, resp.StatusCode, err, raw)
	}
	m := e.ix.Manifest
	p := info.Parameters
	if info.Build != m.Build || !info.Created.Equal(m.Created) || info.Totals != m.Totals || info.Shards != len(m.Shards) ||
		info.Repos != 3 || info.Licenses["GPL-2.0-only"] != 10 || info.Licenses["LGPL-2.1-or-later"] != 3 ||
		p.K != m.K || p.W != m.W || p.Threshold != m.K+m.W-1 || p.MinTokens != 40 || p.Tokenizer != m.Tokenizer {
		t.Errorf("GET %s = %s\nmanifest: build %s created %v totals %+v", IndexPath, raw, m.Build, m.Created, m.Totals)
	}
	if age := time.Since(m.Created).Seconds(); float64(info.AgeSeconds) > age+1 || info.AgeSeconds < 0 || info.LoadedAt.IsZero() {
		t.Errorf("age %ds, loaded at %v; the index was built %.0fs ago", info.AgeSeconds, info.LoadedAt, age)
	}
	if !strings.Contains(string(raw), `"sources": [`) || strings.Contains(string(raw), `"path"`) {
		t.Errorf("want a sources list, without the build machine's paths: %s", raw)
	}
	before := e.up.Stats().Requests
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"POST", IndexPath, http.StatusMethodNotAllowed},
		{"DELETE", IndexPath, http.StatusMethodNotAllowed},
		{"GET", "/v1/cleanroom/other", http.StatusNotFound},
		{"HEAD", IndexPath, http.StatusOK},
	} {
		req, _ := http.NewRequest(tt.method, e.px.URL+tt.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
	}
	if e.up.Stats().Requests != before {
		t.Errorf("a request under /v1/cleanroom/ reached the upstream")
	}
}

func TestNewIndexInfoAge(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &index.Manifest{K: 16, W: 19, Build: "b", Created: created,
		Sources: []index.SourceInfo{{Name: "linux", Path: "/srv/corpora/linux.tar.xz", Kind: "tar", Version: "6.1.192-3", Files: 9, Indexed: 7}}}
	info := NewIndexInfo(m, created.Add(time.Hour), created.Add(36*time.Hour))
	b, _ := json.Marshal(info)
	if info.AgeSeconds != 36*3600 || info.Parameters.Threshold != 34 || len(info.Sources) != 1 || info.Sources[0].Version != "6.1.192-3" ||
		info.Sources[0].Indexed != 7 || strings.Contains(string(b), "/srv/") {
		t.Errorf("NewIndexInfo = %s", b)
	}
}
