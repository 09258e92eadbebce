package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"cleanroom/index"
)

// prometheusBin is Debian's Prometheus server.
const prometheusBin = "/usr/bin/prometheus"

// TestPrometheus has a real Prometheus scrape the proxy every second while it serves
// traffic, then checks what the queries a dashboard would make return.
func TestPrometheus(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skipf("no Prometheus server at %s: install Debian's prometheus package (make deps does)", prometheusBin)
	}
	e := newEnv(t)
	p := startPrometheus(t, e.px.Listener.Addr().String())
	p.waitFor(t, `cleanroom_ready`, 1)

	// Clean traffic only: nothing has matched yet, and the match rate says so.
	clean := e.send(t, []call{
		{name: "clean chat stream", stream: true, reply: "int answer(void)\n{\n\treturn 42;\n}\n", outcome: "clean"},
		{name: "clean chat", reply: "Use a hash map keyed by the user id.", outcome: "clean"},
	})
	p.waitFor(t, `sum(cleanroom_requests_total)`, float64(clean.requests))
	t.Run("match rate before the first match", func(t *testing.T) {
		const q = `sum(cleanroom_requests_total{outcome=~"blocked|annotated"}) / sum(cleanroom_requests_total)`
		got, ok := p.query(t, q)
		if !ok || got != 0 {
			t.Errorf("%s = %v (result: %v), want 0 after %d clean requests: cleanroom_requests_total has no "+
				"series for an outcome until its first request, so a dashboard's match rate is empty, not 0", q, got, ok, clean.requests)
		}
	})

	ty := e.send(t, e.calls())
	total := clean.requests + ty.requests
	p.waitFor(t, `sum(cleanroom_requests_total)`, float64(total))
	ix, err := index.Open(e.ixDir, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for _, tt := range []struct {
		query string
		want  float64
	}{
		{`sum(cleanroom_requests_total{outcome="blocked"})`, float64(ty.outcomes["blocked"])},
		{`sum(cleanroom_requests_total{outcome="annotated"})`, float64(ty.outcomes["annotated"])},
		{`sum(cleanroom_requests_total{outcome="clean"})`, float64(ty.outcomes["clean"] + clean.outcomes["clean"])},
		{`sum(cleanroom_requests_total{outcome="bad_request"})`, float64(ty.outcomes["bad_request"])},
		{`sum(cleanroom_requests_total{outcome="upstream_error"})`, float64(ty.outcomes["upstream_error"])},
		{`sum(cleanroom_requests_total{outcome="blocked",stream="true"})`, float64(ty.streamed["blocked"])},
		{`sum(cleanroom_requests_total{outcome=~"blocked|annotated"}) / sum(cleanroom_requests_total)`,
			float64(ty.outcomes["blocked"]+ty.outcomes["annotated"]) / float64(total)},
		{`sum(cleanroom_matches_total{action="block"})`, float64(ty.matches["block"])},
		{`sum(cleanroom_matches_total{action="annotate"})`, float64(ty.matches["annotate"])},
		{`sum(cleanroom_matches_total{action="allow"})`, float64(ty.matches["allow"])},
		{`sum(cleanroom_matches_total{license="GPL-2.0-only"})`, float64(ty.licenses["GPL-2.0-only"])},
		{`sum(cleanroom_matches_total{license="LGPL-2.1-or-later"})`, float64(ty.licenses["LGPL-2.1-or-later"])},
		{`cleanroom_upstream_errors_total{kind="status"}`, 1},
		{`cleanroom_scan_duration_seconds_count`, float64(clean.scanned + ty.scanned)},
		{`cleanroom_index_documents`, float64(ix.NumDocs())},
		{`cleanroom_index_fingerprints`, float64(ix.NumPostings())},
		{`cleanroom_index_shards`, float64(len(ix.Manifest.Shards))},
		{`cleanroom_index_reloads_total{result="success"}`, 1},
		{`cleanroom_ready`, 1},
		{`up{job="cleanroom"}`, 1},
	} {
		got, ok := p.query(t, tt.query)
		if !ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s = %v (result: %v), want %v", tt.query, got, ok, tt.want)
		}
	}
	t.Run("increase sees the first blocks", func(t *testing.T) {
		// Two samples of every blocked series, so that increase() has something to see.
		p.waitUntil(t, `min(count_over_time(cleanroom_requests_total{outcome="blocked"}[1m]))`, func(n float64) bool { return n >= 2 })
		const q = `sum(increase(cleanroom_requests_total{outcome="blocked"}[1m]))`
		if got, ok := p.query(t, q); !ok || got <= 0 {
			t.Errorf("%s = %v (result: %v) after %d blocked requests in the last few seconds, want > 0: "+
				"each blocked series appeared at its first request with the value 1, so Prometheus never saw it rise "+
				"and an alert on it stays silent", q, got, ok, ty.outcomes["blocked"])
		}
	})
	if ty.matches["block"] == 0 || ty.matches["annotate"] == 0 || ix.NumDocs() == 0 {
		t.Errorf("the traffic checked nothing: matches %v, %d documents", ty.matches, ix.NumDocs())
	}
}

// prometheus is a Prometheus server run for one test.
type prometheus struct {
	api string // base URL of its HTTP API
	log string // file of its output
}

// startPrometheus starts a Prometheus that scrapes target every second, and
// evaluates the rule files given every second, with its storage in a temporary
// directory, and waits until it is ready. It is killed when the test ends, and if
// the test binary dies first, by the kernel (Pdeathsig).
func startPrometheus(t *testing.T, target string, ruleFiles ...string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"+
		"scrape_configs:\n  - job_name: cleanroom\n    static_configs:\n      - targets: [%q]\n", target)
	if len(ruleFiles) > 0 {
		config += "rule_files:\n"
		for _, f := range ruleFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			config += fmt.Sprintf("  - %q\n", abs)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := &prometheus{api: "http://" + addr, log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(prometheusBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(p.log)
			t.Logf("Prometheus' log:\n%s", out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.api+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("Prometheus exited before it was ready: %v", cmd.ProcessState)
		case <-ctx.Done():
			t.Fatalf("Prometheus was not ready at %s after 20s", p.api)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// query evaluates an instant query whose result is one sample, and returns its
// value; ok is false when the result is empty.
func (p *prometheus) query(t *testing.T, q string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get(p.api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || r.Data.ResultType != "vector" {
		t.Fatalf("query %s: %s %v %s", q, r.Status, err, r.Error)
	}
	switch len(r.Data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("query %s: %d series, want 1: %v", q, len(r.Data.Result), r.Data.Result)
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", q, s, err)
	}
	return v, true
}

// waitFor polls query q until it returns want: until Prometheus has scraped what was
// sent.
func (p *prometheus) waitFor(t *testing.T, q string, want float64) {
	t.Helper()
	p.waitUntil(t, q, func(v float64) bool { return v == want })
}

// waitUntil polls query q until its value satisfies ok, for at most 15 seconds.
func (p *prometheus) waitUntil(t *testing.T, q string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, found := p.query(t, q)
		if found && ok(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (result: %v) after 15s, still not what the test waits for", q, got, found)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
