package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"cleanroom/proxy/testcert"
	"cleanroom/proxy/upstream"
)

// TestAdminListener: with AdminListen set, metrics and the reload live on the admin
// handler only; the public one answers /metrics itself with a 404 and has no
// reload. Without it, there is no reload over HTTP at all.
func TestAdminListener(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) { o.AdminListen = "127.0.0.1:0" })
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	resp, _ := http.Get(e.px.URL + "/metrics")
	if ae := readAPIError(t, resp); resp.StatusCode != 404 || ae.Error.Code == nil || *ae.Error.Code != "not_found" {
		t.Errorf("public /metrics: %d %+v", resp.StatusCode, ae.Error)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(admin.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("admin %s: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	reloads := func(result string) float64 {
		return testutil.ToFloat64(e.srv.metrics.reloads.WithLabelValues(result))
	}
	before := reloads("success")
	// The public listener has no reload: the path is the upstream's business.
	resp, _ = http.Post(e.px.URL+"/admin/reload", "", nil)
	resp.Body.Close()
	if reloads("success") != before {
		t.Errorf("POST /admin/reload on the public listener reloaded the index")
	}
	resp, _ = http.Post(admin.URL+"/admin/reload", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 || reloads("success") != before+1 {
		t.Errorf("admin reload: %d, reloads %v -> %v", resp.StatusCode, before, reloads("success"))
	}
	if resp, _ := http.Get(admin.URL + "/admin/reload"); resp.StatusCode/100 != 4 || reloads("success") != before+1 {
		t.Errorf("GET /admin/reload: %d, want 4xx and no reload", resp.StatusCode)
	}
	// A reload that fails says so, and keeps the index.
	shard := firstShard(t, filepath.Join(e.dir, "ix"))
	good, _ := os.ReadFile(shard)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x10
	os.WriteFile(shard, bad, 0o644)
	resp, _ = http.Post(admin.URL+"/admin/reload", "", nil)
	if ae := readAPIError(t, resp); resp.StatusCode != 500 || !strings.Contains(ae.Error.Message, "corrupt") || reloads("failure") != 1 {
		t.Errorf("failed admin reload: %d %+v, failures %v", resp.StatusCode, ae.Error, reloads("failure"))
	}
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(excerpt(e.gpl[2], 3, 40))})
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); s.finish[0] != "content_filter" {
		t.Errorf("after a failed reload the old index no longer blocks: %q", s.finish[0])
	}

	// Without an admin listener: metrics on the public one, no HTTP reload.
	e2 := newEnv(t, "block", "")
	if e2.srv.AdminHandler() != nil {
		t.Errorf("an admin handler without AdminListen")
	}
	resp, _ = http.Get(e2.px.URL + "/metrics")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("public /metrics without an admin listener: %d", resp.StatusCode)
	}
	n := testutil.ToFloat64(e2.srv.metrics.reloads.WithLabelValues("success"))
	resp, _ = http.Post(e2.px.URL+"/admin/reload", "", nil)
	resp.Body.Close()
	if got := testutil.ToFloat64(e2.srv.metrics.reloads.WithLabelValues("success")); got != n {
		t.Errorf("POST /admin/reload reloaded without an admin listener")
	}
}

// TestNoSecretsInLogs runs requests of every kind (blocked, clean, whole, bad,
// upstream errors, a stall, a refused model) and greps the log and the audit log
// for the API key, the prompt and the output: none is there.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, "block", modelPolicy)
	var logs lockedBuffer
	opts := e.srv.opts
	opts.StreamIdle = 200 * time.Millisecond
	s, err := New(opts, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	px := httptest.NewServer(s.Handler())
	defer px.Close()

	const key = "sk-SECRET-KEY-4f9a2c"
	const prompt = "PROMPT-MARKER-77d1 please write the walker"
	const outMarker = "OUTPUT-MARKER-31be"
	copied := excerpt(e.gpl[3], 5, 60)
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: outMarker + " " + markdownAnswer(copied)})
	send := func(body any, fault string) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if fault != "" {
			req.Header.Set(upstream.FaultHeader, fault)
		}
		resp, err := faultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	chat := func(stream bool, model string) map[string]any {
		b := chatBody(stream, 1, prompt)
		b["model"] = model
		return b
	}
	send(chat(true, "open-model"), "")
	send(chat(false, "open-model"), "")
	send(chat(true, "open-model"), "status:500")
	send(chat(true, "open-model"), "drop:3")
	send(chat(true, "open-model"), "stall:3")
	send(chat(true, "research-13b"), "") // refused by the model gate
	send(map[string]any{"model": "open-model", "n": prompt, "messages": []any{}}, "")
	send(map[string]any{"model": "open-model", "messages": prompt}, "")
	time.Sleep(100 * time.Millisecond) // the last log lines of the streams
	audit, _ := os.ReadFile(e.audit)
	if !bytes.Contains(audit, []byte(`"action":"block"`)) {
		t.Fatalf("no match was audited: the test checks nothing: %s", audit)
	}
	if !strings.Contains(logs.String(), `"outcome":"blocked"`) || !strings.Contains(logs.String(), "upstream") {
		t.Fatalf("the log does not hold the requests: %s", logs.String())
	}
	secrets := []string{key, "SECRET-KEY", "PROMPT-MARKER", "walker", outMarker}
	// Lines of the output, too.
	for _, l := range strings.Split(copied, "\n") {
		if l = strings.TrimSpace(l); len(l) > 20 {
			secrets = append(secrets, l)
		}
	}
	for name, text := range map[string]string{"log": logs.String(), "audit log": string(audit)} {
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("the %s holds %q", name, sec)
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the log handler's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoPerRequestOverride: the proxy has no per-request policy override, so no
// header or body field a client sends switches the filter off or changes its mode.
func TestNoPerRequestOverride(t *testing.T) {
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: markdownAnswer(excerpt(e.gpl[4], 3, 50))})
	headers := map[string]string{
		"X-Cleanroom-Mode": "off", "X-Cleanroom-Policy": "allow", "X-Cleanroom-Bypass": "true",
		"X-Cleanroom-Filter": "false", "X-Cleanroom-Tenant": "admin", "X-Cleanroom-Action": "annotate",
	}
	body := chatBody(true, 1, "x")
	body["cleanroom"] = map[string]any{"mode": "off", "filter": false, "policy": map[string]any{"actions": map[string]string{"GPL-*": "allow"}}}
	body["x_cleanroom_bypass"] = true
	body["content_filter"] = false
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.px.URL+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := readStream(t, resp)
	if s.finish[0] != "content_filter" || e.longestRun(s.content[0]) >= e.ix.Params().Threshold() {
		t.Errorf("a client's override switched the filter off: finish %q", s.finish[0])
	}
}

// TestUpstreamTLS: an https upstream's certificate is verified by default; a CA
// given with UpstreamCA is trusted; UpstreamInsecure turns verification off.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	certs, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "block", "")
	e.up.Script = upstream.FixedScript(upstream.Reply{Content: "An original answer."})
	tlsUp := httptest.NewUnstartedServer(e.up)
	if tlsUp.TLS, err = certs.ServerConfig(); err != nil {
		t.Fatal(err)
	}
	tlsUp.StartTLS()
	defer tlsUp.Close()
	other, err := testcert.Write(t.TempDir()) // a CA that did not sign the upstream's certificate
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		tweak  func(*Options)
		status int
	}{
		{"system roots", func(*Options) {}, 502},
		{"another CA", func(o *Options) { o.UpstreamCA = other.CA }, 502},
		{"its CA", func(o *Options) { o.UpstreamCA = certs.CA }, 200},
		{"insecure", func(o *Options) { o.UpstreamInsecure = true }, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := e.srv.opts
			opts.Upstream = tlsUp.URL
			opts.UpstreamCA, opts.UpstreamInsecure = "", false
			tt.tweak(&opts)
			s, err := New(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			px := httptest.NewServer(s.Handler())
			defer px.Close()
			resp := post(t, px.URL+"/v1/chat/completions", chatBody(false, 1, "x"))
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 502 && !strings.Contains(string(body), "certificate") {
				t.Errorf("the error does not say why: %s", body)
			}
		})
	}
	opts := e.srv.opts
	opts.UpstreamCA = filepath.Join(dir, "missing.pem")
	if _, err := New(opts, nil); err == nil || !strings.Contains(err.Error(), "--upstream-ca") {
		t.Errorf("a missing --upstream-ca: %v", err)
	}
	os.WriteFile(opts.UpstreamCA, []byte("not PEM"), 0o644)
	if _, err := New(opts, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a --upstream-ca without certificates: %v", err)
	}
}

// TestSlowBody: a client that sends a completion's body slower than BodyTimeout is
// answered 408 and cut off, and the proxy goes on serving.
func TestSlowBody(t *testing.T) {
	e := newEnv(t, "block", "", func(o *Options) { o.BodyTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", e.px.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":\"m\",")
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	ae := readAPIError(t, resp)
	if resp.StatusCode != 408 || ae.Error.Code == nil || *ae.Error.Code != "request_timeout" {
		t.Errorf("slow body: %d %+v", resp.StatusCode, ae.Error)
	}
	// Then the connection is closed.
	if _, err := conn.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("the connection stayed open %v after a slow body (%v)", time.Since(start), err)
	}
	if n := e.up.Stats().Requests; n != 0 {
		t.Errorf("the slow request reached the upstream")
	}
	if s := readStream(t, post(t, e.px.URL+"/v1/chat/completions", chatBody(true, 1, "x"))); !s.done {
		t.Errorf("the proxy stopped serving")
	}
}

// firstShard returns the path of the first shard of the index in dir.
func firstShard(t *testing.T, dir string) string {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Shards []struct {
			File string `json:"file"`
		} `json:"shards"`
	}
	if err := json.Unmarshal(m, &man); err != nil || len(man.Shards) == 0 {
		t.Fatalf("manifest: %v", err)
	}
	return filepath.Join(dir, man.Shards[0].File)
}
