package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

// leakResult is what went through the proxy in block mode.
type leakResult struct {
	streams int
	blocked int
	// longest is the longest run, in tokens, that a client received of indexed code
	// and that the proxy's rules count as a match (what zero leak is about);
	// longestRaw counts every run, boilerplate the rules ignore too.
	longest, longestRaw int
	threshold           int
}

// evalLeak streams markdown answers that quote passages (the longer ones) through
// the proxy in block mode, from the test upstream with its uneven chunks, and
// measures what the client received.
func evalLeak(c *config, ix *index.Index, ps []*passage) (leakResult, error) {
	r := leakResult{threshold: ix.Params().Threshold()}
	var use []*passage
	for _, p := range ps {
		if p.n >= 2*r.threshold && len(use) < c.leak {
			use = append(use, p)
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	up := upstream.New()
	up.Log = quiet
	up.Script = func(req *upstream.Request) ([]upstream.Reply, error) {
		i, err := strconv.Atoi(strings.TrimPrefix(req.LastUser(), "passage "))
		if err != nil || i < 0 || i >= len(use) {
			return nil, fmt.Errorf("no passage %q", req.LastUser())
		}
		return []upstream.Reply{{Content: inMarkdown(use[i], nil)}}, nil
	}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	defer up.Close()
	srv, err := proxy.New(proxy.Options{Index: filepath.Join(c.out, "index"), Upstream: upSrv.URL, AuditLog: filepath.Join(c.out, "audit.jsonl")}, quiet)
	if err != nil {
		return r, err
	}
	defer srv.Close()
	px := httptest.NewServer(srv.Handler())
	defer px.Close()
	for i := range use {
		body, _ := json.Marshal(map[string]any{"model": "eval", "stream": true,
			"messages": []any{map[string]any{"role": "user", "content": fmt.Sprintf("passage %d", i)}}})
		resp, err := http.Post(px.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			return r, err
		}
		content, finish, err := readContent(resp.Body)
		resp.Body.Close()
		if err != nil {
			return r, err
		}
		r.streams++
		if finish == "content_filter" {
			r.blocked++
		}
		r.longest = max(r.longest, longestRun(ix, content, index.MatchOptions{}))
		r.longestRaw = max(r.longestRaw, longestRun(ix, content, index.MatchOptions{NoAllow: true, MaxPostings: -1, MinEvidence: -1}))
	}
	return r, nil
}

// readContent reassembles the content of choice 0 of a streamed completion.
func readContent(r io.Reader) (content, finish string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<24)
	var b strings.Builder
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return "", "", fmt.Errorf("bad chunk %q: %v", data, err)
		}
		for _, ch := range chunk.Choices {
			b.WriteString(ch.Delta.Content)
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
	return b.String(), finish, sc.Err()
}

// longestRun returns the longest run of indexed code in text that a matcher with
// opts sees, in tokens.
func longestRun(ix *index.Index, text string, opts index.MatchOptions) int {
	opts.MinTokens = 1
	m := ix.NewMatcher(opts)
	m.Feed(ix.Fingerprint(fingerprint.Markdown, []byte(text), false))
	n := 0
	for _, run := range m.Runs(1) {
		n = max(n, run.End-run.Start)
	}
	return n
}
