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
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

// leakResult is what went through the proxy in block mode, in one API.
type leakResult struct {
	api     string
	streams int
	blocked int
	// longest is the longest run, in tokens, that a client received of indexed code
	// and that the proxy's rules count as a match (what zero leak is about);
	// longestRaw counts every run, boilerplate the rules ignore too.
	longest, longestRaw int
	threshold           int
}

// A leakAPI is one wire format the leak test speaks: the request that asks for
// passage i, and how the client reads a streamed answer: its text, and whether
// the answer says it was stopped by a filter.
type leakAPI struct {
	name string
	path string
	body func(i int) map[string]any
	read func(r io.Reader) (text string, blocked bool, err error)
}

func userMessages(i int) []any {
	return []any{map[string]any{"role": "user", "content": fmt.Sprintf("passage %d", i)}}
}

var leakAPIs = []leakAPI{
	{"chat completions", "/v1/chat/completions", func(i int) map[string]any {
		return map[string]any{"model": "eval", "stream": true, "messages": userMessages(i)}
	}, readChat},
	{"legacy completions", "/v1/completions", func(i int) map[string]any {
		return map[string]any{"model": "eval", "stream": true, "prompt": fmt.Sprintf("passage %d", i)}
	}, readChat},
	{"Responses", "/v1/responses", func(i int) map[string]any {
		return map[string]any{"model": "eval", "stream": true, "input": userMessages(i)}
	}, readSSE(func(ev map[string]any) (string, bool) {
		switch ev["type"] {
		case "response.output_text.delta":
			s, _ := ev["delta"].(string)
			return s, false
		case "response.incomplete":
			resp, _ := ev["response"].(map[string]any)
			det, _ := resp["incomplete_details"].(map[string]any)
			return "", det["reason"] == "content_filter"
		}
		return "", false
	})},
	{"Anthropic Messages", "/v1/messages", func(i int) map[string]any {
		return map[string]any{"model": "eval", "stream": true, "max_tokens": 4096, "messages": userMessages(i)}
	}, readSSE(func(ev map[string]any) (string, bool) {
		d, _ := ev["delta"].(map[string]any)
		switch ev["type"] {
		case "content_block_delta":
			s, _ := d["text"].(string)
			return s, false
		case "message_delta":
			return "", d["stop_reason"] == "refusal"
		}
		return "", false
	})},
	{"Ollama chat", "/api/chat", func(i int) map[string]any {
		return map[string]any{"model": "eval", "messages": userMessages(i)}
	}, readNDJSON},
	{"Ollama generate", "/api/generate", func(i int) map[string]any {
		return map[string]any{"model": "eval", "prompt": fmt.Sprintf("passage %d", i)}
	}, readNDJSON},
}

// evalLeak streams markdown answers that quote passages (the longer ones) through
// the proxy in block mode, from the test upstream with its uneven chunks, in every
// API the proxy checks, and measures what the client received.
func evalLeak(c *config, ix *index.Index, ps []*passage) ([]leakResult, error) {
	t := ix.Params().Threshold()
	var use []*passage
	for _, p := range ps {
		if p.n >= 2*t && len(use) < c.leak {
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
		return nil, err
	}
	defer srv.Close()
	px := httptest.NewServer(srv.Handler())
	defer px.Close()
	var out []leakResult
	for _, api := range leakAPIs {
		r := leakResult{api: api.name, threshold: t}
		for i := range use {
			body, _ := json.Marshal(api.body(i))
			resp, err := http.Post(px.URL+api.path, "application/json", bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			content, blocked, err := api.read(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", api.name, err)
			}
			r.streams++
			if blocked {
				r.blocked++
			}
			if n := longestRun(ix, content, index.MatchOptions{}); n >= t && c.dump != "" {
				// What the client got, then what the model said.
				name := fmt.Sprintf("leak-%s-%d.txt", strings.ReplaceAll(api.name, " ", "_"), i)
				os.WriteFile(filepath.Join(c.dump, name), []byte(content+"\n=====\n"+inMarkdown(use[i], nil)), 0o644)
			}
			r.longest = max(r.longest, longestRun(ix, content, index.MatchOptions{}))
			r.longestRaw = max(r.longestRaw, longestRun(ix, content, index.MatchOptions{NoAllow: true, MaxPostings: -1, MinEvidence: -1}))
		}
		out = append(out, r)
	}
	return out, nil
}

// readChat reassembles the content of choice 0 of a streamed chat (or legacy)
// completion.
func readChat(r io.Reader) (content string, blocked bool, err error) {
	var b strings.Builder
	err = eachLine(r, func(line string) error {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			return nil
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				Text         string `json:"text"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("bad chunk %q: %v", data, err)
		}
		for _, ch := range chunk.Choices {
			b.WriteString(ch.Delta.Content + ch.Text)
			blocked = blocked || ch.FinishReason == "content_filter"
		}
		return nil
	})
	return b.String(), blocked, err
}

// readSSE returns a reader of a stream of JSON events that takes each event's
// text and whether it says the answer was filtered.
func readSSE(of func(ev map[string]any) (string, bool)) func(io.Reader) (string, bool, error) {
	return func(r io.Reader) (string, bool, error) {
		var b strings.Builder
		blocked := false
		err := eachLine(r, func(line string) error {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				return nil
			}
			var ev map[string]any
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return fmt.Errorf("bad event %q: %v", data, err)
			}
			s, stop := of(ev)
			b.WriteString(s)
			blocked = blocked || stop
			return nil
		})
		return b.String(), blocked, err
	}
}

// readNDJSON reassembles an Ollama stream: each line's message content (chat) or
// response (generate).
func readNDJSON(r io.Reader) (string, bool, error) {
	var b strings.Builder
	blocked := false
	err := eachLine(r, func(line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		var ev struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			Response   string `json:"response"`
			DoneReason string `json:"done_reason"`
			Error      string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		if ev.Error != "" {
			return fmt.Errorf("error line: %s", ev.Error)
		}
		b.WriteString(ev.Message.Content + ev.Response)
		blocked = blocked || ev.DoneReason == "content_filter"
		return nil
	})
	return b.String(), blocked, err
}

// eachLine calls f with each line of r.
func eachLine(r io.Reader, f func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if err := f(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
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
