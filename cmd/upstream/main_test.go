package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cleanroom/proxy/upstream"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lib.el.gz")
	f, _ := os.Create(path)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(";;; lib.el\n(defun lib-x ()\n  42)\n(provide 'lib)\n"))
	zw.Close()
	f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	errs := make(chan error, 1)
	opt := upstream.Options{Replay: []string{path + ":2-3"}, Markdown: true, Admin: true}
	go func() {
		errs <- run(ctx, "127.0.0.1:0", opt, true, slog.New(slog.DiscardHandler), func(a string) { addrs <- a })
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not listening")
	}

	body := `{"model":"m","messages":[{"role":"user","content":"write lib"}]}`
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Choices []struct{ Message struct{ Content string } }
	}
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	want := upstream.Markdown("elisp", "(defun lib-x ()\n  42)\n")
	if len(v.Choices) != 1 || v.Choices[0].Message.Content != want {
		t.Errorf("answer %+v, want content %q", v, want)
	}
	for _, c := range []struct{ path, body, field string }{
		{upstream.MessagesPath, `{"model":"m","max_tokens":99,"messages":[{"role":"user","content":"write lib"}]}`, `"text":`},
		{upstream.ResponsesPath, `{"model":"m","input":"write lib"}`, `"logprobs":[],"text":`},
		{upstream.OllamaChatPath, `{"model":"m","stream":false,"messages":[{"role":"user","content":"write lib"}]}`, `"content":`},
	} {
		resp, err := http.Post("http://"+addr+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		quoted, _ := json.Marshal(want)
		if resp.StatusCode != 200 || !strings.Contains(string(b), c.field+string(quoted)) {
			t.Errorf("%s: %d %s, want %s%s", c.path, resp.StatusCode, b, c.field, quoted)
		}
	}
	resp, err = http.Get("http://" + addr + "/_upstream/stats")
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(stats), `"requests":4`) {
		t.Errorf("stats %s, want 4 requests", stats)
	}

	cancel()
	select {
	case err := <-errs:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("run did not return after cancel")
	}
}
