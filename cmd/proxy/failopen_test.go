package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFailOpenByEnv starts the proxy with CLEANROOM_FAIL_OPEN and no index: it
// serves, says so in its log and metrics, and checks completions once an index is
// built and SIGHUP loads it.
func TestFailOpenByEnv(t *testing.T) {
	dir := t.TempDir()
	ixDir := filepath.Join(dir, "ix")
	replay := filepath.Join(dir, "replay.c")
	os.WriteFile(replay, []byte(buildIndex(t, filepath.Join(dir, "other"), 3)), 0o644)
	upAddr, pxAddr := freeAddr(t), freeAddr(t)
	start(t, nil, "upstream", "--listen", upAddr, "--quiet", "--markdown", "--replay", replay)
	waitHTTP(t, "http://"+upAddr+"/v1/models")
	px := start(t, []string{"CLEANROOM_INDEX=" + ixDir, "CLEANROOM_UPSTREAM=http://" + upAddr, "CLEANROOM_LISTEN=" + pxAddr,
		"CLEANROOM_POLL=0", "CLEANROOM_FAIL_OPEN=true", "CLEANROOM_AUDIT_LOG=" + filepath.Join(dir, "audit")}, "proxy")
	waitHTTP(t, "http://"+pxAddr+"/readyz")
	if fr := finishReason(t, pxAddr, "x"); fr != "stop" {
		t.Fatalf("fail-open without an index: finish %s, want stop", fr)
	}
	if m := metricsOf(t, pxAddr); !strings.Contains(m, "\ncleanroom_fail_open 1\n") {
		t.Errorf("cleanroom_fail_open is not 1:\n%s", m)
	}
	buildIndex(t, ixDir, 3)
	px.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for finishReason(t, pxAddr, "x") != "content_filter" {
		if time.Now().After(deadline) {
			px.cmd.Process.Kill()
			px.cmd.Wait() // before reading what it wrote
			t.Fatalf("SIGHUP did not load the index; stderr:\n%s", px.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := metricsOf(t, pxAddr); !strings.Contains(m, "\ncleanroom_fail_open 0\n") {
		t.Errorf("cleanroom_fail_open is not 0 once an index loaded")
	}
	px.cmd.Process.Signal(syscall.SIGTERM)
	px.cmd.Wait() // before reading what it wrote
	if !strings.Contains(px.stderr.String(), "UNCHECKED") {
		t.Errorf("the log does not say completions pass unchecked:\n%s", px.stderr)
	}
}

func metricsOf(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
