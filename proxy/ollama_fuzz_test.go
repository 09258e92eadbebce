package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/index"
)

// FuzzOllamaStream feeds arbitrary bytes to the Ollama wire as an upstream's
// NDJSON stream, in pieces cut where the fuzzer says, and as a whole body: it never
// panics, and in block mode no client reading the output as Ollama's API (content,
// thinking, tool call arguments, in every line) gets a run of indexed code of the
// threshold's length or more.
func FuzzOllamaStream(f *testing.F) {
	dir := f.TempDir()
	ixDir := filepath.Join(dir, "ix")
	gpl, _, _ := buildTestIndex(f, ixDir, 99)
	s, err := New(Options{Index: ixDir, Upstream: "http://127.0.0.1:9", Mode: "block", AuditLog: filepath.Join(dir, "audit.jsonl")},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	ix, err := index.Open(ixDir, index.OpenOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ix.Close() })
	thr := ix.Params().Threshold()

	code := excerpt(gpl[3], 5, 40)
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	call := map[string]any{"name": "write_file", "arguments": map[string]any{"path": "a.c", "content": code}}
	f.Add(join(ollamaLines(false, "m", ollamaReply{content: markdownAnswer(code)})), uint8(5), false)
	f.Add(join(ollamaLines(true, "m", ollamaReply{content: code, thinking: "let me think"})), uint8(3), true)
	f.Add(join(ollamaLines(false, "m", ollamaReply{thinking: "```c\n" + code + "```\n", content: "ok"})), uint8(11), false)
	f.Add(join(ollamaLines(false, "m", ollamaReply{content: "Saving.", calls: []map[string]any{{"name": "f", "arguments": map[string]any{}}, call}, callsInOneLine: true})), uint8(2), false)
	f.Add(ollamaWholeBody(false, "m", ollamaReply{content: markdownAnswer(code), calls: []map[string]any{call}}), uint8(7), false)
	f.Add(ollamaWholeBody(true, "m", ollamaReply{content: code}), uint8(1), true)
	// Broken and hostile shapes: garbage, an error line, a missing final newline,
	// a copy split by reasoning, keys in other case, a line after the end.
	half := len(code) / 2
	f.Add([]byte("{\"response\":\""+jsonEscape(code[:half])+"\"}\nnot json\n{\"error\":\"boom\"}\n{\"response\":\""+jsonEscape(code[half:])+"\",\"done\":true}"), uint8(4), true)
	f.Add([]byte("{\"message\":{\"content\":\""+jsonEscape(code[:half])+"\"}}\n{\"message\":{\"thinking\":\"hm\"}}\n{\"message\":{\"content\":\""+jsonEscape(code[half:])+"\"}}\n{\"done\":true}\n"), uint8(9), false)
	f.Add([]byte("{\"response\":\""+jsonEscape(code)+"\",\"Response\":\"\"}\n{\"done\":true}\n"), uint8(6), true)
	f.Add([]byte("{\"done\":true}\n{\"response\":\""+jsonEscape(code)+"\"}\n"), uint8(8), true)
	f.Add([]byte("\n\r\n{}\n[]\nnull\n{\"message\":null,\"done\":false}\n{\"message\":{\"tool_calls\":[null,{\"function\":null}]}}\n"), uint8(1), false)

	f.Fuzz(func(t *testing.T, data []byte, step uint8, generate bool) {
		fm, body := ollamaChatFormat, `{"model":"m","messages":[{"role":"user","content":"write it"}]}`
		if generate {
			fm, body = ollamaGenerateFormat, `{"model":"m","prompt":"write it"}`
		}
		req, err := fm.parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req.format = fm
		l := s.store.acquire()
		defer s.store.release(l)

		flt := newFilter(context.Background(), s, l.ix, req, "fuzz")
		n := int(step%32) + 1
		sf := newStreamFilter(flt, fm.newWire(req), true, io.NopCloser(&ollamaPieces{data: data, n: n}), 1<<16, nil)
		out, err := io.ReadAll(sf)
		sf.Close()
		if err != nil {
			t.Fatalf("reading the filtered stream: %v", err)
		}
		checkOllamaOutput(t, ix, thr, generate, "stream", out)

		flt = newFilter(context.Background(), s, l.ix, req, "fuzz")
		whole, err := fm.newWire(req).whole(flt, data)
		if err != nil {
			return
		}
		checkOllamaOutput(t, ix, thr, generate, "whole", whole)
	})
}

// ollamaPieces reads data n bytes at a time.
type ollamaPieces struct {
	data []byte
	n    int
}

func (r *ollamaPieces) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// checkOllamaOutput reads out as a client of the API would, every JSON value in
// it (lines, or a whole body), and fails if what the client reads holds a run of
// thr tokens or more, each text read as the proxy reads it.
func checkOllamaOutput(t *testing.T, ix *index.Index, thr int, generate bool, what string, out []byte) {
	var content, thinking strings.Builder
	var args []string
	read := func(v []byte) {
		var obj map[string]any
		if json.Unmarshal(v, &obj) != nil || obj == nil {
			return
		}
		holder := obj
		if !generate {
			holder, _ = obj["message"].(map[string]any)
		}
		key := "content"
		if generate {
			key = "response"
		}
		if s, ok := holder[key].(string); ok {
			content.WriteString(s)
		}
		if s, ok := holder["thinking"].(string); ok {
			thinking.WriteString(s)
		}
		if generate {
			return
		}
		// The arguments' strings in the order they are written.
		var raw struct {
			Message struct {
				ToolCalls []struct {
					Function map[string]json.RawMessage `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
		}
		json.Unmarshal(v, &raw)
		for _, c := range raw.Message.ToolCalls {
			args = append(args, jsonStringsOf(c.Function["arguments"]))
		}
	}
	// Line by line (an NDJSON client), and as a sequence of values (a whole body
	// across lines).
	for _, line := range bytes.Split(out, []byte("\n")) {
		read(line)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			break
		}
		if bytes.IndexByte(v, '\n') >= 0 {
			read(v)
		}
	}
	contentLang := fingerprint.Markdown
	if generate {
		contentLang = fingerprint.C // the request's prompt is prose
	}
	for _, x := range []struct {
		name string
		lang fingerprint.Lang
		text string
	}{{"content", contentLang, content.String()}, {"thinking", fingerprint.Markdown, thinking.String()}} {
		if run := longestRunIn(ix, x.lang, x.text); run >= thr {
			t.Fatalf("%s: the client's %s holds a run of %d tokens (threshold %d):\n%q\noutput %q", what, x.name, run, thr, x.text, out)
		}
	}
	for i, a := range args {
		if run := longestRunIn(ix, fingerprint.C, a); run >= thr {
			t.Fatalf("%s: tool call %d's arguments hold a run of %d tokens (threshold %d):\n%q", what, i, run, thr, a)
		}
	}
}

// longestRunIn is indextest.LongestRun with the text read in language l.
func longestRunIn(ix *index.Index, l fingerprint.Lang, text string) int {
	toks, fps := fingerprint.Fingerprints(ix.Params(), l, []byte(text))
	m := ix.NewMatcher(index.MatchOptions{MinTokens: 1, MaxPostings: -1})
	m.Update(toks, fps)
	longest := 0
	for _, r := range m.Runs(1) {
		longest = max(longest, r.End-r.Start)
	}
	return longest
}

// jsonStringsOf returns the strings of a JSON text, keys too, a line each, in
// order: what a tool call's arguments show a client.
func jsonStringsOf(raw json.RawMessage) string {
	var out []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, "\n")
}
