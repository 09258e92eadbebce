package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cleanroom/index/indextest"
)

var bin = map[string]string{}

// TestMain builds the proxy and the test upstream; the tests run them as
// processes, signals and all.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxy-test")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"proxy", "upstream"} {
		bin[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bin[name], "cleanroom/cmd/"+name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", name, err, out)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildIndex writes an index of one generated GPL file and returns the file.
func buildIndex(t *testing.T, dir string, seed uint64) string {
	texts, err := indextest.Build(dir, seed, indextest.Repo{Name: "gen", License: "GPL-3.0-only", Files: 1, Funcs: 6})
	if err != nil {
		t.Fatal(err)
	}
	return texts["gen"][0]
}

type proc struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin[name], args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// finishReason streams a chat completion and returns its finish_reason.
func finishReason(t *testing.T, proxyAddr, user string) string {
	t.Helper()
	resp, err := http.Post("http://"+proxyAddr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"`+user+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, fr := range []string{"content_filter", "stop"} {
		if strings.Contains(string(b), `"finish_reason":"`+fr+`"`) {
			return fr
		}
	}
	t.Fatalf("no finish reason in %s", b)
	return ""
}

// TestEnvSighupAndShutdown runs the proxy configured by environment variables:
// SIGHUP loads a rebuilt index, SIGTERM lets the stream in flight finish.
func TestEnvSighupAndShutdown(t *testing.T) {
	dir := t.TempDir()
	ixDir := filepath.Join(dir, "ix")
	buildIndex(t, ixDir, 1)
	other := filepath.Join(dir, "other")
	text := buildIndex(t, other, 2)
	replay := filepath.Join(dir, "replay.c")
	os.WriteFile(replay, []byte(text), 0o644)

	upAddr, pxAddr := freeAddr(t), freeAddr(t)
	start(t, nil, "upstream", "--listen", upAddr, "--quiet", "--markdown", "--replay", replay)
	waitHTTP(t, "http://"+upAddr+"/v1/models")
	px := start(t, []string{"CLEANROOM_INDEX=" + ixDir, "CLEANROOM_UPSTREAM=http://" + upAddr,
		"CLEANROOM_LISTEN=" + pxAddr, "CLEANROOM_POLL=0", "CLEANROOM_AUDIT_LOG=" + filepath.Join(dir, "audit")}, "proxy")
	waitHTTP(t, "http://"+pxAddr+"/readyz")

	if fr := finishReason(t, pxAddr, "x"); fr != "stop" {
		t.Fatalf("code of another index was blocked: %s", fr)
	}
	// Rebuild the served index with the replayed code, then SIGHUP.
	buildIndex(t, ixDir, 2)
	px.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for finishReason(t, pxAddr, "x") != "content_filter" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not load the rebuilt index; stderr:\n%s", px.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A slow stream is in flight when SIGTERM comes: it completes.
	req, _ := http.NewRequest("POST", "http://"+pxAddr+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"#upstream: {\"content\":\"a slow and original answer\"}"}]}`))
	req.Header.Set("X-Upstream-Wire", "pace:50ms")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	r.ReadString('\n') // the stream has begun
	px.cmd.Process.Signal(syscall.SIGTERM)
	rest, err := io.ReadAll(r)
	if err != nil || !strings.Contains(string(rest), "[DONE]") {
		t.Errorf("the stream in flight was cut by the shutdown: %v %q", err, rest)
	}
	done := make(chan error, 1)
	go func() { done <- px.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("proxy exited with %v; stderr:\n%s", err, px.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not exit after SIGTERM")
	}
	if !strings.Contains(px.stderr.String(), `"msg":"index loaded"`) || !strings.Contains(px.stderr.String(), `"msg":"shutting down"`) {
		t.Errorf("logs lack the index load or the shutdown:\n%s", px.stderr)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--index", t.TempDir(), "--upstream", "http://127.0.0.1:1"},
		{"--index", "x", "--upstream", "ftp://host"},
		{"--index", "x", "--upstream", "http://h", "--mode", "maybe"},
	} {
		cmd := exec.Command(bin["proxy"], args...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || len(out) == 0 {
			t.Errorf("proxy %v: %v, output %q; want a message and a non-zero exit", args, err, out)
		}
	}
}

// TestNoLicenseDetector keeps the license detector out of the proxy: its database
// takes half a second and some 60 MB to load at start-up, and the proxy only judges
// licenses the index already names.
func TestNoLicenseDetector(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "go-license-detector") {
		t.Errorf("cmd/proxy links go-license-detector")
	}
}
