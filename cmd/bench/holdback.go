package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/proxy"
)

// holdback measures, in block mode on clean text, how many tokens the client
// trails the model by: the upstream sends one token per event at a steady pace,
// and just before each event the tokens it has sent are compared with the tokens
// the client has received. With the index's k-gram filter, and without it.
func holdback(c *config, r *report) error {
	src, err := goSource("net/http/server.go")
	if err != nil {
		return err
	}
	content, err := excerpt(fingerprint.Go, src, 8000, 600)
	if err != nil {
		return err
	}
	noFilter, err := withoutKGrams(c)
	if err != nil {
		return err
	}
	k, t := c.ix.Params().K, c.ix.Params().Threshold()
	s := r.section("Block-mode holdback on clean text", fmt.Sprintf(
		"cleanroom in block mode on the kernel index, in front of an upstream that streams a %d-token markdown answer of clean code "+
			"(Go's net/http/server.go) one token per event, every %s. Just before each event the tokens the model has sent are "+
			"compared with the tokens the client has received whole; the lag is the difference (markdown tokenization, as the proxy's). "+
			"Without the k-gram filter the proxy must hold back the last t-1 = %d tokens; with it (the index's `kgrams-*.crs`, on by "+
			"default) only those after the newest k-gram the corpus certainly lacks, about k = %d. A filter false positive or a k-gram "+
			"that clean code does share with the kernel lengthens the lag for a while.",
		len(fingerprint.Tokenize(fingerprint.Markdown, []byte(content))), c.pace, t-1, k))
	for _, x := range []struct {
		name, dir string
		target    bool
	}{{"with the k-gram filter (default)", c.index, true}, {"without it (`--kgram-bits 0`)", noFilter, false}} {
		lags, err := measureLag(c, x.dir, content)
		if err != nil {
			return err
		}
		p50, p99, mx := percentile(lags, 50), percentile(lags, 99), slices.Max(lags)
		target := ""
		if x.target {
			target = fmt.Sprintf("<= k = %d tokens", k)
		}
		s.row("tokens the client trails the model by, "+x.name, fmt.Sprintf("median %.0f, p99 %.0f, max %.0f", p50, p99, mx),
			fmt.Sprintf("t-1 = %d", t-1), target, p50 <= float64(k), over(p50, float64(k)))
	}
	return nil
}

// withoutKGrams makes a copy of the index without its k-gram filter: the same
// shard files, linked, and a manifest that names no filter.
func withoutKGrams(c *config) (string, error) {
	m, err := index.ReadManifest(c.index)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(c.out, "kernel-nofilter")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(c.index)
	for _, sh := range m.Shards {
		if err := os.Symlink(filepath.Join(abs, sh.File), filepath.Join(dir, sh.File)); err != nil {
			return "", err
		}
	}
	m.KGrams = nil
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, index.ManifestName), b, 0o644)
}

// measureLag streams content through cleanroom in block mode on the index in dir,
// one token per event, and returns the lag in tokens before each event.
func measureLag(c *config, dir, content string, tweak ...func(*proxy.Options)) ([]float64, error) {
	toks := fingerprint.Tokenize(fingerprint.Markdown, []byte(content))
	// Event i carries the text up to the end of token i.
	var ends []int
	for _, t := range toks {
		ends = append(ends, int(t.End))
	}
	ends[len(ends)-1] = len(content)
	var mu sync.Mutex
	var sentAt []time.Time // when event i went out
	var got []struct {
		at time.Time
		n  int // content bytes received
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(delta, finish string) {
			fmt.Fprintf(w, `data: {"id":"chatcmpl-lag","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`+"\n\n", delta, finish)
			w.(http.Flusher).Flush()
		}
		ev(`{"role":"assistant","content":""}`, "null")
		prev := 0
		tick := time.NewTicker(c.pace)
		defer tick.Stop()
		for _, e := range ends {
			<-tick.C
			b, _ := json.Marshal(map[string]string{"content": content[prev:e]})
			mu.Lock()
			sentAt = append(sentAt, time.Now())
			mu.Unlock()
			ev(string(b), "null")
			prev = e
		}
		<-tick.C
		ev(`{}`, `"stop"`)
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer up.Close()
	opts := proxy.Options{Index: dir, Upstream: up.URL, Mode: "block", AuditLog: os.DevNull}
	for _, f := range tweak {
		f(&opts)
	}
	srv, err := proxy.New(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	px := httptest.NewServer(srv.Handler())
	defer px.Close()
	resp, err := http.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(string(chatRequest)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		b.WriteString(contentOf([]byte(sc.Text() + "\n")))
		now := time.Now()
		mu.Lock()
		got = append(got, struct {
			at time.Time
			n  int
		}{now, b.Len()})
		mu.Unlock()
	}
	if b.String() != content {
		return nil, fmt.Errorf("block mode on clean text delivered %d bytes of %d", b.Len(), len(content))
	}
	// Before event i+1 goes out, the model has sent tokens 0..i.
	var lags []float64
	j, have := 0, 0
	for i := 0; i+1 < len(sentAt); i++ {
		for j < len(got) && got[j].at.Before(sentAt[i+1]) {
			have = got[j].n
			j++
		}
		whole, _ := slices.BinarySearch(ends, have+1) // tokens whose text the client has in full
		lags = append(lags, float64(i+1-whole))
	}
	return lags, nil
}
