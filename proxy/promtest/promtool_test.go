package promtest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestPromtoolCheckMetrics lints the proxy's /metrics, after a bit of every kind of
// traffic, with promtool: names, units, help texts, types, histogram buckets.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install Debian's prometheus package (make deps does)")
	}
	e := newEnv(t)
	e.send(t, e.calls())
	exposition := e.metrics(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// Every label value the traffic produced is there to lint.
	for _, s := range []string{`outcome="blocked"`, `outcome="annotated"`, `outcome="clean"`, `outcome="bad_request"`,
		`outcome="upstream_error"`, `action="block"`, `action="annotate"`, `action="allow"`, `endpoint="completions"`,
		`stream="false"`, `kind="status"`, `cleanroom_scan_duration_seconds_bucket`, `cleanroom_holdback_duration_seconds_bucket`} {
		if !bytes.Contains(exposition, []byte(s)) {
			t.Errorf("/metrics has no %s after traffic that produces it", s)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepCleanroom(exposition))
	}
}

// grepCleanroom returns the lines of an exposition about cleanroom's own metrics.
func grepCleanroom(exposition []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(exposition), "\n") {
		if strings.Contains(l, "cleanroom_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
