package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkWireStream filters the same clean answer (about 2,000 tokens of
// generated prose and code, in deltas of a few bytes) in each wire format
// through the engine, without HTTP: what reading, checking and writing one
// streamed answer costs per format, in block and annotate mode.
func BenchmarkWireStream(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ix")
	buildTestIndex(b, dir, 99)
	var content strings.Builder
	for i := range 120 {
		fmt.Fprintf(&content, "Step %d: call the helper with the counter, then check what it returns. ", i)
	}
	text := content.String()
	var pieces []string
	for s := text; len(s) > 0; {
		n := min(len(s), 9)
		pieces = append(pieces, s[:n])
		s = s[n:]
	}
	chat := func() []byte {
		var out bytes.Buffer
		for _, p := range pieces {
			d, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
				"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}})
			fmt.Fprintf(&out, "data: %s\n\n", d)
		}
		out.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
		return out.Bytes()
	}
	responses := func() []byte {
		var out bytes.Buffer
		for _, e := range respEvents(1, []respItemScript{{"message", text}}) {
			d, _ := json.Marshal(e)
			fmt.Fprintf(&out, "event: %s\ndata: %s\n\n", e["type"], d)
		}
		return out.Bytes()
	}
	messages := func() []byte { return msgSSE([]msgSpec{{Type: "text", Text: text}}, "end_turn") }
	for _, mode := range []string{"annotate", "block"} {
		s, err := New(Options{Index: dir, Upstream: "http://127.0.0.1:1", Mode: mode, AuditLog: filepath.Join(b.TempDir(), "a"), Poll: -1},
			slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		for _, tc := range []struct {
			fm   *format
			req  string
			body []byte
		}{
			{chatFormat, `{"model":"m","stream":true,"messages":[{"role":"user","content":"q"}]}`, chat()},
			{responsesFormat, `{"model":"m","stream":true,"input":"q"}`, responses()},
			{messagesFormat, `{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"q"}]}`, messages()},
		} {
			b.Run(tc.fm.name+"/"+mode, func(b *testing.B) {
				req, err := tc.fm.parse([]byte(tc.req))
				if err != nil {
					b.Fatal(err)
				}
				req.format, req.endpoint = tc.fm, tc.fm.name
				l := s.store.acquire()
				defer s.store.release(l)
				buf := make([]byte, 8<<10)
				b.SetBytes(int64(len(tc.body)))
				b.ReportAllocs()
				for range b.N {
					f := newFilter(context.Background(), s, l.ix, req, "bench")
					sf := newStreamFilter(f, tc.fm.newWire(req), false, io.NopCloser(&pieceReader{data: tc.body, n: 512}), 1<<20, nil)
					for {
						if _, err := sf.Read(buf); err != nil {
							break
						}
					}
				}
				events := bytes.Count(tc.body, []byte("\n\n"))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(events), "ns/event")
			})
		}
		s.Close()
	}
}
