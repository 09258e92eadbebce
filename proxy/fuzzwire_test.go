package proxy

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"cleanroom/index"
	"cleanroom/index/indextest"
)

// fuzzLongest returns the longest run of indexed tokens in text.
func fuzzLongest(text string) int { return indextest.LongestRun(fuzzServer.ix, text) }

// fuzzServer is a Server on a generated index, for fuzz targets that drive the
// stream engine directly, without HTTP: built once per test binary.
var fuzzServer struct {
	once sync.Once
	s    *Server
	ix   *index.Index
	gpl  []string
	err  error
}

func fuzzSetup(f *testing.F) (*Server, []string) {
	fuzzServer.once.Do(func() {
		dir, err := os.MkdirTemp("", "cleanroom-fuzz-")
		if err != nil {
			fuzzServer.err = err
			return
		}
		ixDir := filepath.Join(dir, "ix")
		fuzzServer.gpl, _, _ = buildTestIndex(f, ixDir, 99)
		if fuzzServer.ix, fuzzServer.err = index.Open(ixDir, index.OpenOptions{}); fuzzServer.err != nil {
			return
		}
		fuzzServer.s, fuzzServer.err = New(Options{Index: ixDir, Upstream: "http://127.0.0.1:1", AuditLog: filepath.Join(dir, "audit.jsonl"), Poll: -1},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	if fuzzServer.err != nil {
		f.Fatal(fuzzServer.err)
	}
	return fuzzServer.s, fuzzServer.gpl
}

// pieceReader hands out data in pieces of n bytes.
type pieceReader struct {
	data []byte
	n    int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

// fuzzStream runs one upstream body through the engine with format fm's wire,
// streamed in pieces of step bytes, and the same body whole; it returns what the
// client would get of each. It fails the test on a panic (the fuzzer's) or an
// endless stream.
func fuzzStream(t *testing.T, s *Server, fm *format, reqBody, body []byte, step int) (streamed, whole []byte) {
	req, err := fm.parse(reqBody)
	if err != nil {
		return nil, nil
	}
	req.format, req.endpoint = fm, fm.name
	l := s.store.acquire()
	defer s.store.release(l)
	f := newFilter(context.Background(), s, l.ix, req, "fuzz")
	sf := newStreamFilter(f, fm.newWire(req), fm.lines, io.NopCloser(&pieceReader{data: body, n: max(1, step)}), 1<<20, nil)
	buf := make([]byte, 8<<10)
	for i := 0; ; i++ {
		n, err := sf.Read(buf)
		streamed = append(streamed, buf[:n]...)
		if err != nil {
			break
		}
		if i > 4*len(body)+100 {
			t.Fatalf("the stream does not end")
		}
	}
	sf.Close()
	wf := newFilter(context.Background(), s, l.ix, req, "fuzz")
	whole, _ = fm.newWire(req).whole(wf, body)
	return streamed, whole
}
