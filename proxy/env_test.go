package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/index"
	"cleanroom/index/indextest"
	"cleanroom/proxy/upstream"
)

// env is a proxy between a test client and the test upstream, over an index of
// generated code: gpl[i] are GPL-2.0-only files of repo "gen", lgpl[i] LGPL-2.1
// files of repo "lesser", acme[i] GPL files of the allowlisted repo "acme".
type env struct {
	dir             string
	gpl, lgpl, acme []string
	up              *upstream.Server
	upSrv           *httptest.Server
	srv             *Server
	px              *httptest.Server
	ix              *index.Index // a second handle, for checking what clients got
	audit           string
}

func buildTestIndex(t testing.TB, dir string, seed uint64) (gpl, lgpl, acme []string) {
	texts, err := indextest.Build(dir, seed, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 10, Funcs: 4},
		indextest.Repo{Name: "lesser", License: "LGPL-2.1-or-later", Files: 3, Funcs: 4},
		indextest.Repo{Name: "acme", License: "GPL-3.0-only", Files: 3, Funcs: 4})
	if err != nil {
		t.Fatal(err)
	}
	return texts["gen"], texts["lesser"], texts["acme"]
}

func newEnv(t *testing.T, mode, policy string, tweak ...func(*Options)) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	ixDir := filepath.Join(e.dir, "ix")
	e.gpl, e.lgpl, e.acme = buildTestIndex(t, ixDir, 99)
	e.up = upstream.New()
	e.up.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	e.upSrv = httptest.NewServer(e.up)
	t.Cleanup(func() { e.up.Close(); e.upSrv.Close() })
	opts := Options{Index: ixDir, Upstream: e.upSrv.URL, Mode: mode, AuditLog: filepath.Join(e.dir, "audit.jsonl")}
	e.audit = opts.AuditLog
	if policy != "" {
		opts.PolicyFile = filepath.Join(e.dir, "policy.yaml")
		os.WriteFile(opts.PolicyFile, []byte(policy), 0o644)
	}
	for _, f := range tweak {
		f(&opts)
	}
	s, err := New(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.srv = s
	e.px = httptest.NewServer(s.Handler())
	t.Cleanup(func() { e.px.Close(); s.Close() })
	e.ix, err = index.Open(ixDir, index.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ix.Close() })
	return e
}

// excerpt returns lines [a, b) of a generated file.
func excerpt(file string, a, b int) string {
	ls := strings.SplitAfter(file, "\n")
	return strings.Join(ls[a:min(b, len(ls))], "")
}

// streamed is what a client received from a streamed completion.
type streamed struct {
	raw     []byte
	chunks  []map[string]any
	content map[int]string
	args    map[int]map[int]string // choice -> tool call -> arguments
	finish  map[int]string
	choices map[int]map[string]any // the last choice object seen, per index
	done    bool
	errors  []map[string]any
}

func post(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-test-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readStream reads an SSE completion stream strictly: every data line must be a
// JSON chunk or [DONE], and [DONE] must be last.
func readStream(t *testing.T, resp *http.Response) *streamed {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	s := &streamed{raw: raw, content: map[int]string{}, args: map[int]map[int]string{}, finish: map[int]string{}, choices: map[int]map[string]any{}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if s.done {
			t.Fatalf("data after [DONE]: %q", data)
		}
		if data == "[DONE]" {
			s.done = true
			continue
		}
		var chunk map[string]any
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		if e, ok := chunk["error"].(map[string]any); ok {
			s.errors = append(s.errors, e)
			continue
		}
		s.chunks = append(s.chunks, chunk)
		chs, _ := chunk["choices"].([]any)
		for _, x := range chs {
			ch := x.(map[string]any)
			i := int(ch["index"].(float64))
			s.choices[i] = ch
			if txt, ok := ch["text"].(string); ok {
				s.content[i] += txt
			}
			if d, ok := ch["delta"].(map[string]any); ok {
				if c, ok := d["content"].(string); ok {
					s.content[i] += c
				}
				calls, _ := d["tool_calls"].([]any)
				for _, y := range calls {
					tc := y.(map[string]any)
					j := int(tc["index"].(float64))
					if s.args[i] == nil {
						s.args[i] = map[int]string{}
					}
					fn, _ := tc["function"].(map[string]any)
					a, _ := fn["arguments"].(string)
					s.args[i][j] += a
				}
			}
			if fr, ok := ch["finish_reason"].(string); ok {
				if s.finish[i] != "" {
					t.Fatalf("choice %d finished twice: %s then %s", i, s.finish[i], fr)
				}
				s.finish[i] = fr
			}
		}
	}
	return s
}

// longestRun returns the longest stretch of text that the index holds exactly, in
// tokens: what a client got of any indexed file.
func (e *env) longestRun(text string) int { return indextest.LongestRun(e.ix, text) }

func chatBody(stream bool, n int, user string) map[string]any {
	return map[string]any{"model": "test-model", "stream": stream, "n": n,
		"messages": []any{map[string]any{"role": "user", "content": user}}}
}

func fingerprintTokens(s string) []fingerprint.Token {
	return fingerprint.Tokenize(fingerprint.C, []byte(s))
}
